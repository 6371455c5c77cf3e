"""SQLAlchemy engine options for production, and engines that survive a fork.

Call ``Production(app)`` before ``db.init_app(app)`` (the usual factory order):
the options are then in ``SQLALCHEMY_ENGINE_OPTIONS`` when Flask-SQLAlchemy builds
its engine. Called after, the default engine is rebuilt with them (and a warning says
so). The app's own keys in ``SQLALCHEMY_ENGINE_OPTIONS`` always win.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

log = logging.getLogger("flaskprod.database")


def engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Production engine options for the configured database URL."""
    url = str(config.get("SQLALCHEMY_DATABASE_URI") or "")
    if not url or url.startswith("sqlite"):
        # SQLite has no server to lose and its in-memory pool takes no sizes.
        return {}
    options: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": int(config["SQLALCHEMY_POOL_SIZE"]),
        "max_overflow": int(config["SQLALCHEMY_MAX_OVERFLOW"]),
        "pool_recycle": int(config["SQLALCHEMY_POOL_RECYCLE"]),
        "pool_timeout": int(config["SQLALCHEMY_POOL_TIMEOUT"]),
    }
    if url.startswith("postgresql"):
        # Bounded connect and statements: a hung server must not hang a worker.
        connect_args: dict[str, Any] = {
            "connect_timeout": int(config["SQLALCHEMY_CONNECT_TIMEOUT"])
        }
        statement_ms = int(config["SQLALCHEMY_STATEMENT_TIMEOUT_MS"])
        if str(config.get("DATABASE_POOLER") or "").lower() == "pgbouncer":
            # Transaction pooling: a prepared statement lives in one server session and
            # the next transaction may get another (PgBouncer < 1.21 cannot track them),
            # and PgBouncer refuses the 'options' startup parameter (the role carries
            # the statement timeout instead).
            if "+psycopg" in url and "+psycopg2" not in url:
                connect_args["prepare_threshold"] = None
        elif statement_ms > 0:
            connect_args["options"] = f"-c statement_timeout={statement_ms}"
        options["connect_args"] = connect_args
    elif url.startswith(("mysql", "mariadb")):
        options["connect_args"] = _mysql_connect_args(url, config)
    return options


def _mysql_connect_args(url: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Bounded connect, and (PyMySQL, mysqlclient) bounded reads and writes: a stalled
    server fails a statement after the statement timeout instead of holding the worker
    forever. pool_recycle stays below the server's wait_timeout (the spec checks it),
    pre-ping catches the rest."""
    connect = int(config["SQLALCHEMY_CONNECT_TIMEOUT"])
    if "+mysqlconnector" in url:
        return {"connection_timeout": connect}
    args: dict[str, Any] = {"connect_timeout": connect}
    statement_ms = int(config["SQLALCHEMY_STATEMENT_TIMEOUT_MS"])
    if statement_ms > 0:
        seconds = max(1, -(-statement_ms // 1000))  # whole seconds, rounded up
        args["read_timeout"] = args["write_timeout"] = seconds
    return args


def apply_engine_options(app: Flask) -> None:
    """Merge :func:`engine_options` under the app's own ``SQLALCHEMY_ENGINE_OPTIONS``."""
    defaults = engine_options(app.config)
    if not defaults:
        return
    options: dict[str, Any] = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    for key, value in defaults.items():
        if key == "connect_args":
            merged = dict(value)
            merged.update(options.get("connect_args") or {})
            options["connect_args"] = merged
        else:
            options.setdefault(key, value)
    if "sqlalchemy" in app.extensions:
        _rebuild_default_engine(app, options)


def _rebuild_default_engine(app: Flask, options: dict[str, Any]) -> None:
    """Flask-SQLAlchemy was initialised first: rebuild its default engine with ``options``."""
    db = app.extensions["sqlalchemy"]
    try:
        engines = db._app_engines[app]
        old = engines[None]
        merged = dict(db._engine_options) | dict(options)
        merged["url"] = app.config["SQLALCHEMY_DATABASE_URI"]
        merged.setdefault("echo", app.config.get("SQLALCHEMY_ECHO", False))
        merged.setdefault("echo_pool", merged["echo"])
        db._apply_driver_defaults(merged, app)
        engines[None] = db._make_engine(None, merged, app)
        old.dispose()
    except (AttributeError, KeyError, TypeError) as error:
        log.warning(
            "Production(app) was called after SQLAlchemy(app) and could not apply the "
            "engine options (%s): call Production(app) first in the factory",
            error,
        )
        return
    log.warning(
        "Production(app) was called after SQLAlchemy(app): the engine was rebuilt with "
        "production options; call Production(app) first in the factory"
    )


def app_engines(app: Flask) -> list[Any]:
    """Every SQLAlchemy engine Flask-SQLAlchemy made for ``app`` (none without it)."""
    db = app.extensions.get("sqlalchemy")
    if db is None:
        return []
    with app.app_context():
        return list(db.engines.values())


def dispose_engines(app: Flask) -> None:
    """Drop pooled connections inherited from the parent (call in gunicorn's post_fork).

    ``close=False``: the parent still owns those sockets; closing them here would
    send a terminate message on the parent's connections.
    """
    for engine in app_engines(app):
        engine.dispose(close=False)
    health_engine = app.extensions.get("flaskprod.health_engine")
    if health_engine is not None:
        health_engine.dispose(close=False)
