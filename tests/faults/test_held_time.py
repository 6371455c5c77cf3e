"""Scenario 7 judges how long a worker thread was held from gunicorn's access lines and
from flaskprod's watchdog lines (a request the watchdog cut writes no access line)."""

from bench.faults.scenarios import _longest_in_app

ACCESS = b'{"time": "[21/Nov/2026:08:00:00 +0000]", "duration_us": 20012000, "path": "/"}'
WATCHDOG = (
    b'{"time": "2026-11-21T08:00:31Z", "level": "ERROR", "logger": "flaskprod.watchdog", '
    b'"message": "request GET /api/products/3 still running after 30.0 s '
    b'(REQUEST_TIMEOUT 30 s), waiting in psycopg/connection.py:wait"}'
)


def test_requests_that_ended_count_by_their_duration() -> None:
    assert _longest_in_app(ACCESS + b"\n") == 20.012


def test_requests_the_watchdog_cut_count_too() -> None:
    assert _longest_in_app(ACCESS + b"\n" + WATCHDOG + b"\n") == 30.0


def test_other_lines_are_ignored() -> None:
    assert _longest_in_app(b"[INFO] Booting worker with pid: 12\nnot json\n") == 0.0
