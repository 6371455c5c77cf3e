"""A throwaway (or project-local) MariaDB server: install-db, start, stop, SQL.

Like :mod:`flaskprod.stack.postgres`: the data folder is the caller's, the server an
unprivileged process (as root it runs as the ``mysql`` user, through ``setpriv``)
listening on 127.0.0.1 and on a unix socket of its own; ``--no-defaults`` keeps the
machine's /etc/mysql out of it, so a MariaDB the machine runs is never touched.
MariaDB's ``root`` authenticates by the unix socket only (as the OS user who runs
flaskprod): admin work goes through :meth:`MariaDBServer.sql` on that socket, with no
password anywhere. Apps get their own user with a password, on TCP.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Unpack

from flaskprod.errors import EnvironmentProblem, ServiceFailed
from flaskprod.stack import process
from flaskprod.stack.ports import LOOPBACK
from flaskprod.stack.server import LoopbackServer, ServerOptions

MYSQL_USER = "mysql"
INSTALL_HINT = "apt-get install mariadb-server mariadb-client"
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes with the NUL).
_SUN_PATH_MAX = 107
#: The identifiers flaskprod creates (database and user names): no quoting surprises.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def find_tool(name: str) -> Path:
    """``mariadbd``, ``mariadb-install-db``, ``mariadb``... on PATH or in /usr/sbin."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise EnvironmentProblem(f"{name} not found on PATH or in /usr/sbin", hint=INSTALL_HINT)
    return Path(found)


