"""`flaskprod up` with ``server.kind = "granian"``: a copy of the shop whose
flaskprod.toml says granian, started, inspected, reloaded under load and stopped by
the same commands as the gunicorn stack (one lifecycle, the command differs)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import ShopStack, flaskprod, start_shop_stack
from test_up_stack import LoadResult, _load, _orders_by_key, _wait_requests

from flaskprod.stack.process import is_alive
from flaskprod.stack.state import children_of


@pytest.fixture(scope="module")
def granian_stack() -> Iterator[ShopStack]:
    stack = start_shop_stack("granian")
    yield next(stack)
    next(stack, None)  # flaskprod down, then every recorded pid checked gone


def test_up_runs_granian_with_the_kits_flags(granian_stack: ShopStack) -> None:
    names = [record["name"] for record in granian_stack.state()["services"]]  # type: ignore[index]
    assert "granian" in names and "gunicorn" not in names, names
    master = granian_stack.pid("granian")
    argv = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    # the project's granian (here flaskprod's own: the shop has no venv), the kit's flags
    assert any(part.endswith(b"/granian") for part in argv[:2]), argv
    for flag in (b"--respawn-failed-workers", b"--workers-kill-timeout", b"--blocking-threads"):
        assert flag in argv, argv
    assert len(children_of(master)) >= 2  # one per core, at least 2
    assert not (granian_stack.project / "deploy" / "gunicorn.conf.py").exists()
    with granian_stack.client() as client:
        assert client.get("/health/ready").status_code == 200
        assert client.get("/api/products").status_code == 200


def test_status_and_logs_name_granian(granian_stack: ShopStack) -> None:
    status = flaskprod("status", str(granian_stack.project))
    line = next(line for line in status.stdout.splitlines() if "granian" in line)
    assert "running" in line and "accepts" in line, status.stdout
    logs = flaskprod("logs", str(granian_stack.project), "granian", "-n", "200")
    assert "granian | [INFO] Listening at: http://unix:" in logs.stdout, logs.stdout[-2000:]


def test_reload_under_load_loses_nothing(granian_stack: ShopStack) -> None:
    """The new code on the other slot, nginx switched once it is ready, the old server
    retired once nginx's old workers are gone: a bounded load of GETs and idempotent
    POSTs sees no failure."""
    stop = threading.Event()
    result = LoadResult()
    master = granian_stack.pid("granian")
    workers_before = set(children_of(master))
    pool = _load(
        granian_stack, stop, result, getters=4, posters=3, max_requests=3000,
        deadline=time.monotonic() + 60,
    )  # fmt: skip
    try:
        _wait_requests(result, 50)
        reload = flaskprod("reload", str(granian_stack.project), timeout=90)
        assert "serving" in reload.stdout and "reloaded" in reload.stdout, reload.stdout
        served_during = result.gets + len(result.acknowledged)
        _wait_requests(result, served_during + 50)
    finally:
        stop.set()
        pool.shutdown(wait=True)
    print(
        f"granian reload under load: {result.gets} GETs, {len(result.acknowledged)} orders, "
        f"{len(result.failures)} failed, {result.retried} retried; {reload.stdout.strip()}"
    )
    assert not result.failures, f"{len(result.failures)} failed: {result.failures[:5]}"
    assert result.gets > 50 and len(result.acknowledged) > 20, result.statuses
    assert granian_stack.pid("granian") != master  # a new server (the other slot)
    assert not is_alive(master) and not workers_before & set(
        children_of(granian_stack.pid("granian"))
    )
    stored = _orders_by_key(granian_stack, result.acknowledged)
    assert sorted(stored) == sorted(result.acknowledged), "an acknowledged order is missing"
    assert all(count == 1 for count in stored.values()), "an order was stored twice"


def test_a_dead_worker_is_replaced(granian_stack: ShopStack) -> None:
    """--respawn-failed-workers: a worker that dies (as the request watchdog makes a
    hung one exit) is replaced, and granian keeps serving."""
    master = granian_stack.pid("granian")
    victim = children_of(master)[0]
    os.kill(victim, signal.SIGKILL)  # a worker of the stack this module started
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = children_of(master)
        if victim not in workers and len(workers) >= 2:
            break
        time.sleep(0.1)
    assert victim not in children_of(master) and len(children_of(master)) >= 2
    with granian_stack.client() as client:
        assert client.get("/health/ready").status_code == 200
