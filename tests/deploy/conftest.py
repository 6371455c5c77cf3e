"""Real Debian 12 hosts for the deploy tests (src/flaskprod/lab, docs/lab.md).

``lab``: the base (cached outside the clone, built once, ~1 min) and the package proxy,
for the whole session. ``lab_host``: a freshly booted host per test, stopped by pid
when the test ends, also when it fails. Hosts are reached as ssh_config aliases
through ``lab.ssh_config``, the way a deploy reaches a real server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flaskprod.lab import Lab, LabHost


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    started = Lab.start(tmp_path_factory.mktemp("lab"), echo=print)
    try:
        yield started
    finally:
        started.stop()


#: A lab test's bound (setup included: a module's deploy is its first test's setup).
#: Beside other labs and the rest of the suite (make pytest's workers) a deploy that takes
#: 2 min alone took over the suite's 300 s; a test that says its own bound keeps it.
LAB_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LAB_TIMEOUT))


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def lab_host(lab: Lab) -> Iterator[LabHost]:
    host = lab.boot(f"h{next(_counter)}")
    try:
        yield host
    finally:
        host.kill()
