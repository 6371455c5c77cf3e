"""How ``make pytest`` spreads the suite over pytest-xdist workers (``-n N``).

Most of the suite's time is the lab modules (tests/deploy): real Debian hosts that spend
their minutes waiting on apt and pip through the package proxy and on fixed timeouts,
not on the CPU. Each lab module is safe beside the others (a lab per process: its own
workdir, proxy, network namespace and nspawn machine names; shared caches are locked or
written atomically, docs/lab.md), but the rest of the suite was written for one process
(session servers, shared folders, timing), so:

- everything outside tests/deploy is ONE unit, run in collection order by one worker;
- every module of tests/deploy is a unit of its own, the longest first, on whichever
  worker is free;

so the lab modules run beside each other and beside the rest of the suite. A worker runs
a test only once it knows its next one (fixture teardown needs it), so a worker is given
its next unit when one test of its current unit is left: as late as xdist allows, which
keeps a free worker from waiting behind a long module another worker took in advance.
"""

from __future__ import annotations

from collections import OrderedDict

from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

LAB = "tests/deploy/"
#: The unit of everything outside tests/deploy.
SERIAL = "(the suite outside tests/deploy, in order)"
#: Lab modules, longest first (measured on the 2-core machine, 2026-12-07: the offsite
#: drill 4.5-6.5 min, multihost ~4, workers ~3.7, MariaDB ~2.5, the state hosts ~2.3,
#: the rest ~2 or less). Modules not named run after these, in collection order.
LONGEST_FIRST = (
    "test_offsite_drill.py",
    "test_multihost.py",
    "test_workers_systemd.py",
    "test_mariadb_deploy.py",
    "test_state_hosts.py",
    "test_ship_release.py",
    "test_provision.py",
    "test_real_project_deploy.py",
)


def unit_of(nodeid: str) -> str:
    """The unit a test belongs to: its module in tests/deploy, else the serial unit."""
    path = nodeid.split("::", 1)[0]
    return path if path.startswith(LAB) else SERIAL


def _rank(unit: str) -> tuple[int, int]:
    if unit == SERIAL:
        return (0, 0)  # the longest unit of all: started first
    name = unit.rsplit("/", 1)[-1]
    if name in LONGEST_FIRST:
        return (1, LONGEST_FIRST.index(name))
    return (2, 0)


class LabScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with flaskprod's units and order (see the module)."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _reschedule(self, node: WorkerController) -> None:
        if node.shutting_down:
            return
        if not self.workqueue:
            node.shutdown()
            return
        # One test ahead is all a worker needs (xdist's own keeps two).
        if self._pending_of(self.assigned_work[node]) > 1:
            return
        self._assign_work_unit(node)

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:  # a worker was added or replaced
            for node in self.nodes:
                self._reschedule(node)
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = list(next(iter(self.registered_collections.values())))
        if not self.collection:
            return
        units: dict[str, dict[str, bool]] = {}
        for nodeid in self.collection:
            units.setdefault(unit_of(nodeid), {})[nodeid] = False
        # sorted() is stable: unnamed lab modules keep their collection order.
        self.workqueue = OrderedDict(sorted(units.items(), key=lambda unit: _rank(unit[0])))
        for _ in range(len(self.nodes) - len(self.workqueue)):  # more workers than units
            unused, _assigned = self.assigned_work.popitem()
            unused.shutdown()
        for node in self.nodes:
            self._assign_work_unit(node)
        for node in self.nodes:
            self._reschedule(node)
        if not self.workqueue:
            for node in self.nodes:
                node.shutdown()