def _run_as() -> str | None:
    """The user to run MariaDB as: ``mysql`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(MYSQL_USER)
    except KeyError:
        raise EnvironmentProblem(
            f"running as root, MariaDB needs the {MYSQL_USER!r} user, which does not exist",
            hint=f"{INSTALL_HINT} creates it",
        ) from None
    return MYSQL_USER


def socket_for(data_dir: Path) -> Path:
    """Where the server's unix socket goes: in the data folder (the server's own), or
    (a path too long for a socket) a short name in the temp folder derived from it."""
    inside = data_dir / "mariadb.sock"
    if len(str(inside)) <= _SUN_PATH_MAX:
        return inside
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"flaskprod-mariadb-{digest}.sock"


def quote_identifier(name: str) -> str:
    if not name or not set(name) <= _SAFE:
        raise ValueError(f"not a safe MariaDB name: {name!r}")
    return f"`{name}`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MariaDBServer(LoopbackServer):
    """MariaDB with its data in ``data_dir``, on ``127.0.0.1:port`` and a unix socket.

    ``settings``: mariadbd options (``flaskprod.spec.mariadb.server_settings``).
    ``fsync=False`` trades crash safety for speed: tests only. :meth:`stop` is SIGTERM
    (MariaDB's clean shutdown); :meth:`pause` freezes it.
    """

    name = "mariadb"
    stop_group = False  # one process; its threads go with it

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        settings: dict[str, str] | None = None,
        fsync: bool = True,
        log_path: Path | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        super().__init__(port, **options)
        self.data_dir = Path(data_dir).absolute()
        self.server_binary = find_tool("mariadbd")
        self.client_binary = find_tool("mariadb")
        self.settings = dict(settings or {})
        self.fsync = fsync
        self.log_path = log_path or self.data_dir.with_name(self.data_dir.name + ".log")
        self.socket_path = socket_for(self.data_dir)
        self.pid_path = self.data_dir / "mariadbd.pid"
        self.user = _run_as()

    # -- lifecycle ------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "mysql" / "global_priv.frm").is_file()

    def init(self) -> None:
        """``mariadb-install-db`` into the data folder (if not done yet)."""
        if self.initialized:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        argv = [
            str(find_tool("mariadb-install-db")),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            "--auth-root-authentication-method=socket",
            f"--auth-root-socket-user={getpass.getuser()}",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        if self.user is not None:
            argv.append(f"--user={self.user}")
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False, cwd="/", timeout=120
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise process.ServiceStartFailed(
                f"mariadb-install-db failed in {self.data_dir} with status {result.returncode}",
                log_path=self.log_path,
                log_tail="\n".join(output.splitlines()[-process.TAIL_LINES :]),
            )

    def _prepare(self) -> None:
        self.init()

    def command(self, port: int) -> list[str]:
        argv = [
            str(self.server_binary),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--socket={self.socket_path}",
            f"--port={port}",
            f"--bind-address={LOOPBACK}",
            f"--pid-file={self.pid_path}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            *[f"--{key}={value}" for key, value in self.settings.items()],
        ]
        if not self.fsync:
            argv += ["--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0"]
        return argv

    def _launch(self, port: int) -> process.Process:
        if self._pid_file_stale():
            self.pid_path.unlink(missing_ok=True)
        return process.start(
            self.command(port),
            name=f"{self.name} on port {port}",
            log_path=self.log_path,
            cwd=Path("/"),
            user=self.user,
            die_with_parent=self.die_with_parent,
        )

    def _pid_file_stale(self) -> bool:
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return not process.is_alive(pid)

    def _ready(self) -> bool:
        # The pid file names our process, its socket exists, and it answers a ping on
        # that socket (MariaDB creates the socket once InnoDB and the grants are up).
        try:
            pid = int(self.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        if self._process is None or pid != self._process.pid:
            return False
        return self.socket_path.is_socket() and self.ping()

    def ping(self) -> bool:
        """``mariadb-admin ping`` on the socket (as root: no failed login logged)."""
        argv = [
            str(find_tool("mariadb-admin")),
            "--no-defaults",
            f"--socket={self.socket_path}",
            "--user=root",
            "--connect-timeout=2",
            "ping",
        ]
        try:
            result = subprocess.run(argv, capture_output=True, timeout=10, check=False)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    # -- SQL as root, over the socket ---------------------------------------------------

    def sql(self, statements: str, database: str | None = None) -> list[list[str]]:
        """Run ``statements`` as MariaDB's root through the ``mariadb`` client on the
        unix socket; returns the rows of the last result (tab-separated fields)."""
        argv = [
            str(self.client_binary),
            "--no-defaults",
            f"--socket={self.socket_path}",
            "--user=root",
            "--default-character-set=utf8mb4",
            "--batch",
            "--skip-column-names",
            "--raw",
        ]
        if database:
            argv.append(f"--database={database}")
        try:
            result = subprocess.run(
                argv, input=statements, capture_output=True, text=True, timeout=60, check=False
            )
        except subprocess.TimeoutExpired:
            raise ServiceFailed(f"mariadb on {self.socket_path} did not answer in 60s") from None
        if result.returncode != 0:
            raise ServiceFailed(f"mariadb: {result.stderr.strip().splitlines()[-1:]}")
        return [line.split("\t") for line in result.stdout.splitlines()]

    def ensure_database(self, database: str, user: str, password: str) -> None:
        """The database (utf8mb4) and its user, granted on it only (least privilege),
        with ``password`` (set again on every start: the generated one is the truth)."""
        from flaskprod.spec.mariadb import CHARSET, COLLATION

        db, pw = quote_identifier(database), quote_string(password)
        who = [f"{quote_string(user)}@{quote_string(host)}" for host in ("localhost", LOOPBACK)]
        lines = [f"CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET {CHARSET} COLLATE {COLLATION};"]
        for account in who:
            lines += [
                f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {pw};",
                f"ALTER USER {account} IDENTIFIED BY {pw};",
                f"GRANT ALL PRIVILEGES ON {db}.* TO {account};",
            ]
        self.sql("\n".join(lines))

    def create_database(self, name: str) -> None:
        self.sql(f"CREATE DATABASE {quote_identifier(name)};")

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {quote_identifier(name)};")

    def databases(self) -> list[str]:
        system = {"information_schema", "mysql", "performance_schema", "sys"}
        return sorted(row[0] for row in self.sql("SHOW DATABASES;") if row[0] not in system)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"MariaDBServer({str(self.data_dir)!r}, port={self.port}, {state})"
