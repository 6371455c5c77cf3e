"""The connection budget: every connection the app can open, on every host, against
what PostgreSQL accepts.

One host's web workers alone are PRJ008's; this counts the whole fleet — hosts x
workers x (pool + overflow), plus the processes beside the web server (a job holds one
connection at a time), plus the reserve for migrations, backups and psql. With
PgBouncer the app's connections end at PgBouncer, and PostgreSQL sees only its pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flaskprod.spec.workers import RESERVED_CONNECTIONS

if TYPE_CHECKING:
    from flaskprod.spec.model import Spec

#: How to fix an over-budget spec, in the words of its keys.
FIX = (
    "set database.pgbouncer = true (app connections share PgBouncer's pool), or lower "
    "database.pool_size / max_overflow or server.workers, or raise database.max_connections"
)


@dataclass(frozen=True)
class ConnectionBudget:
    hosts: int
    workers: int
    pool_size: int
    max_overflow: int
    #: Connections the processes beside the web server hold at once, per host.
    process_connections: int
    max_connections: int
    #: PgBouncer's server pool, when the app goes through PgBouncer.
    pgbouncer_pool: int | None = None
    pgbouncer_max_clients: int | None = None
    reserved: int = RESERVED_CONNECTIONS

    @property
    def app_connections(self) -> int:
        """Most connections the app opens, on all hosts together."""
        per_host = self.workers * (self.pool_size + self.max_overflow) + self.process_connections
        return self.hosts * per_host

    @property
    def server_connections(self) -> int:
        """Most connections PostgreSQL sees."""
        clients = self.app_connections if self.pgbouncer_pool is None else self.pgbouncer_pool
        return clients + self.reserved

    @property
    def fits(self) -> bool:
        if self.server_connections > self.max_connections:
            return False
        return self.pgbouncer_max_clients is None or (
            self.app_connections <= self.pgbouncer_max_clients
        )

    def arithmetic(self) -> str:
        """The sum, as the message shows it."""
        hosts = f"{self.hosts} host{'s' if self.hosts != 1 else ''}"
        text = (
            f"{hosts} x {self.workers} workers x (pool {self.pool_size} + overflow "
            f"{self.max_overflow})"
        )
        if self.process_connections:
            text += f" + {hosts} x {self.process_connections} process connections"
        return f"{text} = {self.app_connections} app connections"

    def describe(self) -> str:
        """One line: the numbers and whether they fit."""
        if self.pgbouncer_pool is not None:
            return (
                f"{self.arithmetic()} through PgBouncer (max_client_conn "
                f"{self.pgbouncer_max_clients}); PostgreSQL sees its pool {self.pgbouncer_pool}"
                f" + {self.reserved} reserved = {self.server_connections} of "
                f"max_connections {self.max_connections}"
            )
        return (
            f"{self.arithmetic()} + {self.reserved} reserved = {self.server_connections} "
            f"{'<=' if self.fits else '>'} database.max_connections = {self.max_connections}"
        )


def _process_connections(spec: Spec) -> int:
    # A job runs in one thread and holds one connection at a time; a pool of workers
    # (rq worker-pool, celery --concurrency) one per worker. Schedulers touch no database.
    total = 0
    for process in spec.processes.values():
        if process.kind in ("rq-scheduler", "celery-beat"):
            continue
        total += process.concurrency or 1
    return total


def connection_budget(spec: Spec, hosts: int | None = None) -> ConnectionBudget:
    """The budget of ``spec`` on ``hosts`` app hosts (default: the spec's deploy.hosts,
    at least one)."""
    count = max(1, len(spec.deploy.hosts) if hosts is None else hosts)
    pool_size, max_overflow = spec.pool
    database = spec.database
    return ConnectionBudget(
        hosts=count,
        workers=spec.server.effective_workers,
        pool_size=pool_size,
        max_overflow=max_overflow,
        process_connections=_process_connections(spec),
        max_connections=database.max_connections,
        pgbouncer_pool=database.pgbouncer_pool_size if database.pgbouncer else None,
        pgbouncer_max_clients=database.pgbouncer_max_clients if database.pgbouncer else None,
    )
