from __future__ import annotations

import logging
import time

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from runtime_helpers import GOOD_KEY, in_child
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from flaskprod import Production
from flaskprod.runtime.database import dispose_engines, engine_options
from flaskprod.runtime.fork import after_fork
from flaskprod.stack.mariadb import MariaDBServer


def prepare(monkeypatch: pytest.MonkeyPatch, url: str, **env: str) -> None:
    base = {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY, "DATABASE_URL": url}
    for name, value in (base | env).items():
        monkeypatch.setenv(name, value)


def test_engine_options_for_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    prepare(monkeypatch, "postgres://u@db/x", FLASK_SQLALCHEMY_POOL_SIZE="3")
    app = Flask("db")
    Production(app)
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {
        "pool_pre_ping": True,
        "pool_size": 3,
        "max_overflow": 5,
        "pool_recycle": 1800,
        "pool_timeout": 10,
        "connect_args": {"connect_timeout": 3, "options": "-c statement_timeout=30000"},
    }


def test_through_pgbouncer_prepared_statements_and_startup_options_are_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server end is proven under up (tests/stack/test_up_pgbouncer.py).
    prepare(monkeypatch, "postgresql://u@bouncer/x", FLASKPROD_DATABASE_POOLER="pgbouncer")
    app = Flask("db")
    Production(app)
    args = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    assert args == {"connect_timeout": 3, "prepare_threshold": None}


def test_app_options_win(monkeypatch: pytest.MonkeyPatch) -> None:
    prepare(monkeypatch, "postgresql://u@db/x")
    app = Flask("db")
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_size": 20,
        "connect_args": {"application_name": "x"},
    }
    Production(app)
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_size"] == 20 and options["pool_pre_ping"] is True
    assert options["connect_args"] == {
        "connect_timeout": 3,
        "options": "-c statement_timeout=30000",
        "application_name": "x",
    }


def test_sqlite_gets_no_pool_options() -> None:
    assert engine_options({"SQLALCHEMY_DATABASE_URI": "sqlite://"}) == {}
    assert engine_options({"SQLALCHEMY_DATABASE_URI": "sqlite:////tmp/x.db"}) == {}


@pytest.mark.services
def test_real_postgres_engine_has_the_options(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    prepare(monkeypatch, postgres_url, FLASK_SQLALCHEMY_STATEMENT_TIMEOUT_MS="200")
    app = Flask("db")
    Production(app)
    db = SQLAlchemy(app)
    with app.app_context():
        assert db.engine.pool.size() == 5
        with db.engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "200ms"
            # The timeout is real: a slow statement is cancelled by the server.
            with pytest.raises(Exception, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(2)"))


@pytest.mark.services
def test_called_after_flask_sqlalchemy_rebuilds_the_engine(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    prepare(monkeypatch, postgres_url, FLASK_SQLALCHEMY_POOL_SIZE="2")
    app = Flask("late")
    app.config["SQLALCHEMY_DATABASE_URI"] = postgres_url
    db = SQLAlchemy(app)
    with app.app_context():
        before = db.engine
    caplog.set_level(logging.WARNING)
    Production(app)
    with app.app_context():
        assert db.engine is not before
        assert db.engine.pool.size() == 2
        with db.engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "30s"
    assert any("called after SQLAlchemy(app)" in r.getMessage() for r in caplog.records)


def backend_pid(db: SQLAlchemy, app: Flask) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.services
def test_after_fork_gives_the_child_its_own_connections(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    prepare(monkeypatch, postgres_url)
    app = Flask("forked")
    Production(app)
    db = SQLAlchemy(app)
    parent = backend_pid(db, app)  # now pooled in the parent

    # Control: without after_fork the child checks out the parent's very connection.
    assert in_child(lambda: backend_pid(db, app)) == parent

    def fresh() -> int:
        after_fork()
        return backend_pid(db, app)

    child = in_child(fresh)
    assert child != parent
    # close=False: the child did not close the parent's socket.
    assert backend_pid(db, app) == parent

    def disposed() -> int:
        dispose_engines(app)
        return backend_pid(db, app)

    assert in_child(disposed) not in (parent, child)
    assert backend_pid(db, app) == parent


@pytest.mark.services
def test_real_mariadb_engine_recycles_pre_pings_and_speaks_utf8mb4(
    monkeypatch: pytest.MonkeyPatch, mariadb_server: MariaDBServer
) -> None:
    """Production's options on a MariaDB URL (the suite's own server, through PyMySQL):
    pool_recycle from the env file, a connect timeout, and pre-ping replacing a pooled
    connection the server killed (what wait_timeout does to an idle one) unseen."""
    mariadb_server.ensure_database("rt_db", "rt_db", "pw")
    url = f"mysql+pymysql://rt_db:pw@127.0.0.1:{mariadb_server.port}/rt_db?charset=utf8mb4"
    prepare(monkeypatch, url, FLASKPROD_SQLALCHEMY_POOL_RECYCLE="300")
    app = Flask("db")
    Production(app)
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_recycle"] == 300 and options["pool_pre_ping"] is True
    # reads and writes bounded by the statement timeout (30 s by default)
    bounds = {"connect_timeout": 3, "read_timeout": 30, "write_timeout": 30}
    assert options["connect_args"] == bounds
    db = SQLAlchemy(app)
    with app.app_context():
        with db.engine.connect() as connection:
            first = connection.execute(text("SELECT CONNECTION_ID()")).scalar()
            flag = connection.execute(text("SELECT HEX(CONVERT('\U0001f6a9' USING utf8mb4))"))
            assert flag.scalar() == "F09F9AA9"
        mariadb_server.sql(f"KILL {int(first)};")  # the pooled connection dies idle
        with db.engine.connect() as connection:  # pre-ping: a new one, no error
            second = connection.execute(text("SELECT CONNECTION_ID()")).scalar()
        assert second != first
        db.engine.dispose()


@pytest.mark.services
def test_a_stalled_mariadb_fails_a_statement_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, mariadb_server: MariaDBServer
) -> None:
    """The server frozen (SIGSTOP, a stalled host): the statement fails after the
    statement timeout (read_timeout), the worker is not held forever."""
    mariadb_server.ensure_database("rt_stall", "rt_stall", "pw")
    url = f"mysql+pymysql://rt_stall:pw@127.0.0.1:{mariadb_server.port}/rt_stall"
    prepare(monkeypatch, url, FLASK_SQLALCHEMY_STATEMENT_TIMEOUT_MS="1500")
    app = Flask("db")
    Production(app)
    db = SQLAlchemy(app)
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
        mariadb_server.pause()
        began = time.monotonic()
        try:
            with pytest.raises(OperationalError):
                connection.execute(text("SELECT 2"))
        finally:
            mariadb_server.resume()
        assert 1.5 <= time.monotonic() - began < 10
    with app.app_context():
        db.engine.dispose()
