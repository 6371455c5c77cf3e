"""bench/perf/breakdown.py: CPU per request by component, on a real gunicorn."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bench.perf import procstat
from bench.perf.breakdown import (
    COMPONENTS,
    attribute,
    component,
    measure,
    shop_at,
    snapshot,
    table,
)
from bench.perf.stacks import REPO, limit_stack
from bench.perf.workloads import Target
from bench.perf.wrk import run_wrk
from flaskprod.stack.state import children_of

TARGET = Target("127.0.0.1", (1, 2), "t0ken")


def test_a_round_gives_each_component_its_cpu_per_request(tmp_path: Path) -> None:
    with limit_stack(tmp_path, workers=1) as stack:
        run_wrk(stack.url, "hello", TARGET, seconds=1, connections=4)
        measured = measure(stack, "hello", TARGET, seconds=1)
    assert measured.requests > 100 and measured.errors == 0
    assert set(measured.us_per_request) == set(COMPONENTS)
    # Only gunicorn runs here: its worker did the work, nothing else was charged.
    assert measured.us_per_request["gunicorn workers"] > 10
    assert measured.us_per_request["nginx"] == measured.us_per_request["redis"] == 0
    lines = list(table("hello", {"limit": [measured]}))
    assert lines[1].split() == ["component", "limit"]
    assert any(line.split()[0] == "TOTAL" for line in lines)


def test_a_worker_that_exits_during_a_round_is_counted_once(tmp_path: Path) -> None:
    """Its whole life reappears in the master's reaped-children time: only what it
    used during the round may count, as in the stack's total from /proc."""
    with limit_stack(tmp_path, workers=1) as stack:
        master = stack.pids["gunicorn"]
        run_wrk(stack.url, "hello", TARGET, seconds=2, connections=4)  # a worker with a past
        (worker,) = children_of(master)
        total_before = procstat.read([master]).cpu_seconds
        before = snapshot(stack)
        lived = before[worker][1] / procstat.TICKS
        assert lived > 0.1, lived  # enough to show up if it were counted twice
        os.kill(worker, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = children_of(master)
            if workers and worker not in workers:
                break
            time.sleep(0.1)
        assert worker not in children_of(master), "gunicorn did not replace its worker"
        after = snapshot(stack)
        total_after = procstat.read([master]).cpu_seconds
    seconds = attribute(before, after)
    assert abs(sum(seconds.values()) - (total_after - total_before)) < 0.05, seconds
    assert seconds["gunicorn master"] < lived / 2, seconds


def test_ref_gives_the_shop_as_committed(tmp_path: Path) -> None:
    shop = shop_at("HEAD", tmp_path)
    assert (shop / "flaskprod.toml").is_file() and (shop / "shop" / "__init__.py").is_file()
    assert (shop / "wsgi.py").read_text() == (REPO / "examples/shop/wsgi.py").read_text()
    with pytest.raises(SystemExit, match="--ref no-such-rev: "):
        shop_at("no-such-rev", tmp_path / "bad")


def test_granian_has_its_own_components() -> None:
    """flaskprod's stack runs granian by default: its master and workers are rows of
    their own, and a granian worker that exits is charged to its master."""
    me = os.getpid()
    assert component("granian", me, me) == "granian master"
    assert component("granian", me, 1) == "granian workers"
    assert {"granian master", "granian workers"} <= set(COMPONENTS)
    before = {me: ("granian workers", 50)}
    seconds = attribute(before, {})
    assert seconds["granian master"] == -50 / procstat.TICKS
