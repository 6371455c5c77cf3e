"""The request watchdog: a request over REQUEST_TIMEOUT ends its worker, as gunicorn's
timeout ends a sync worker; in a real gthread gunicorn with a frozen PostgreSQL, the
worker exits and gunicorn's replacement answers while the database is still frozen."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import (
    GOOD_KEY,
    MakeApp,
    app_server,
    get_json,
    gunicorn_argv,
    json_lines,
    server_env,
)

from flaskprod.runtime.config import StartupRefused
from flaskprod.runtime.watchdog import DEFAULT_TIMEOUT, WATCHDOG, request_timeout
from flaskprod.stack.ports import free_port
from flaskprod.stack.postgres import PostgresCluster

# -- which servers are watched ---------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "environ", "expected"),
    [
        ({"FLASKPROD_ENV": "production"}, {"wsgi.multithread": True}, DEFAULT_TIMEOUT),
        ({"FLASKPROD_ENV": "production"}, {"wsgi.multithread": False}, 0.0),
        ({"FLASKPROD_ENV": "development"}, {"wsgi.multithread": True}, 0.0),
        ({"FLASKPROD_ENV": "testing"}, {"wsgi.multithread": True}, 0.0),
        ({"FLASKPROD_ENV": "production", "REQUEST_TIMEOUT": 0.0}, {"wsgi.multithread": True}, 0),
        ({"FLASKPROD_ENV": "development", "REQUEST_TIMEOUT": 5.0}, {}, 5.0),
    ],
)
def test_request_timeout_by_profile_and_server(
    config: dict[str, Any], environ: dict[str, Any], expected: float
) -> None:
    assert request_timeout(config, environ) == expected


def watched_view(make_app: MakeApp, env: dict[str, str] | None = None, **environ: Any) -> bool:
    """Whether a request of a fresh app was in the watchdog's table while it ran."""
    app = make_app(env=env)

    @app.get("/watched")
    def watched() -> Any:
        return {"watched": threading.get_ident() in WATCHDOG.inflight}

    response = app.test_client().get("/watched", environ_overrides=environ)
    assert threading.get_ident() not in WATCHDOG.inflight  # removed when it ended
    return bool(response.json["watched"])


def test_test_client_is_not_watched_unless_asked(make_app: MakeApp) -> None:
    assert watched_view(make_app) is False
    assert watched_view(make_app, env={"FLASKPROD_REQUEST_TIMEOUT": "30"}) is True


def test_threaded_server_in_production_is_watched(make_app: MakeApp) -> None:
    # What gunicorn's gthread worker puts in the environ.
    assert watched_view(make_app, **{"wsgi.multithread": True}) is True
    off = {"FLASKPROD_REQUEST_TIMEOUT": "0"}
    assert watched_view(make_app, env=off, **{"wsgi.multithread": True}) is False


@pytest.mark.parametrize("value", ["soon", "-1", '"nan"'])
def test_bad_request_timeout_refused(make_app: MakeApp, value: str) -> None:
    with pytest.raises(StartupRefused) as refused:
        make_app(env={"FLASKPROD_REQUEST_TIMEOUT": value})
    assert "REQUEST_TIMEOUT=" in str(refused.value)
    assert "number of seconds" in str(refused.value)


# -- a hung request ends its process ---------------------------------------------------

HUNG = """
import time
from flask import Flask
from flaskprod import Production

app = Flask(__name__)
Production(app)

@app.get("/hang")
def hang():
    time.sleep(60)
    return "never"

app.test_client().get("/hang", headers={"X-Request-ID": "req-hung-1"})
print("not reached")
"""


def test_configured_timeout_ends_even_a_test_client_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FLASKPROD_"))}
    env |= {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY, "DATABASE_URL": "sqlite://"}
    env["FLASKPROD_REQUEST_TIMEOUT"] = "1"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HUNG], env=env, cwd=tmp_path, capture_output=True, timeout=30
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 1, done.stderr
    assert elapsed < 8  # 1 s + interpreter start
    assert b"not reached" not in done.stdout
    (line,) = [r for r in json_lines(done.stdout.decode()) if r["logger"] == "flaskprod.watchdog"]
    assert line["level"] == "ERROR"
    assert line["request_id"] == "req-hung-1" and line["path"] == "/hang"
    assert "GET /hang still running after 1.0 s" in line["message"]
    assert "REQUEST_TIMEOUT 1 s" in line["message"]
    assert "hang" in line["message"].split("waiting in", 1)[1]  # where it waits: the view
    assert "the worker exits so that gunicorn replaces it" in line["message"]


