"""Scenarios 1, 2, 4 and 5 of the fault suite against a real stack (nginx TLS -> the
shop's app server, gunicorn or granian as its flaskprod.toml says -> the shop,
PostgreSQL, Redis), each under a small bounded load of reads and
idempotent-keyed order POSTs; the orders are checked in PostgreSQL directly.

The long scenarios (3, 6, 7) run on demand: ``python -m bench.faults``.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.faults.scenarios import (
    TEST,
    background_worker_killed,
    postgres_restarted,
    redis_stopped,
    reload_under_load,
    worker_killed,
)
from bench.faults.stack import FaultStack
from flaskprod.stack import process

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]


def _assert_passed(result: dict[str, Any]) -> None:
    failed = [c for c in result["checks"] if not c["passed"]]
    assert not failed, "\n".join(
        f"{c['check']}: expected {c['expected']}, observed {c['observed']}" for c in failed
    )


def _assert_no_order_lost_or_duplicated(result: dict[str, Any]) -> None:
    orders = result["orders"]
    assert orders["acknowledged"] > 0, "no order was placed: the load did not run"
    assert orders["lost"] == 0 and orders["wrong_id"] == 0, orders
    assert orders["duplicated"] == 0, orders


def test_reload_during_load_fails_nothing_and_loses_no_order(fault_stack: FaultStack) -> None:
    server = fault_stack.server
    before = fault_stack.pid(server)
    workers = set(fault_stack.workers())
    result = reload_under_load(fault_stack, TEST)
    assert result["load"]["sent"] > 50, result["load"]
    assert result["load"]["failed_total_first_attempt"] == 0, result["load"]
    assert result["load"]["retries"] == 0, "a POST needed a retry during the reload"
    _assert_no_order_lost_or_duplicated(result)
    # blue/green: a new server on the other slot, the old one retired once drained
    assert fault_stack.pid(server) != before, f"the reload did not replace {server}"
    assert not process.is_alive(before), f"the old {server} still runs"
    assert not workers & set(fault_stack.workers()), "an old worker is still serving"
    _assert_passed(result)


def test_a_killed_worker_fails_no_get_and_loses_no_order(fault_stack: FaultStack) -> None:
    workers = set(fault_stack.workers())
    result = worker_killed(fault_stack, TEST)
    assert not result["load"]["failed_gets"], result["load"]["failed_gets"]
    assert not result["load"]["failed_posts_final"], result["load"]
    assert workers - set(fault_stack.workers()), "no worker was replaced"
    _assert_no_order_lost_or_duplicated(result)
    _assert_passed(result)


def test_postgres_restart_turns_readiness_503_and_back_and_loses_no_order(
    fault_stack: FaultStack,
) -> None:
    result = postgres_restarted(fault_stack, TEST)
    extra = result["extra"]
    assert extra["readiness_503_after_s"] is not None and extra["readiness_503_after_s"] <= 2.0
    assert extra["readiness_200_after_restart_s"] is not None
    assert extra["readiness_200_after_restart_s"] <= 2.0
    assert not result["load"]["failed_gets"], "a cached product read failed"
    assert result["load"]["tracebacks"] == 0
    assert "503" in extra["page_during_outage"], extra  # the outage was seen by pages
    _assert_no_order_lost_or_duplicated(result)
    _assert_passed(result)


def test_redis_stop_degrades_sessions_to_503_and_recovers(fault_stack: FaultStack) -> None:
    result = redis_stopped(fault_stack, TEST)
    extra = result["extra"]
    assert not result["load"]["failed_gets"], "a product read failed without Redis"
    assert set(extra["session_page_during_outage"]) == {"503"}, extra
    assert extra["login_page"]["status"] == 503 and not extra["login_page"]["traceback"]
    assert extra["sessions_back_after_restart_s"] is not None, "sessions did not come back"
    _assert_no_order_lost_or_duplicated(result)
    _assert_passed(result)


def test_a_background_worker_killed_mid_job_loses_no_job(fault_stack: FaultStack) -> None:
    """Scenario 8: the shop's RQ worker SIGKILLed while it runs a job; its keeper starts
    another, the job in progress and the queued ones all finish."""
    result = background_worker_killed(fault_stack, TEST)
    extra = result["extra"]
    assert extra["job_statuses"] == {"finished": extra["jobs"]}, extra
    assert extra["new_worker_registered_after_s"] is not None, extra
    assert not result["load"]["failed_gets"], result["load"]["failed_gets"]
    _assert_passed(result)
