"""Liveness and readiness, both time-bounded.

``/health`` answers without touching anything. ``/health/ready`` runs each check
(database ``SELECT 1``, Redis ``PING``, migrations at head) on a small pool of daemon
threads and waits for them at most 3/4 of ``HEALTH_TIMEOUT`` seconds in total, so that
the answer leaves well within it: a hung dependency gives 503 in time, and the worker's
request thread is never the one stuck.
The checks also have their own socket timeouts, so stuck pool threads come back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, wait
from queue import SimpleQueue
from typing import Any

from flask import Flask

from flaskprod.runtime.migrations import database_heads, script_heads

log = logging.getLogger("flaskprod.health")

Check = Callable[[], None]
LIVE_BODY = b'{"status":"ok"}'


class CheckPool:
    """A few daemon threads (unlike ThreadPoolExecutor's, a stuck one never blocks
    the process from exiting). Recreated in a forked child, where threads are gone.

    A check still running from an earlier probe is joined, not started again: a hung
    dependency holds one thread, however often it is probed, so it can never take
    the whole pool (and make the other checks time out with it)."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._queue: SimpleQueue[tuple[Future[float], Check]] = SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[float]] = {}
        self._pid = 0

    def submit(self, key: Hashable, check: Check) -> Future[float]:
        """Run ``check`` on a pool thread, unless the one under ``key`` still runs;
        the future holds its duration in ms."""
        self._ensure_threads()
        with self._lock:
            future = self._running.get(key)
            if future is None or future.done():
                future = Future()
                self._running[key] = future
                self._queue.put((future, check))
        return future

    def _ensure_threads(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._queue = SimpleQueue()
                self._running = {}
                for number in range(self._size):
                    thread = threading.Thread(
                        target=self._work, name=f"flaskprod-health-{number}", daemon=True
                    )
                    thread.start()
                self._pid = os.getpid()

    def _work(self) -> None:
        queue = self._queue
        while True:
            future, check = queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            start = time.perf_counter()
            try:
                check()
            except BaseException as error:
                future.set_exception(error)
            else:
                future.set_result((time.perf_counter() - start) * 1000)


POOL = CheckPool()


def readiness_checks(app: Flask) -> dict[str, Check]:
    """The checks that apply to this app's configuration."""
    checks: dict[str, Check] = {}
    if "sqlalchemy" in app.extensions or app.config.get("SQLALCHEMY_DATABASE_URI"):
        checks["database"] = lambda: check_database(app)
    if app.config.get("REDIS_URL"):
        checks["redis"] = lambda: check_redis(app)
    if "migrate" in app.extensions and "sqlalchemy" in app.extensions:
        checks["migrations"] = lambda: check_migrations(app)
    return checks


#: The share of HEALTH_TIMEOUT the checks may take. The rest is kept to write the
#: answer and get it through the worker and nginx while busy request threads share
#: the GIL: with the default 2 s, checks get 1.5 s and the probe has its answer by 2 s
#: (a 0.05 s margin gave 2.06 s through nginx under load, fault scenario 7).
CHECK_SHARE = 0.75


def readiness(
    app: Flask, timeout: float | None = None, started: float | None = None
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when every check passed within the deadline, else 503.

    The deadline is ``timeout`` (default ``HEALTH_TIMEOUT``) counted from ``started``
    (a ``time.perf_counter()`` value, default now): the whole answer, not each check.
    The checks get :data:`CHECK_SHARE` of it; the rest is the margin to answer in time.
    """
    budget = float(app.config.get("HEALTH_TIMEOUT", 2.0) if timeout is None else timeout)
    start = time.perf_counter() if started is None else started
    checks = readiness_checks(app)
    futures = {name: POOL.submit((id(app), name), check) for name, check in checks.items()}
    deadline = start + budget * CHECK_SHARE
    wait(futures.values(), timeout=max(0.0, deadline - time.perf_counter()))
    waited = round((time.perf_counter() - start) * 1000, 1)
    results: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = {"status": "fail", "ms": waited, "error": "timeout"}
            log.warning("readiness check %s timed out after %.0f ms", name, waited)
            continue
        error = future.exception()
        if isinstance(error, TimeoutError):  # its socket timeout fired before the deadline
            results[name] = {"status": "fail", "ms": waited, "error": "timeout"}
            log.warning("readiness check %s timed out: %s", name, error)
        elif error is None:
            results[name] = {"status": "ok", "ms": round(future.result(), 1)}
        else:
            # The client sees the error's kind only: messages can name hosts and users.
            results[name] = {"status": "fail", "error": type(error).__name__}
            log.warning("readiness check %s failed: %s", name, error)
    ok = all(result["status"] == "ok" for result in results.values())
    return (200 if ok else 503), {"status": "ok" if ok else "fail", "checks": results}


def _engine(app: Flask) -> Any:
    """Flask-SQLAlchemy's engine, or a small one of our own for apps without it."""
    db = app.extensions.get("sqlalchemy")
    if db is not None:
        with app.app_context():
            return db.engine
    engine = app.extensions.get("flaskprod.health_engine")
    if engine is None:
        import sqlalchemy

        from flaskprod.runtime.database import engine_options

        options = engine_options(app.config)
        options = {k: v for k, v in options.items() if k == "connect_args"}
        engine = sqlalchemy.create_engine(
            app.config["SQLALCHEMY_DATABASE_URI"], poolclass=sqlalchemy.NullPool, **options
        )
        app.extensions["flaskprod.health_engine"] = engine
    return engine


def check_database(app: Flask) -> None:
    from sqlalchemy import text

    with _engine(app).connect() as connection:
        connection.execute(text("SELECT 1"))


def check_redis(app: Flask) -> None:
    from flaskprod.runtime.redis import redis_client

    if not redis_client(app).ping():
        raise ConnectionError("PING did not answer PONG")


class MigrationsBehind(Exception):
    """The database is not at the migrations' head revision."""


_heads: dict[str, frozenset[str]] = {}


def check_migrations(app: Flask) -> None:
    migrate = app.extensions["migrate"]
    directory = str(migrate.directory)
    heads = _heads.get(directory)
    if heads is None:
        # Reading the scripts is slow; they cannot change under a running process.
        heads = _script_heads(app, migrate, directory)
        _heads[directory] = heads
    with _engine(app).connect() as connection:
        current = database_heads(connection)
    if current != heads:
        raise MigrationsBehind(
            f"database at {sorted(current) or 'no revision'}, code at {sorted(heads)}: "
            "run flask db upgrade"
        )


def _script_heads(app: Flask, migrate: Any, directory: str) -> frozenset[str]:
    """The scripts' heads, read without Alembic when the layout allows (a serving
    worker then never imports it: ~12 MiB), else from Alembic's ScriptDirectory."""
    # __dict__: the real Migrate object, if the config holds one, without making a lazy
    # stand-in import Flask-Migrate. Its configure callbacks may move the scripts.
    owner = getattr(migrate, "__dict__", {}).get("migrate")
    if not getattr(owner, "configure_callbacks", None):
        heads = script_heads(directory)
        if heads is not None:
            return heads
    from alembic.script import ScriptDirectory

    with app.app_context():
        config = migrate.migrate.get_config(directory)
        return frozenset(ScriptDirectory.from_config(config).get_heads())
