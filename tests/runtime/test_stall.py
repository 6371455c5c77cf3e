"""The database stall guard, against a real PostgreSQL frozen with SIGSTOP.

A statement on a stopped server ends with a 503 (no traceback) within the guard's
bound, a slow statement on a live server is not cut, new calls fail at once while the
breaker is open, readiness says 503 at once and 200 after SIGCONT; in real gunicorn
with sync and gthread workers and in granian, no worker is replaced. The bounds asserted here are
far from the alternative (a request held until the server wakes up, here never).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from runtime_helpers import (
    BIN,
    GOOD_KEY,
    HangingServer,
    app_server,
    get_json,
    gunicorn_argv,
    in_child,
    json_lines,
    server_env,
)
from sqlalchemy import text

from flaskprod import Production
from flaskprod.runtime.config import StartupRefused
from flaskprod.runtime.stall import WATCHER, StallGuard, guard_engine
from flaskprod.stack.mariadb import MariaDBServer
from flaskprod.stack.ports import free_port
from flaskprod.stack.postgres import PostgresCluster

#: Larger than the defaults, so that "failed at once" (milliseconds) and "waited for
#: the guard" (>= STALL + PROBE) cannot be confused on a busy machine.
STALL, PROBE = 1.0, 1.0
BOUND = STALL + PROBE


def guarded_app(monkeypatch: pytest.MonkeyPatch, url: str, **env: str) -> tuple[Flask, Any]:
    base = {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY, "DATABASE_URL": url}
    base |= {"FLASKPROD_DATABASE_STALL_SECONDS": str(STALL)}
    base |= {"FLASKPROD_DATABASE_PROBE_TIMEOUT": str(PROBE), "TRUSTED_PROXIES": "0"}
    for name, value in (base | env).items():
        monkeypatch.setenv(name, value)
    app = Flask("stallapp")
    Production(app)
    db = SQLAlchemy(app)

    @app.get("/db")
    @app.get("/api/db")
    def one() -> Any:
        return {"one": db.session.execute(text("SELECT 1")).scalar()}

    @app.get("/slow")
    def slow() -> Any:
        # Longer than the whole bound: only a probe that answers keeps it alive.
        return {"slept": db.session.execute(text(f"SELECT pg_sleep({BOUND + 0.5})")).all() != []}

    return app, db


def wait_ready(client: Any) -> None:
    """Readiness 200 again within 15 s (after SIGCONT)."""
    deadline = time.monotonic() + 15
    while client.get("/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "readiness did not recover after SIGCONT"
        time.sleep(0.05)


def the_guard(app: Flask) -> StallGuard:
    (guard,) = app.extensions["flaskprod.stall"].guards
    return guard


@pytest.mark.services
def test_stalled_postgres_fails_fast_and_recovers(
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
    postgres_cluster: PostgresCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = guarded_app(monkeypatch, postgres_url)
    client = app.test_client()
    assert client.get("/db").json == {"one": 1}
    guard = the_guard(app)
    assert WATCHER.running and not guard.is_open

    # A slow statement on a live server is not cut: the probe answers.
    start = time.monotonic()
    slow = client.get("/slow")
    assert slow.status_code == 200, slow.get_data(as_text=True)
    assert time.monotonic() - start >= BOUND  # it really ran past the guard's bound
    assert guard.last_alive > 0 and not guard.is_open  # probed, and found alive

    caplog.set_level(logging.WARNING, logger="flaskprod.database")
    postgres_cluster.pause()
    try:
        start = time.monotonic()
        stuck = client.get("/db")
        held = time.monotonic() - start
        assert stuck.status_code == 503
        assert stuck.headers["Retry-After"] == "2"
        page = stuck.get_data(as_text=True)
        assert "Service Unavailable" in page and "Traceback" not in page
        assert "OperationalError" not in page and "psycopg" not in page
        # Cut by the guard: after its bound, long before anything else would end it.
        assert STALL <= held < BOUND + 3.0, held
        assert guard.is_open

        # While the breaker is open, calls fail at once (no new wait for the bound).
        start = time.monotonic()
        api = client.get("/api/db")
        assert time.monotonic() - start < STALL
        assert api.status_code == 503
        assert api.json["error"]["code"] == "service_unavailable"

        start = time.monotonic()
        ready = client.get("/health/ready")
        assert time.monotonic() - start < STALL
        assert ready.status_code == 503
        assert ready.json["checks"]["database"] == {
            "status": "fail",
            "error": "DatabaseUnavailable",
        }
    finally:
        postgres_cluster.resume()
    wait_ready(client)
    assert not guard.is_open
    assert client.get("/db").json == {"one": 1}
    messages = [r.getMessage() for r in caplog.records if r.name == "flaskprod.database"]
    assert any("stalled" in m and "connection(s) cut" in m for m in messages), messages
    assert any("answers again" in m for m in messages), messages


@pytest.mark.services
def test_a_rollback_cut_at_the_end_of_a_request_does_not_fail_it(
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
    postgres_cluster: PostgresCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The request's statement is answered, then the server stops: the session's
    # ROLLBACK in the app context's teardown (where no error handler runs) is the only
    # call in flight. The guard sees it (a connection-level call, not a cursor's) and
    # cuts it; the finished answer stays a 200 instead of a 500 (the fault suite's
    # scenario 7 met it) or a wait until the server resumes.
    app, db = guarded_app(monkeypatch, postgres_url)

    @app.get("/then-freeze")
    def then_freeze() -> Any:
        one = db.session.execute(text("SELECT 1")).scalar()
        postgres_cluster.pause()
        return {"one": one}

    client = app.test_client()
    assert client.get("/db").status_code == 200
    caplog.set_level(logging.WARNING, logger="flaskprod.database")
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(client.get, "/then-freeze")
            try:
                response = answer.result(timeout=BOUND + 15.0)
            finally:
                postgres_cluster.resume()  # a wait for the server ends here, not never
    finally:
        postgres_cluster.resume()
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"one": 1}
    messages = [r.getMessage() for r in caplog.records if r.name == "flaskprod.database"]
    assert any("ROLLBACK cut by the stall guard" in m for m in messages), messages
    deadline = time.monotonic() + 15
    while client.get("/db").status_code != 200:  # the pool replaced the closed connection
        assert time.monotonic() < deadline, "no answer after SIGCONT"
        time.sleep(0.05)


@pytest.mark.services
def test_a_connection_being_made_is_cut_too(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    # A stopped server accepts the TCP connection and never answers the startup:
    # only connect_timeout (10 s here) would end it, the guard does first.
    app, db = guarded_app(monkeypatch, postgres_url, FLASK_SQLALCHEMY_CONNECT_TIMEOUT="10")
    client = app.test_client()
    assert client.get("/db").status_code == 200
    with app.app_context():
        db.engine.dispose()  # the next request connects anew
    postgres_cluster.pause()
    try:
        start = time.monotonic()
        response = client.get("/db")
        held = time.monotonic() - start
        assert response.status_code == 503
        assert STALL <= held < BOUND + 3.0, held  # not the 10 s connect_timeout
    finally:
        postgres_cluster.resume()


@pytest.mark.services
def test_connections_made_before_the_guard_are_guarded(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    # The app talks to the database before its first request (a seed, a warm-up): that
    # pooled connection predates the guard, which learns it at its next checkout.
    app, db = guarded_app(monkeypatch, postgres_url)
    with app.app_context():
        assert db.session.execute(text("SELECT 1")).scalar() == 1
        db.session.remove()
    postgres_cluster.pause()
    try:
        start = time.monotonic()
        response = app.test_client().get("/db")
        held = time.monotonic() - start
        assert response.status_code == 503
        assert STALL <= held < BOUND + 3.0, held
    finally:
        postgres_cluster.resume()


def test_first_connection_to_a_silent_server_is_cut(
    monkeypatch: pytest.MonkeyPatch, hanging_server: HangingServer
) -> None:
    # No connection ever got through in this process: the probe's own connection
    # tells the guard the server's address, and the connection in progress is cut.
    url = f"postgresql://app:pw@127.0.0.1:{hanging_server.port}/app"
    app, _ = guarded_app(monkeypatch, url, FLASK_SQLALCHEMY_CONNECT_TIMEOUT="10")
    start = time.monotonic()
    response = app.test_client().get("/api/db")
    held = time.monotonic() - start
    assert response.status_code == 503
    assert response.json["error"]["code"] == "service_unavailable"
    assert STALL <= held < BOUND + 3.0, held  # not the 10 s connect_timeout
    assert the_guard(app).is_open


@pytest.mark.services
def test_guard_off_or_not_postgres(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    app, _ = guarded_app(monkeypatch, postgres_url, FLASKPROD_DATABASE_STALL_SECONDS="0")
    assert "flaskprod.stall" not in app.extensions
    sqlite, _ = guarded_app(monkeypatch, "sqlite://")
    assert "flaskprod.stall" not in sqlite.extensions


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DATABASE_STALL_SECONDS", "soon"),
        ("DATABASE_STALL_SECONDS", "-1"),
        ("DATABASE_PROBE_TIMEOUT", "0"),
    ],
)
def test_bad_values_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    with pytest.raises(StartupRefused):
        guarded_app(monkeypatch, "sqlite://", **{f"FLASKPROD_{key}": value})
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"flaskprod: {key}=") and "number of seconds" in line


@pytest.mark.services
def test_probe_answers(postgres_url: str, hanging_server: HangingServer) -> None:
    from sqlalchemy import create_engine

    def probe(url: str) -> bool:
        engine = create_engine(url)
        guard = StallGuard(engine, STALL, 0.5)
        from psycopg.conninfo import make_conninfo

        guard.target = make_conninfo(url.replace("postgresql+psycopg", "postgresql"))
        return guard.probe()

    assert probe(postgres_url) is True
    # A server that answers with an error is alive (here: no such database).
    assert probe(postgres_url.rsplit("/", 1)[0] + "/no_such_db") is True
    # Accepts and never answers: a stalled server.
    assert probe(f"postgresql+psycopg://u@127.0.0.1:{hanging_server.port}/x") is False
    # Nothing listens there.
    assert probe(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x") is False


@pytest.mark.services
def test_stalled_mariadb_fails_fast_and_recovers(
    monkeypatch: pytest.MonkeyPatch, mariadb_server: MariaDBServer
) -> None:
    """The same guard on MariaDB through PyMySQL (CTFd's driver): a slow statement on
    a live server runs on, a frozen server's statement ends in a 503 within the bound
    (not PyMySQL's 30 s read timeout), calls fail at once while the breaker is open,
    and all is well again after SIGCONT."""
    mariadb_server.ensure_database("rt_guard", "rt_guard", "pw")
    url = f"mysql+pymysql://rt_guard:pw@127.0.0.1:{mariadb_server.port}/rt_guard?charset=utf8mb4"
    app, db = guarded_app(monkeypatch, url)

    @app.get("/my-slow")
    def my_slow() -> Any:
        return {"slept": db.session.execute(text(f"SELECT SLEEP({BOUND + 0.5})")).scalar()}

    client = app.test_client()
    assert client.get("/db").json == {"one": 1}
    guard = the_guard(app)
    assert guard.driver.name == "pymysql" and not guard.is_open
    assert guard.target == ("127.0.0.1", mariadb_server.port)
    start = time.monotonic()
    slow = client.get("/my-slow")
    assert slow.status_code == 200 and slow.json == {"slept": 0}, slow.get_data(as_text=True)
    assert time.monotonic() - start >= BOUND and not guard.is_open
    mariadb_server.pause()
    try:
        start = time.monotonic()
        stuck = client.get("/db")
        held = time.monotonic() - start
        assert stuck.status_code == 503 and stuck.headers["Retry-After"] == "2"
        page = stuck.get_data(as_text=True)
        assert "Traceback" not in page and "pymysql" not in page.lower()
        assert STALL <= held < BOUND + 3.0, held
        assert guard.is_open
        start = time.monotonic()
        assert client.get("/api/db").status_code == 503
        ready = client.get("/health/ready")
        assert time.monotonic() - start < STALL
        assert ready.status_code == 503
        assert ready.json["checks"]["database"]["error"] == "DatabaseUnavailable"
    finally:
        mariadb_server.resume()
    wait_ready(client)
    assert not guard.is_open
    assert client.get("/db").json == {"one": 1}
    with app.app_context():
        db.engine.dispose()


@pytest.mark.services
def test_mariadb_probe_answers(
    mariadb_server: MariaDBServer, hanging_server: HangingServer
) -> None:
    from flaskprod.runtime.stall_drivers import DRIVERS

    pymysql = DRIVERS["pymysql"]

    def probe(target: Any) -> bool:
        return pymysql.probe(target, 0.5, lambda fd: None)

    # The server's greeting comes before any login: no user, no password needed.
    assert probe(("127.0.0.1", mariadb_server.port)) is True
    assert probe(str(mariadb_server.socket_path)) is True
    assert probe(("127.0.0.1", hanging_server.port)) is False  # accepts, never speaks
    assert probe(("127.0.0.1", free_port())) is False  # nothing listens


@pytest.mark.services
def test_a_forked_child_starts_clean(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    app, db = guarded_app(monkeypatch, postgres_url)
    client = app.test_client()
    assert client.get("/db").status_code == 200
    guard = the_guard(app)
    postgres_cluster.pause()
    try:
        assert client.get("/db").status_code == 503
        assert guard.is_open and guard.connections
    finally:
        postgres_cluster.resume()

    def child() -> int:
        # No breaker, no calls, no connections of the parent, no thread yet.
        clean = not guard.is_open and not guard.inflight and not guard.connections
        return int(clean and not WATCHER.running)

    assert in_child(child) == 1
    with app.app_context():
        assert guard_engine(db.engine) is guard  # idempotent: the same guard


# -- real servers: gunicorn sync and gthread workers, granian ---------------------------

APP = """
import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from flaskprod import Production

app = Flask(__name__)
Production(app)
db = SQLAlchemy(app)

@app.get("/api/db")
def query():
    return {"pid": os.getpid(), "one": db.session.execute(text("SELECT 1")).scalar()}
"""


def get(port: int, path: str, timeout: float = 20) -> tuple[int, Any, float]:
    """The status, JSON body and seconds of a GET."""
    start = time.monotonic()
    status, body = get_json(port, path, timeout)
    return status, body, time.monotonic() - start


@contextmanager
def serve(tmp_path: Path, url: str, worker_class: str) -> Iterator[tuple[int, Path, Path]]:
    """gunicorn with one worker of ``worker_class``, or granian (WSGI, one worker)."""
    (tmp_path / "stallapp.py").write_text(APP)
    port = free_port()
    env = server_env(
        DATABASE_URL=url,
        FLASKPROD_DATABASE_STALL_SECONDS=str(STALL),
        FLASKPROD_DATABASE_PROBE_TIMEOUT=str(PROBE),
    )
    if worker_class == "granian":
        argv = [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", "1", "--blocking-threads", "4"]
        argv += ["stallapp:app"]
    else:
        argv = gunicorn_argv(port, worker_class, "stallapp:app")
    with app_server(tmp_path, port, argv, env) as (out, err):
        yield port, out, err


@pytest.mark.services
@pytest.mark.parametrize("worker_class", ["sync", "gthread", "granian"])
def test_workers_fail_fast_on_a_stalled_database(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster, worker_class: str
) -> None:
    with serve(tmp_path, postgres_url, worker_class) as (port, out, err):
        status, body, _ = get(port, "/api/db")
        assert (status, body["one"]) == (200, 1)
        pid = body["pid"]
        postgres_cluster.pause()
        try:
            # More requests than threads, all at once: none waits past the bound for
            # its own call (a sync worker takes them one after another: the first
            # waits for the guard, the rest fail at once).
            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: get(port, "/api/db"), range(6)))
            assert [a[0] for a in answers] == [503] * 6, answers
            assert all(a[1]["error"]["code"] == "service_unavailable" for a in answers)
            assert max(a[2] for a in answers) < BOUND + 3.0, answers
            status, body, took = get(port, "/health/ready")
            assert status == 503 and body["checks"]["database"]["error"] == "DatabaseUnavailable"
            assert took < STALL  # the breaker answers, nothing waits
        finally:
            postgres_cluster.resume()
        deadline = time.monotonic() + 15
        while get(port, "/health/ready")[0] != 200:
            assert time.monotonic() < deadline, "readiness did not recover after SIGCONT"
            time.sleep(0.1)
        status, body, _ = get(port, "/api/db")
        assert (status, body["pid"]) == (200, pid)  # the same worker: never replaced
    log = err.read_text() + out.read_text()
    assert "Traceback" not in log and "WORKER TIMEOUT" not in log and "exited" not in log
    assert "Unexpected exit" not in log  # granian's word for a worker that died
    # The app's JSON lines (granian writes its own plain lines to the same stdout).
    records = json_lines("\n".join(x for x in out.read_text().splitlines() if x[:1] == "{"))
    guard_lines = [r for r in records if r.get("logger") == "flaskprod.database"]
    assert [r["level"] for r in guard_lines] == ["ERROR", "WARNING"], guard_lines
    assert not [r for r in records if r.get("level") == "ERROR" and r not in guard_lines]
    assert "Traceback" not in out.read_text()
