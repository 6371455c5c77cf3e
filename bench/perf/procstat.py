"""CPU and memory of a set of process trees, from /proc (Linux only).

CPU counts the processes alive at each reading plus what their reaped children used
(``cutime``/``cstime``): a gunicorn worker recycled by ``max_requests`` or a
PostgreSQL backend that exited during a run still counts, through its parent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from flaskprod.stack.process import descendants
from flaskprod.stack.state import process_rss

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of ``pid`` (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return 0
    # The command name may hold spaces: fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(value) for value in fields[11:15])


def tree(roots: Iterable[int]) -> list[int]:
    pids: set[int] = set()
    for root in roots:
        if os.path.exists(f"/proc/{root}"):
            pids.add(root)
            pids.update(descendants(root))
    return sorted(pids)


@dataclass(frozen=True)
class Reading:
    cpu_seconds: float
    rss_bytes: int


def read(roots: Iterable[int]) -> Reading:
    pids = tree(roots)
    ticks = sum(cpu_ticks(pid) for pid in pids)
    return Reading(ticks / TICKS, sum(process_rss(pid) for pid in pids))


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def pss(pid: int) -> int:
    """Proportional set size: pages shared with the master (preload_app) or with other
    workers count as a share, so the sum over processes is the real memory used."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
