"""A throwaway (or project-local) PostgreSQL cluster: initdb, start, stop, databases.

As root, PostgreSQL refuses to run: ``initdb`` and the server then run as the
``postgres`` user (through ``setpriv``), which owns the data folder and must be able
to traverse every folder above it — :func:`temp_cluster_dir` makes such a place.
The server listens on 127.0.0.1 only, with trust authentication (loopback and a unix
socket inside the data folder): it is for tests and local rehearsal, not for hosting.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Unpack

from flaskprod.errors import EnvironmentProblem
from flaskprod.stack import process
from flaskprod.stack.ports import LOOPBACK
from flaskprod.stack.server import LoopbackServer, ServerOptions

if TYPE_CHECKING:
    import psycopg

PG_USER = "postgres"
INSTALL_HINT = "apt-get install postgresql"
_CONF_NAME = "flaskprod.conf"
_INCLUDE_LINE = f"include_if_exists = '{_CONF_NAME}'"
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes with the NUL).
_SUN_PATH_MAX = 107


def find_bin_dir(bin_dir: Path | None = None) -> Path:
    """The folder with ``initdb`` and ``postgres``: ``bin_dir`` if given, else the newest
    ``/usr/lib/postgresql/*/bin``, else the one on PATH."""
    if bin_dir is not None:
        candidates = [bin_dir]
    else:

        def version(path: Path) -> tuple[int, ...]:
            return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
        on_path = shutil.which("postgres")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "postgres")):
            return candidate
    where = str(bin_dir) if bin_dir is not None else "/usr/lib/postgresql/*/bin or PATH"
    raise EnvironmentProblem(
        f"PostgreSQL server binaries (initdb, postgres) not found in {where}",
        hint=INSTALL_HINT,
    )


def _run_as() -> str | None:
    """The user to run PostgreSQL as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        raise EnvironmentProblem(
            f"running as root, PostgreSQL needs the {PG_USER!r} user, which does not exist",
            hint=f"{INSTALL_HINT} creates it",
        ) from None
    return PG_USER


def temp_cluster_dir(prefix: str = "flaskprod-pg-") -> Path:
    """A fresh folder for a cluster's data, reachable by the ``postgres`` user.

    Returns ``<new temp folder>/data`` (not created: initdb makes it). The temp folder is
    made traversable (0711) but not listable, so this works as root, whose pytest temp
    folders are 0700.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o711)
    return base / "data"


def _check_reachable(data_dir: Path, user: str) -> None:
    # As root we cannot ask os.access on behalf of another user: read the mode bits.
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid, *os.getgrouplist(user, entry.pw_gid)}
    for folder in reversed(data_dir.parents):
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            ok = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            ok = bool(info.st_mode & stat.S_IXGRP)
        else:
            ok = bool(info.st_mode & stat.S_IXOTH)
        if not ok:
            raise EnvironmentProblem(
                f"the {user} user cannot reach PostgreSQL's data folder {data_dir}: "
                f"{folder} is not traversable",
                hint=f"chmod o+x {folder}, or keep the data elsewhere "
                "(flaskprod.stack.postgres.temp_cluster_dir makes such a place)",
            )


