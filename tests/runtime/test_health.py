from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, redirect, session
from flask_sqlalchemy import SQLAlchemy
from runtime_helpers import GOOD_KEY, HangingServer, MakeApp

from flaskprod import Production
from flaskprod.stack.postgres import PostgresCluster


def production_app(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **overrides: Any) -> Flask:
    base = {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY}
    for name, value in (base | env).items():
        monkeypatch.setenv(name, value)
    app = Flask("healthapp")
    Production(app, **overrides)
    return app


def with_db(app: Flask) -> SQLAlchemy:
    db = SQLAlchemy()
    db.init_app(app)
    return db


def hanging_pg(server: HangingServer) -> str:
    return f"postgresql://app:pw@127.0.0.1:{server.port}/app"


# -- liveness --------------------------------------------------------------------------


def test_liveness_touches_nothing(
    monkeypatch: pytest.MonkeyPatch, hanging_server: HangingServer
) -> None:
    env = {
        "DATABASE_URL": hanging_pg(hanging_server),
        "REDIS_URL": f"redis://127.0.0.1:{hanging_server.port}/0",
    }
    app = production_app(monkeypatch, env)
    with_db(app)

    @app.before_request
    def login_required() -> Any:
        # A typical app-wide guard: it must not turn the probe into a redirect.
        session.permanent = True
        session["seen"] = True
        return redirect("/login")

    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert hanging_server.accepted == []
    assert client.get("/other").status_code == 302  # the guard is real


def test_head_and_wrong_method(make_app: MakeApp) -> None:
    client = make_app().test_client()
    head = client.head("/health")
    assert head.status_code == 200 and head.get_data() == b""
    post = client.post("/health/ready")
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"


def test_paths_configurable(make_app: MakeApp) -> None:
    client = make_app(env={"FLASK_HEALTH_PATH": "/hz"}, READY_PATH="/rz").test_client()
    assert client.get("/hz").json == {"status": "ok"}
    assert client.get("/rz").json["status"] == "ok"
    assert client.get("/health").status_code == 404


# -- readiness -------------------------------------------------------------------------


def test_ready_without_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    app = production_app(monkeypatch, {}, DATABASE_REQUIRED=False)
    assert app.test_client().get("/health/ready").json == {"status": "ok", "checks": {}}


