"""PgBouncer in front of the stack's PostgreSQL, on 127.0.0.1 (``database.pgbouncer``).

Debian's ``pgbouncer`` binary with the settings every target shares
(:mod:`flaskprod.spec.pgbouncer`): transaction pooling, SCRAM against a generated
password. As root it runs as the ``postgres`` user (PgBouncer refuses root), like
PostgreSQL itself; its folder is then that user's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from pathlib import Path
from typing import Unpack

from flaskprod.errors import EnvironmentProblem
from flaskprod.spec.pgbouncer import PgBouncerConfig, scram_secret, userlist
from flaskprod.stack import process
from flaskprod.stack.ports import LOOPBACK
from flaskprod.stack.postgres import PG_USER
from flaskprod.stack.server import LoopbackServer, ServerOptions

INSTALL_HINT = "apt-get install pgbouncer"


def find_pgbouncer() -> Path:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").is_file() else None
    )
    if found is None:
        raise EnvironmentProblem("pgbouncer not found in PATH or /usr/sbin", hint=INSTALL_HINT)
    return Path(found)


class PgBouncer(LoopbackServer):
    """PgBouncer with its config, auth file, pid file and log in ``dir``, pooling
    ``database`` of the PostgreSQL on ``127.0.0.1:server_port`` for ``user``."""

    name = "pgbouncer"

    def __init__(
        self,
        dir: Path,
        *,
        server_port: int,
        database: str,
        user: str,
        password: str,
        pool_size: int,
        max_clients: int,
        log_path: Path,
        port: int | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        super().__init__(port, **options)
        self.dir = Path(dir).absolute()
        self.binary = find_pgbouncer()
        self.server_port = server_port
        self.database = database
        self.user = user
        self.password = password
        self.pool_size = pool_size
        self.max_clients = max_clients
        self.log_path = log_path
        self.run_as = PG_USER if os.geteuid() == 0 else None

    def url(self, driver: str = "psycopg") -> str:
        from urllib.parse import quote

        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql+{driver}://{auth}@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def pid_path(self) -> Path:
        return self.dir / "pgbouncer.pid"

    def config(self, port: int) -> PgBouncerConfig:
        return PgBouncerConfig(
            database=self.database,
            server_host=LOOPBACK,
            server_port=self.server_port,
            listen_addr=LOOPBACK,
            listen_port=port,
            auth_file=str(self.dir / "userlist.txt"),
            pool_size=self.pool_size,
            max_clients=self.max_clients,
            pidfile=str(self.pid_path),
        )

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _write(self, name: str, text: str) -> None:
        # 0600 and the runner's: the auth file holds the SCRAM secret
        path = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(text)
        tmp.chmod(0o600)
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        tmp.replace(path)

    def _launch(self, port: int) -> process.Process:
        self.pid_path.unlink(missing_ok=True)  # a killed one's: it would refuse to start
        self._write("pgbouncer.ini", self.config(port).ini())
        self._write("userlist.txt", userlist(self.user, scram_secret(self.password)))
        return process.start(
            [str(self.binary), str(self.dir / "pgbouncer.ini")],
            name=f"{self.name} on port {port}",
            log_path=self.log_path,
            cwd=self.dir,
            user=self.run_as,
            die_with_parent=self.die_with_parent,
        )

    def _ready(self) -> bool:
        # Its pid file names our process once it listens; the port then accepts.
        if self._process is None:
            return False
        try:
            written = self.pid_path.read_text().strip()
        except (FileNotFoundError, PermissionError):
            return False
        if written != str(self._process.pid):
            return False
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.25):
                return True
        except OSError:
            return False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"PgBouncer({str(self.dir)!r}, port={self.port}, {state})"