class PostgresCluster(LoopbackServer):
    """A PostgreSQL cluster in ``data_dir`` listening on ``127.0.0.1:port``.

    ``fsync=False`` trades crash safety for speed: tests only. ``port``,
    ``die_with_parent`` and ``stop_at_exit`` as for
    :class:`~flaskprod.stack.server.LoopbackServer`. :meth:`stop` is a fast shutdown
    (SIGINT to the postmaster: abort sessions, checkpoint, exit); :meth:`pause` freezes
    the postmaster and its backends.
    """

    name = "postgres"
    stop_signal = signal.SIGINT
    stop_group = False  # the postmaster stops its backends itself

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        bin_dir: Path | None = None,
        fsync: bool = True,
        max_connections: int = 100,
        log_path: Path | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        super().__init__(port, **options)
        self.data_dir = Path(data_dir).absolute()
        self.bin_dir = find_bin_dir(bin_dir)
        self.fsync = fsync
        self.max_connections = max_connections
        self.log_path = log_path or self.data_dir.with_name(self.data_dir.name + ".log")
        self.user = _run_as()

    # -- lifecycle ------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self, *, no_sync: bool = False) -> None:
        """``initdb`` the data folder (if not done yet). ``no_sync``: skip fsync (tests)."""
        if self.initialized:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            _check_reachable(self.data_dir, self.user)
        argv = [
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            PG_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-instructions",
        ]
        if no_sync:
            argv.append("--no-sync")
        if self.user is not None:
            argv = process.as_user(argv, self.user)
        result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/")
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise process.ServiceStartFailed(
                f"initdb failed in {self.data_dir} with status {result.returncode}",
                log_path=self.log_path,
                log_tail="\n".join(output.splitlines()[-process.TAIL_LINES :]),
            )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(f"\n# flaskprod's settings (rewritten on every start)\n{_INCLUDE_LINE}\n")

    def _write_settings(self) -> None:
        socket_dir = str(self.data_dir)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > _SUN_PATH_MAX:
            socket_dir = ""  # path too long for a unix socket: TCP only
        lines = [
            "# Written by flaskprod.stack.postgres; rewritten on every start.",
            f"listen_addresses = '{LOOPBACK}'",
            f"port = {self.port}",
            f"unix_socket_directories = '{socket_dir}'",
            f"max_connections = {self.max_connections}",
            "logging_collector = off",
        ]
        if not self.fsync:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        path = self.data_dir / _CONF_NAME
        tmp = self.data_dir / f".{_CONF_NAME}.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        tmp.replace(path)

    def _prepare(self) -> None:
        self.init(no_sync=not self.fsync)

    def _launch(self, port: int) -> process.Process:
        self._write_settings()
        self._remove_stale_lock()
        return process.start(
            [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)],
            name=f"{self.name} on port {port}",
            log_path=self.log_path,
            cwd=Path("/"),
            user=self.user,
            die_with_parent=self.die_with_parent,
            death_signal=signal.SIGINT,  # fast shutdown: do not wait for clients
        )

    def _remove_stale_lock(self) -> None:
        # A killed server leaves postmaster.pid behind. PostgreSQL copes when that pid is
        # gone, but refuses to start when it was recycled by another process; a postmaster
        # really running on this folder still shows "postgres -D <folder>" as command.
        lock = self.data_dir / "postmaster.pid"
        try:
            pid = int(lock.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            command = []
        if not process.is_alive(pid) or str(self.data_dir).encode() not in command:
            lock.unlink(missing_ok=True)

    def _ready(self) -> bool:
        # postmaster.pid's 8th line turns "ready" once the server accepts connections;
        # its first line proves it is our server, not another one on the same port.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return (
            len(lines) >= 8
            and self._process is not None
            and lines[0].strip() == str(self._process.pid)
            and lines[7].strip() == "ready"
        )

    # -- databases -------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL of ``dbname`` on this cluster."""
        return f"postgresql+psycopg://{PG_USER}@{LOOPBACK}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """The libpq connection string of ``dbname`` (for psycopg, psql)."""
        # No TLS on a loopback test server: sslmode=disable saves a round trip.
        return f"host={LOOPBACK} port={self.port} user={PG_USER} dbname={dbname} sslmode=disable"

    @contextlib.contextmanager
    def connect(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """An autocommit psycopg connection to ``dbname`` as the superuser."""
        psycopg = import_psycopg()
        with psycopg.connect(self.dsn(dbname), autocommit=True, connect_timeout=5) as conn:
            yield conn

    def create_database(self, name: str) -> str:
        """Create the database ``name`` and return its URL."""
        sql = import_psycopg().sql
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting its sessions first."""
        sql = import_psycopg().sql
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def databases(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")
            return sorted(str(row[0]) for row in rows)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"PostgresCluster({str(self.data_dir)!r}, port={self.port}, {state})"


def import_psycopg() -> ModuleType:
    # Imported when used: the CLI's stack code does not require the postgres extra.
    try:
        import psycopg
        import psycopg.sql
    except ImportError:
        raise EnvironmentProblem(
            "talking to PostgreSQL needs psycopg", hint="pip install 'flaskprod[postgres]'"
        ) from None
    return psycopg