def test_ready_with_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app = production_app(monkeypatch, {"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})
    with_db(app)
    response = app.test_client().get("/health/ready")
    assert response.status_code == 200
    check = response.json["checks"]["database"]
    assert check["status"] == "ok" and isinstance(check["ms"], float)


def test_ready_without_flask_sqlalchemy_uses_the_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app = production_app(monkeypatch, {"DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"})
    assert app.test_client().get("/health/ready").json["checks"]["database"]["status"] == "ok"


def test_hung_database_gives_503_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch, hanging_server: HangingServer
) -> None:
    app = production_app(monkeypatch, {"DATABASE_URL": hanging_pg(hanging_server)})
    with_db(app)
    assert app.config["HEALTH_TIMEOUT"] == 2.0
    start = time.monotonic()
    response = app.test_client().get("/health/ready")
    elapsed = time.monotonic() - start
    assert response.status_code == 503
    assert response.json["status"] == "fail"
    assert response.json["checks"]["database"]["status"] == "fail"
    assert response.json["checks"]["database"]["error"] == "timeout"
    # The checks get 3/4 of HEALTH_TIMEOUT; the rest is the margin to answer by 2 s.
    assert 1450 < response.json["checks"]["database"]["ms"] < 1600
    assert 1.45 < elapsed < 1.7
    assert hanging_server.accepted  # the check really tried


def test_hung_redis_gives_503(
    monkeypatch: pytest.MonkeyPatch, hanging_server: HangingServer
) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{hanging_server.port}/0", "FLASK_HEALTH_TIMEOUT": "0.5"}
    app = production_app(monkeypatch, env, DATABASE_REQUIRED=False)
    start = time.monotonic()
    response = app.test_client().get("/health/ready")
    assert time.monotonic() - start < 1.0
    assert response.status_code == 503
    assert response.json["checks"]["redis"]["status"] == "fail"


def test_refused_connection_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    from flaskprod.stack.ports import free_port

    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    app = production_app(monkeypatch, env, DATABASE_REQUIRED=False)
    start = time.monotonic()
    response = app.test_client().get("/health/ready")
    # No retries: redis-py's default (10 with backoff) would take seconds here.
    assert time.monotonic() - start < 1.5
    assert response.json["checks"]["redis"] == {"status": "fail", "error": "ConnectionError"}
    assert b"127.0.0.1" not in response.get_data()  # no internals to the public


@pytest.mark.services
def test_real_postgres_and_redis(
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
    redis_url: str,
    postgres_cluster: PostgresCluster,
) -> None:
    # The stall guard off: this is the readiness deadline's own test (with the guard,
    # tests/runtime/test_stall.py, the check fails at once once the guard has tripped).
    env = {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url}
    app = production_app(monkeypatch, env | {"FLASKPROD_DATABASE_STALL_SECONDS": "0"})
    with_db(app)
    client = app.test_client()
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json
    assert set(response.json["checks"]) == {"database", "redis"}
    # A frozen database: 503 in time, and 200 again once it is back, same app.
    postgres_cluster.pause()
    try:
        start = time.monotonic()
        frozen = client.get("/health/ready")
        # Within HEALTH_TIMEOUT (2 s) with room to spare: the checks stop at 1.5 s.
        assert time.monotonic() - start < 2.0
        assert frozen.status_code == 503
        assert frozen.json["checks"]["database"]["error"] == "timeout"
        assert frozen.json["checks"]["redis"]["status"] == "ok"
    finally:
        postgres_cluster.resume()
    deadline = time.monotonic() + 10
    while client.get("/health/ready").status_code != 200:
        assert time.monotonic() < deadline, "readiness did not recover after resume"
        time.sleep(0.05)


@pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")
def test_migrations_at_head(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import flask_migrate

    # Alembic's env.py runs logging.config.fileConfig, which disables every logger
    # it does not name: give them back to the other tests afterwards.
    enabled = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    request.addfinalizer(lambda: [setattr(logger, "disabled", False) for logger in enabled])
    app = production_app(monkeypatch, {"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"})
    db = with_db(app)
    directory = str(tmp_path / "migrations")
    flask_migrate.Migrate(app, db, directory=directory)
    with app.app_context():
        flask_migrate.init(directory)
        flask_migrate.revision(directory, message="first", rev_id="0001")
    client = app.test_client()
    behind = client.get("/health/ready")
    assert behind.status_code == 503
    assert behind.json["checks"]["migrations"] == {"status": "fail", "error": "MigrationsBehind"}
    assert behind.json["checks"]["database"]["status"] == "ok"
    with app.app_context():
        flask_migrate.upgrade(directory)
    at_head = client.get("/health/ready")
    assert at_head.status_code == 200
    assert at_head.json["checks"]["migrations"]["status"] == "ok"


def test_stuck_checks_never_pile_up_into_a_hung_worker(
    monkeypatch: pytest.MonkeyPatch, hanging_server: HangingServer
) -> None:
    # The first probe leaves a check thread stuck in connect (3 s connect_timeout);
    # the next ones wait for that same check instead of sticking more threads.
    env = {"DATABASE_URL": hanging_pg(hanging_server), "FLASK_HEALTH_TIMEOUT": "0.2"}
    # The stall guard off: its probes would connect to the server too (test_stall.py).
    env["FLASKPROD_DATABASE_STALL_SECONDS"] = "0"
    app = production_app(monkeypatch, env)
    with_db(app)
    client = app.test_client()
    for _ in range(6):
        start = time.monotonic()
        response = client.get("/health/ready")
        assert time.monotonic() - start < 0.4
        assert response.status_code == 503
    assert len(hanging_server.accepted) == 1
    assert client.get("/health").status_code == 200
