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


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def lab_host(lab: Lab) -> Iterator[LabHost]:
    host = lab.boot(f"h{next(_counter)}")
    try:
        yield host
    finally:
        host.kill()
