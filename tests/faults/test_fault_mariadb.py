"""Scenarios 9 and 10: the database restart of scenario 4 and the stall of scenario 7
with the shop on MariaDB (the MariaDB ``up`` runs in the state folder, the shop
through PyMySQL with flaskprod's pre-ping, pool_recycle and stall guard). Restarted:
readiness 503 within 2 s and back within 2 s, cached reads unaffected, pages 503 not
500. Stalled (SIGSTOP of every thread): no request held beyond the stall guard's
bound, failures 503 only, readiness 503 in time and 200 after SIGCONT. Neither loses
an acknowledged order or stores one twice (checked in MariaDB directly)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.faults.scenarios import (  # noqa: E402
    STALL_BOUND,
    TEST,
    mariadb_restarted,
    mariadb_stalled,
)
from bench.faults.stack import FaultStack, StackError, running_stack  # noqa: E402

pytestmark = [pytest.mark.services, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def mariadb_stack() -> Iterator[FaultStack]:
    try:
        with running_stack(database="mariadb") as stack:
            yield stack
    except StackError as error:
        pytest.fail(f"the MariaDB stack for scenario 9 did not start: {error}", pytrace=False)


def test_mariadb_restart_turns_readiness_503_and_back_and_loses_no_order(
    mariadb_stack: FaultStack,
) -> None:
    assert mariadb_stack.database == "mariadb"
    assert mariadb_stack.env["DATABASE_URL"].startswith("mysql+pymysql://shop:")
    before = mariadb_stack.pid("mariadb")
    result = mariadb_restarted(mariadb_stack, TEST)
    assert result["scenario"] == 9 and result["title"] == "MariaDB restarted"
    assert mariadb_stack.pid("mariadb") != before, "MariaDB was not restarted"
    extra = result["extra"]
    assert extra["readiness_503_after_s"] is not None and extra["readiness_503_after_s"] <= 2.0
    assert extra["readiness_200_after_restart_s"] is not None
    assert extra["readiness_200_after_restart_s"] <= 2.0
    assert not result["load"]["failed_gets"], "a cached product read failed"
    assert result["load"]["tracebacks"] == 0
    assert "503" in extra["page_during_outage"], extra
    orders = result["orders"]
    assert orders["acknowledged"] > 0 and orders["lost"] == orders["duplicated"] == 0, orders
    failed = [c for c in result["checks"] if not c["passed"]]
    assert not failed, failed


def test_a_stalled_mariadb_answers_503_within_the_guards_bound_and_loses_no_order(
    mariadb_stack: FaultStack,
) -> None:
    result = mariadb_stalled(mariadb_stack, TEST)
    assert result["scenario"] == 10 and result["title"] == "MariaDB stalled (SIGSTOP)"
    extra = result["extra"]
    # Without the guard a request would wait for PyMySQL's read timeout (30 s).
    assert extra["longest_request_in_app_s"] <= STALL_BOUND + 0.5, extra
    assert extra["access_lines_in_log"] > 0
    assert extra["worker_timeouts_in_log"] == extra["requests_cut_by_watchdog"] == 0
    assert set(extra["first_attempt_failures"]) <= {"503"}, extra
    assert extra["readiness_503_after_s"] is not None and extra["readiness_503_after_s"] <= 2.5
    assert extra["readiness_200_after_resume_s"] is not None
    assert result["load"]["tracebacks"] == 0
    orders = result["orders"]
    assert orders["acknowledged"] > 0 and orders["lost"] == orders["duplicated"] == 0, orders
    failed = [c for c in result["checks"] if not c["passed"]]
    assert not failed, failed
