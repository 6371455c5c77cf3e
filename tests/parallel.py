"""How ``make pytest`` spreads the suite over pytest-xdist workers (``-n N``).

Most of the suite's time is waiting, not computing: the lab modules (tests/deploy) boot
real Debian hosts and wait on apt and pip through the package proxy and on fixed
timeouts; the rest starts servers, waits for them to be ready, for timeouts to fire,
for a browser. So the units below run beside each other:

- every module of tests/deploy is a unit: each lab module is safe beside the others (a
  lab per process: its own workdir, package proxy, network namespace and nspawn machine
  names; the shared caches are locked or written atomically, docs/lab.md);
- every other folder of tests (check, kit, e2e, ...) is ONE unit, run in its order by one
  worker, as it was written to run: its session servers (PostgreSQL, Redis, MariaDB,
  SeaweedFS, nginx) are started once for it, on free ports, in its worker's own temp
  folder, and a folder's fixtures may rely on the order of its modules (tests/e2e stops
  its stack when the next test is outside it).

Units go out longest first (:data:`LONGEST_FIRST`), each to whichever worker is free. A
worker runs a test only once it knows its next one (fixture teardown needs it), so a
worker is given its next unit when one test of its current unit is left: as late as
xdist allows, so that a free worker does not wait behind a long unit another worker
took in advance.
"""

from __future__ import annotations

from collections import OrderedDict

from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

LAB = "tests/deploy/"
#: Units, longest first. The lab modules' order is measured (one process, 2-core
#: machine, 2026-12-07: multihost (the offsite drill folded in) ~8-16, workers ~3.7, MariaDB
#: ~2.5, state hosts ~2.3, the rest ~2); the folders' places are ESTIMATES, to be set
#: from a measured run (--junitxml of PYTEST_WORKERS=0). Units not named go after these,
#: in collection order.
LONGEST_FIRST = (
    "tests/deploy/test_multihost.py",
    "tests/check",
    "tests/kit",
    "tests/e2e",
    "tests/stack",
    "tests/deploy/test_workers_systemd.py",
    "tests/faults",
    "tests/deploy/test_mariadb_deploy.py",
    "tests/deploy/test_state_hosts.py",
    "tests/deploy/test_ship_release.py",
    "tests/deploy/test_provision.py",
    "tests/deploy/test_real_project_deploy.py",
)


def unit_of(nodeid: str) -> str:
    """A test's unit: its module in tests/deploy, else its folder under tests/."""
    path = nodeid.split("::", 1)[0]
    if path.startswith(LAB):
        return path
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else path


def _rank(unit: str) -> int:
    return LONGEST_FIRST.index(unit) if unit in LONGEST_FIRST else len(LONGEST_FIRST)


class LabScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with the units and order above."""

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
        # sorted() is stable: units not named keep their collection order.
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
