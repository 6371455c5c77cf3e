"""How many gunicorn workers a machine should run, when the spec does not say.

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