# -- real gunicorn gthread, real frozen PostgreSQL -------------------------------------

APP = """
import os, time
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from flaskprod import Production

app = Flask(__name__)
Production(app)
db = SQLAlchemy(app)

@app.get("/pid")
def pid():
    return {"pid": os.getpid()}

@app.get("/db")
def query():
    return {"pid": os.getpid(), "one": db.session.execute(text("SELECT 1")).scalar()}

@app.get("/sleep")
def nap():
    time.sleep(1.0)
    return {"pid": os.getpid()}
"""

REQUEST_TIMEOUT = 2


@contextmanager
def gthread_gunicorn(tmp_path: Path, database_url: str) -> Iterator[tuple[int, Path, Path]]:
    """One gthread worker (4 threads), gunicorn's timeout 30 s, REQUEST_TIMEOUT 2 s."""
    (tmp_path / "hangapp.py").write_text(APP)
    port = free_port()
    env = server_env(
        DATABASE_URL=database_url,
        FLASKPROD_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT),
        # The stall guard would answer the frozen database's requests with a 503 first
        # (tests/runtime/test_stall.py): off, to test the watchdog, its backstop.
        FLASKPROD_DATABASE_STALL_SECONDS="0",
    )
    argv = gunicorn_argv(port, "gthread", "hangapp:app")
    with app_server(tmp_path, port, argv, env) as (out, err):
        yield port, out, err


@pytest.mark.services
def test_gthread_worker_stuck_on_frozen_postgres_is_replaced(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    with gthread_gunicorn(tmp_path, postgres_url) as (port, out, err):
        old = get_json(port, "/pid")[1]["pid"]
        # Fast requests, and one slower than the watch interval but under the timeout,
        # all in the same worker: none is cut.
        with ThreadPoolExecutor(4) as pool:
            slow = pool.submit(get_json, port, "/sleep")
            fast = list(pool.map(lambda _: get_json(port, "/pid"), range(100)))
            assert slow.result() == (200, {"pid": old})
        assert fast == [(200, {"pid": old})] * 100
        assert get_json(port, "/db") == (200, {"pid": old, "one": 1})  # a pooled connection
        postgres_cluster.pause()
        try:
            start = time.monotonic()
            with pytest.raises(OSError):  # the connection closes: no answer
                get_json(port, "/db", timeout=20)
            held = time.monotonic() - start
            # At REQUEST_TIMEOUT (+ the exit and the reply), never gunicorn's 30 s.
            assert REQUEST_TIMEOUT <= held < REQUEST_TIMEOUT + 1.0
            # The master replaced the worker; the new one answers while still frozen.
            deadline = time.monotonic() + 10
            while True:
                with_pid: Any = None
                with suppress(OSError):
                    with_pid = get_json(port, "/pid", timeout=2)
                if with_pid is not None and with_pid[1]["pid"] != old:
                    break
                assert time.monotonic() < deadline, "no new worker answered in 10 s"
                time.sleep(0.05)
            assert get_json(port, "/health") == (200, {"status": "ok"})
            start = time.monotonic()
            status, body = get_json(port, "/health/ready")
            assert time.monotonic() - start < 2.0  # readiness within its 2 s
            assert status == 503 and body["checks"]["database"]["error"] == "timeout"
        finally:
            postgres_cluster.resume()
        deadline = time.monotonic() + 15
        while get_json(port, "/health/ready")[0] != 200:
            assert time.monotonic() < deadline, "readiness did not recover after resume"
            time.sleep(0.1)
        assert get_json(port, "/db")[0] == 200
    records = json_lines(out.read_text())
    (line,) = [r for r in records if r.get("logger") == "flaskprod.watchdog"]
    assert line["level"] == "ERROR" and line["path"] == "/db" and line["request_id"]
    assert "the worker exits so that gunicorn replaces it" in line["message"]
    log = err.read_text()
    assert f"Worker (pid:{old}) exited with code 1" in log
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log
