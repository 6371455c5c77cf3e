"""Scenario 7 judges how long a worker thread was held from the access lines (gunicorn's,
granian's or the app's own) and from flaskprod's watchdog lines (a request the watchdog
cut writes no access line)."""

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


#: granian's own access line (its default format, with --access-log), in milliseconds.
GRANIAN = b'[2026-11-21 10:00:00 +0000] 127.0.0.1 - "GET /api/products HTTP/1.1" 200 4012.250'
#: The app's own access line (flaskprod.access, FLASKPROD_ACCESS_LOG on: granian's default).
APP = (
    b'{"time": "2026-11-21T10:00:04Z", "level": "INFO", "logger": "flaskprod.access", '
    b'"message": "GET / 200 3500.5ms", "request_id": "ab", "method": "GET", "path": "/", '
    b'"status": 200, "duration_ms": 3500.5, "remote_addr": "127.0.3.1"}'
)


def test_granians_access_lines_count_in_milliseconds() -> None:
    assert _longest_in_app(b"[INFO] Listening at: unix:/x.sock\n" + GRANIAN + b"\n") == 4.01225


def test_the_apps_own_access_lines_count_in_milliseconds() -> None:
    assert _longest_in_app(APP + b"\n" + GRANIAN + b"\n") == 4.01225
    assert _longest_in_app(APP + b"\n") == 3.5005
