"""How many app server workers a machine should run, when the spec does not say.

Standard library only: the rendered ``gunicorn.conf.py`` imports it on the server, so
the count comes from the machine that runs gunicorn, not the one that rendered the kit.
"""

from __future__ import annotations

import os


def default_workers(worker_class: str, cpus: int | None = None) -> int:
    """Workers for this machine: the classic 2 x cores + 1 for sync workers, which
    block on every request; threaded and async workers overlap I/O themselves, so
    one process per core (at least 2, so that a reload or crash never empties the
    pool) gives the same concurrency with far less memory."""
    cores = cpus or os.cpu_count() or 1
    if worker_class == "sync":
        return 2 * cores + 1
    return max(2, cores)


#: Connections PostgreSQL keeps for others than the app's workers: its superuser
#: reserve (3), a migration or backup, an operator's psql.
RESERVED_CONNECTIONS = 5


def default_pool(worker_class: str, threads: int) -> tuple[int, int]:
    """(pool_size, max_overflow) per worker when the spec does not say: as many
    connections as the worker can use at once, so that workers x (pool + overflow)
    stays far below PostgreSQL's max_connections. A sync worker serves one request at
    a time (1); a gthread worker one per thread, and so does a granian worker (its
    blocking threads run the WSGI app); gevent has no such bound (10, and the
    pool's timeout queues the rest). The overflow's 1 is the readiness check, which
    runs in a thread of its own."""
    if worker_class == "sync":
        return 1, 1
    if worker_class in ("gthread", "granian"):
        return threads, 1
    return 10, 5
