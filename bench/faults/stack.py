"""The stack under test: a real ``flaskprod up -d`` of the reference shop (copied,
started, seeded and stopped by bench/shop_stack.py, which the e2e tests share), and
the faults one can do to it.

Every fault acts on a process recorded in the stack's ``state.json`` — by pid,
checked against its kernel start time — and a service the harness restarts is recorded
back into ``state.json``, so ``flaskprod down`` always stops exactly what runs. Nothing
here touches another process of the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.shop_stack import (
    RunningShop,
    StackError,
    copy_shop,
    flaskprod,
    running_shop,
    set_server_kind,
)
from flaskprod.stack import process
from flaskprod.stack.ports import LOOPBACK
from flaskprod.stack.state import ServiceRecord, children_of
from flaskprod.stack.up import APP_SERVERS

TOKEN = "faults-demo-token-0123456789abcdef0123456789"  # noqa: S105 - a throwaway stack


@dataclass
class FaultStack(RunningShop):
    """One running stack of the shop (see :func:`running_stack`), with its faults."""

    token: str = TOKEN

    def spec(self) -> Any:
        from flaskprod.stack.up import load_project_spec

        return load_project_spec(self.project)

    # -- the app server (gunicorn or granian: the service up recorded) -----------------
    @property
    def server(self) -> str:
        """The app server's service name in ``state.json``: ``gunicorn`` or ``granian``."""
        state = self.dirs.read()
        names = [s.name for s in state.services] if state else []
        found = [name for name in APP_SERVERS if name in names]
        if not found:
            raise StackError(f"no app server ({', '.join(APP_SERVERS)}) in {self.dirs.state_file}")
        return found[0]

    def workers(self) -> list[int]:
        return children_of(self.pid(self.server))

    def kill_worker(self) -> int:
        """SIGKILL one worker of the app server (a child of the master we started)."""
        server = self.server
        master = self.record(server)
        if not master.alive():
            raise StackError(f"{server}'s master is not running")
        victims = children_of(master.pid)
        if not victims:
            raise StackError(f"{server} has no worker to kill")
        os.kill(victims[0], signal.SIGKILL)
        return victims[0]

    def kill_master(self) -> int:
        """SIGKILL the app server's master. gunicorn's orphaned workers exit by
        themselves once they see their parent gone (they check every second); granian's
        keep serving on the inherited socket until the supervisor stops them."""
        server = self.server
        master = self.record(server)
        if not master.send(signal.SIGKILL):
            raise StackError(f"{server}'s master is not running")
        with contextlib.suppress(ChildProcessError):
            os.waitpid(master.pid, os.WNOHANG)
        return master.pid

    def start_server(self) -> int:
        """Start the app server again exactly as ``up`` does (same command, environment
        and log), and record it in ``state.json``: what systemd's ``Restart=always``
        does."""
        from flaskprod.stack import gunicorn
        from flaskprod.stack.up import Stack, UpOptions

        server = self.server
        spec = self.spec()
        options = UpOptions(
            project=self.project, https_port=self.https_port, http_port=self.http_port
        )
        starter = Stack(spec, options, lambda _message: None)
        state = self.dirs.read()
        starter.slot = state.slot if state else starter.slot  # the live slot's socket
        # The environment up gave it (state.json keeps only the URLs): what systemd's
        # EnvironmentFile gives the restarted service on a server. Both servers get
        # the same one (up builds it once).
        env = gunicorn.app_environment(
            spec,
            os.environ,
            secret_key=self.dirs.secret_key(),
            database_url=self.env["DATABASE_URL"],
            redis_url=self.env.get("REDIS_URL"),
            media_root=self.dirs.media,
        )
        socket_path = starter.socket_path()
        socket_path.unlink(missing_ok=True)  # the dead master's; the server binds afresh
        proc = process.start(
            starter.server_command(),
            name=server,
            log_path=self.dirs.log(server),
            cwd=self.project,
            env=env,
        )
        self._replace(server, proc.pid)
        return proc.pid

    # -- the database: PostgreSQL or MariaDB (database.engine) ---------------------------
    @property
    def database(self) -> str:
        """The database service ``up`` recorded: ``postgres`` or ``mariadb``."""
        state = self.dirs.read()
        names = [s.name for s in state.services] if state else []
        return "mariadb" if "mariadb" in names else "postgres"

    @property
    def database_label(self) -> str:
        return "MariaDB" if self.database == "mariadb" else "PostgreSQL"

    def stop_database(self) -> None:
        """The stack's database stopped cleanly, as ``systemctl stop`` does."""
        if self.database == "mariadb":
            self.stop_mariadb()
        else:
            self.stop_postgres()

    def start_database(self) -> int:
        return self.start_mariadb() if self.database == "mariadb" else self.start_postgres()

    def stop_mariadb(self) -> None:
        """SIGTERM: MariaDB's clean shutdown (InnoDB flushed), as systemd stops it."""
        self.record("mariadb").stop(60.0, signal.SIGTERM, group=False)

    def start_mariadb(self) -> int:
        """Start the stack's MariaDB again on the same port, data, settings and log."""
        from flaskprod.spec.mariadb import server_settings
        from flaskprod.stack.mariadb import MariaDBServer

        server = MariaDBServer(
            self.dirs.mariadb,
            port=_port_of(self.record("mariadb")),
            settings=server_settings(self.spec()),
            log_path=self.dirs.log("mariadb"),
            ready_timeout=60.0,
            stop_at_exit=False,
        )
        server.start()
        assert server.pid is not None
        self._replace("mariadb", server.pid)
        return server.pid

    # -- PostgreSQL and Redis ----------------------------------------------------------
    def stop_postgres(self) -> None:
        """Fast shutdown (SIGINT), as ``systemctl stop postgresql`` does."""
        self.record("postgres").stop(30.0, signal.SIGINT, group=False)

    def start_postgres(self) -> int:
        """Start the stack's cluster again on the same port, data and log."""
        from flaskprod.stack.postgres import PostgresCluster

        port = _port_of(self.record("postgres"))
        cluster = PostgresCluster(
            self.dirs.postgres,
            port=port,
            log_path=self.dirs.log("postgres"),
            max_connections=int(self.spec().database.max_connections),
            ready_timeout=30.0,
            stop_at_exit=False,
        )
        cluster.start()
        assert cluster.pid is not None
        self._replace("postgres", cluster.pid)
        return cluster.pid

    def postgres_process(self) -> process.Process:
        record = self.record("postgres")
        return process.Process("postgres", record.pid, Path(record.log), record.started)

    def pause_postgres(self) -> None:
        """SIGSTOP the postmaster and every backend: a stalled database host."""
        self.postgres_process().pause()

    def resume_postgres(self) -> None:
        self.postgres_process().resume()

    def database_process(self) -> process.Process:
        """The stack's database server (PostgreSQL's postmaster or mariadbd)."""
        record = self.record(self.database)
        return process.Process(self.database, record.pid, Path(record.log), record.started)

    def pause_database(self) -> None:
        """SIGSTOP the database server and every thread and child of it: a stalled
        database host (returns once every one of them is stopped)."""
        self.database_process().pause()

    def resume_database(self) -> None:
        self.database_process().resume()

    def stop_redis(self) -> None:
        self.record("redis").stop(10.0, signal.SIGTERM)

    def start_redis(self) -> int:
        from flaskprod.stack.redis import RedisServer

        server = RedisServer(
            self.dirs.redis,
            port=_port_of(self.record("redis")),
            persistence=True,
            stop_at_exit=False,
        )
        server.start()
        assert server.pid is not None
        self._replace("redis", server.pid)
        return server.pid

    def redis_command(self, *args: str) -> bytes:
        """One command to the stack's Redis (e.g. to age out the product cache)."""
        from flaskprod.stack.redis import RedisServer

        server = RedisServer(self.dirs.redis, port=_port_of(self.record("redis")))
        return server.command(*args)

    def _replace(self, name: str, pid: int) -> None:
        """Record a restarted service under its new pid (so ``down`` stops it)."""
        state = self.dirs.read()
        if state is None:
            raise StackError(f"{self.dirs.state_file} is gone")
        old = state.service(name)
        record = ServiceRecord(
            name=name,
            pid=pid,
            started=process.start_time(pid),
            address=old.address if old else "",
            log=old.log if old else str(self.dirs.log(name)),
            data=old.data if old else None,
            slot=old.slot if old else None,
        )
        state.services = [record if s is old else s for s in state.services]
        self.dirs.write(state)

    # -- the database, read directly ---------------------------------------------------
    def orders_by_key(self, prefix: str) -> dict[str, list[int]]:
        """Every order whose Idempotency-Key starts with ``prefix``: key -> order ids."""
        if self.database == "mariadb":
            return self._mariadb_orders(prefix)
        import psycopg

        with psycopg.connect(self.database_dsn(), connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT idempotency_key, id FROM orders WHERE idempotency_key LIKE %s",
                (prefix.replace("%", r"\%").replace("_", r"\_") + "%",),
            ).fetchall()
        found: dict[str, list[int]] = {}
        for key, order_id in rows:
            found.setdefault(str(key), []).append(int(order_id))
        return found

    def _mariadb_orders(self, prefix: str) -> dict[str, list[int]]:
        from flaskprod.ops import mariadb
        from flaskprod.ops.database import parse_url

        if not re.fullmatch(r"[A-Za-z0-9-]+", prefix):
            raise StackError(f"unexpected order key prefix {prefix!r}")
        db = parse_url(self.env["DATABASE_URL"])
        sql = f"SELECT idempotency_key, id FROM orders WHERE idempotency_key LIKE '{prefix}%';"  # noqa: S608
        rows = mariadb.query(db, sql, database=db.dbname)
        found: dict[str, list[int]] = {}
        for key, order_id in rows:
            found.setdefault(key, []).append(int(order_id))
        return found

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds until readiness through nginx answers 200 (raises after ``timeout``)."""
        began = time.monotonic()
        with self.client(timeout=3.0) as client:
            while time.monotonic() - began < timeout:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/health/ready").status_code == 200:
                        return time.monotonic() - began
                time.sleep(0.05)
        raise StackError(f"the stack was not ready within {timeout:g}s")


def _port_of(record: ServiceRecord) -> int:
    return int(record.address.rsplit(":", 1)[1])


def _set_worker_class(spec: Path, worker_class: str) -> None:
    # The line may be commented out (a granian spec refuses gunicorn's settings).
    text, count = re.subn(
        r'(?m)^(# )?worker_class = "[a-z]+"$', f'worker_class = "{worker_class}"', spec.read_text()
    )
    if count != 1:
        raise RuntimeError(f"{spec}: no single 'worker_class = ...' line to replace")
    spec.write_text(text)


def set_mariadb(spec: Path) -> None:
    """database.engine = "mariadb" through PyMySQL, as a user switching would write it."""
    text = spec.read_text()
    text, engines = re.subn(r'(?m)^engine = "postgresql"$', 'engine = "mariadb"', text)
    text, drivers = re.subn(r'(?m)^driver = "[a-z0-9]+"$', 'driver = "pymysql"', text)
    if engines != 1:
        raise RuntimeError(f"{spec}: no single 'engine = \"postgresql\"' line to replace")
    if not drivers:
        text = text.replace('engine = "mariadb"', 'engine = "mariadb"\ndriver = "pymysql"')
    spec.write_text(text)


@contextlib.contextmanager
def running_stack(
    worker_class: str | None = None, server: str | None = None, database: str | None = None
) -> Iterator[FaultStack]:
    """``flaskprod up -d`` of a fresh copy of the shop; ``flaskprod down`` afterwards,
    then every recorded pid is checked gone (and stopped by pid if ``down`` failed).
    ``server``: the app server (gunicorn or granian) instead of the shop's;
    ``worker_class``: gunicorn's, instead of the shop's (``up`` re-renders the kit);
    ``database``: ``mariadb`` to run the shop on MariaDB (through PyMySQL) instead of
    its PostgreSQL."""
    project = copy_shop("flaskprod-faults-")
    if database == "mariadb":
        set_mariadb(project / "flaskprod.toml")
    if server is not None:
        set_server_kind(project, server)
    if worker_class is not None:
        _set_worker_class(project / "flaskprod.toml", worker_class)
    with running_shop(FaultStack.on_free_ports(project)) as stack:
        yield stack


def loopback(block: int, number: int) -> str:
    """A loopback source address of its own for load thread ``number`` (127.0.block.n)."""
    return f"127.0.{block}.{number % 250 + 1}"


__all__ = [
    "LOOPBACK",
    "FaultStack",
    "StackError",
    "flaskprod",
    "loopback",
    "running_stack",
    "set_mariadb",
]
