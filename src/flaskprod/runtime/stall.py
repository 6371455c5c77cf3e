"""The database stall guard: on a stalled PostgreSQL or MariaDB, fail fast (503)
instead of hanging.

Why: a database server that is frozen (SIGSTOP, a paused VM, a host that stopped
scheduling) or cut off by a network partition accepts bytes and never answers. Nothing
on the client bounds that wait: ``statement_timeout`` is enforced by the server, which
is not running; psycopg 3 and libpq have no read timeout (PyMySQL's ``read_timeout``
is the statement timeout, 30 s); TCP keepalives and
``tcp_user_timeout`` see a kernel that still acknowledges; ``cancel()`` goes to the
stopped postmaster; ``pool_timeout`` only bounds waiting for a pooled connection. So
every request that touches the database holds its worker thread until the server
wakes up or the request watchdog ends the whole worker (30 s, cutting its other
requests), and readiness, which needs a free thread to run at all, cannot answer.
Reserving a thread for probes would not help a sync worker (one thread).

How, per engine and per process:

- the database calls in flight (statements, the pool's pre-ping, new connections)
  are kept in a dict by thread: one store and one pop per statement, made by a
  subclass of the connection's cursor class (0.3 us of its own per statement,
  ``bench/runtime_overhead.py --postgres``; SQLAlchemy's cursor events would put
  every statement on its slower evented path, about 10 us);
- one daemon thread per process looks at them. A call the server has not answered
  for ``DATABASE_STALL_SECONDS`` (0.5 s) makes it *probe* the server: a new
  connection and ``SELECT 1`` through libpq's non-blocking API (MariaDB: a new
  connection that must get the server's greeting), given
  ``DATABASE_PROBE_TIMEOUT`` (1 s); :mod:`flaskprod.runtime.stall_drivers`. A live
  server answers it at once, however long the call itself runs (a slow query, a
  lock wait, or even a refusal such as "too many clients" proves it is alive):
  nothing is cut. At most one probe per slow
  call: a call older than the last answered probe is known to be slow, not stalled;
- no answer: the breaker opens. The sockets of the engine's connections in this
  process are shut down (``socket.shutdown`` on a dup of each fd: the blocked read
  returns, the driver raises, SQLAlchemy invalidates the connection); the interrupted
  calls and every new one (a new connection, a pre-ping, a statement) raise
  :class:`DatabaseUnavailable` at once, which ``Production`` answers with a 503
  (JSON or the HTML page, ``Retry-After``, no traceback) and readiness reports as a
  failed ``database`` check without waiting;
- while open, a probe every 0.5 s; the first answer closes the breaker.

So a request waits on a stalled database for at most ``DATABASE_STALL_SECONDS +
DATABASE_PROBE_TIMEOUT`` (1.5 s by default) plus a look, well under gunicorn's
timeout; the same under a sync worker (its one thread waits in ``poll()`` without
the GIL while the guard's thread runs), gthread, or any other WSGI server. A
transaction cut this way is rolled back by the server, except a ``COMMIT`` already
sent, which commits when the server resumes: the client got a 503 and retries
(idempotency keys make that safe). The request watchdog stays the backstop for what
the guard cannot see (a new connection, bounded by ``connect_timeout``; a hung
backend under a live server, which the probe calls alive).

Fork safety: the state is per process (``os.register_at_fork``): a child starts with
no calls, no connections, a closed breaker, and starts its own thread when it first
talks to the database. psycopg (3) and PyMySQL engines are guarded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import ServiceUnavailable

from flaskprod.runtime.stall_drivers import DRIVERS, Driver

log = logging.getLogger("flaskprod.database")

#: Seconds between probes while the breaker is open.
REPROBE = 0.5
#: The Retry-After of the 503 (seconds).
RETRY_AFTER = 2

_now = time.perf_counter
_ident = threading.get_ident


class DatabaseUnavailable(OperationalError):
    """The database server is stalled (the stall guard's breaker is open).

    An ``OperationalError``, so an app that already answers those with a 503 keeps
    doing so; ``Production`` registers a handler for it (503, ``Retry-After``)."""


def _stalled_error(driver: Driver, statement: str | None = None) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        statement, None, driver.stalled_error(), hide_parameters=True, connection_invalidated=True
    )


class StallGuard:
    """One engine's database calls in flight, its connections and its breaker."""

    def __init__(self, engine: Engine, stall: float, probe_timeout: float) -> None:
        self.engine_name = repr(engine.url)  # password hidden
        self.driver = DRIVERS[engine.dialect.driver]
        self.stall = stall
        self.probe_timeout = probe_timeout
        # What the probe connects to. Until this process makes a connection (whose
        # parameters, connect_args included, then replace it): the URL's, for
        # connections made before the guard.
        self.target: Any = self.driver.probe_target(*engine.dialect.create_connect_args(engine.url))
        self._exact_target = False
        self._dbapi_error: type[BaseException] = Exception
        self._cursor_classes: dict[type[Any], type[Any]] = {}
        self._reset()

    def _reset(self) -> None:
        #: Thread id -> when its current call started (perf_counter). Written by request
        #: threads without a lock (a dict store or pop is atomic); read as a copy.
        self.inflight: dict[int, float] = {}
        #: id(connection) -> (weak ref, fd, local and peer address when registered):
        #: the address pair is checked again before a cut, so a closed connection's
        #: reused fd (another socket) is never shut down.
        self.connections: dict[int, tuple[weakref.ref[Any], int, Any, Any]] = {}
        self.cut: weakref.WeakSet[Any] = weakref.WeakSet()
        #: The server's addresses, as the peers of this engine's connections.
        self.peers: set[Any] = set()
        #: perf_counter() when the breaker opened, None while closed.
        self.open_since: float | None = None
        self.next_probe = 0.0
        #: When the last probe that got an answer started: calls older than it were
        #: sent to a live server (slow, not stalled) and are not probed for again.
        self.last_alive = 0.0

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    # -- the engine's events (request threads: keep them cheap) --------------------------

    def attach(self, engine: Engine) -> None:
        self._dbapi_error = engine.dialect.loaded_dbapi.Error
        # Statements are tracked by the connections' cursor class, not by SQLAlchemy's
        # before/after_cursor_execute events: any engine event switches every statement
        # to SQLAlchemy's slower evented path (measured: ~10 us per statement, against
        # ~1 us here). handle_error, do_connect and checkout do not.
        event.listen(engine, "handle_error", self._error)
        event.listen(engine, "do_connect", self._connect)
        event.listen(engine, "checkout", self._checkout)
        dialect: Any = engine.dialect
        dialect.do_ping = self._pinger(dialect.do_ping)
        dialect.do_commit = self._tracked(dialect.do_commit)
        dialect.do_rollback = self._rollback(self._tracked(dialect.do_rollback))

    def _tracked(self, call: Callable[[Any], None]) -> Callable[[Any], None]:
        """A COMMIT or ROLLBACK (the connection's own, not a cursor's) kept in
        :attr:`inflight` while it runs, like a statement: alone on a stalled server
        (the session's ROLLBACK when a request ends) it would otherwise wait unseen."""

        def tracked(dbapi_connection: Any) -> None:
            inflight = self.inflight  # per process: replaced after a fork
            key = _ident()
            inflight[key] = _now()
            try:
                call(dbapi_connection)
            finally:
                inflight.pop(key, None)

        return tracked

    def _rollback(self, rollback: Callable[[Any], None]) -> Callable[[Any], None]:
        """A ROLLBACK the guard cut (or refused while the breaker is open) is done, not
        failed: the server discards what a dead connection left. Raising would turn a
        finished request into a 500, from the session's ROLLBACK in the app context's
        teardown, where no error handler runs. The connection is closed, so the pool
        replaces it. A cut COMMIT still raises (the client must not be told it
        succeeded)."""

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            except self._dbapi_error:
                if self.open_since is None and dbapi_connection not in self.cut:
                    raise
                log.warning(
                    "database %s: a ROLLBACK cut by the stall guard counts as done "
                    "(the server discards the dead connection's transaction)",
                    self.engine_name,
                )
                with contextlib.suppress(Exception):
                    dbapi_connection.close()

        return do_rollback

    def _cursor_class(self, base: type[Any]) -> type[Any]:
        """``base`` (the connection's cursor class: the driver's, or the app's own, e.g.
        psycopg's ClientCursor) with its calls kept in :attr:`inflight` while they run, and
        refused at once while the breaker is open."""
        cls = self._cursor_classes.get(base)
        if cls is not None:
            return cls
        guard = self

        def watched(call: Callable[..., Any]) -> Callable[..., Any]:
            # The base method is bound here once: no super() lookup per statement.
            def method(cursor: Any, *args: Any, **kwargs: Any) -> Any:
                if guard.open_since is not None:
                    raise guard.driver.stalled_error()
                key = _ident()
                inflight = guard.inflight
                inflight[key] = _now()
                try:
                    return call(cursor, *args, **kwargs)
                finally:
                    inflight.pop(key, None)

            return method

        class GuardedCursor(base):  # type: ignore[misc]
            __slots__ = ()
            _flaskprod_guard = guard
            execute = watched(base.execute)
            if hasattr(base, "executemany"):  # PEP 249 has it; a stand-in may not
                executemany = watched(base.executemany)

        self._cursor_classes[base] = GuardedCursor
        return GuardedCursor

    def _error(self, context: Any) -> BaseException | None:
        """A call failed: if the guard cut it, or the breaker is open, the app gets
        :class:`DatabaseUnavailable` and the connection is invalidated."""
        if not isinstance(context.original_exception, self._dbapi_error):
            return None
        # The DB-API connection the call ran on (none for a failed connect or ping).
        cursor = getattr(context.execution_context, "cursor", None)
        connection = getattr(cursor, "connection", None)
        if self.open_since is None and (connection is None or connection not in self.cut):
            return None
        context.is_disconnect = True
        return _stalled_error(self.driver, context.statement)

    def _connect(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        """A new connection: refused at once while the breaker is open; else made here,
        as a call in flight (a stalled server accepts the TCP connection and never
        answers it: only connect_timeout, at least 2 s in libpq, would end it). Its
        parameters are kept for the probe (the engine's URL and connect_args)."""
        if self.open_since is not None:
            raise _stalled_error(self.driver)
        if not self._exact_target:
            self.target = self.driver.probe_target(cargs, cparams)
            self._exact_target = True
        key = _ident()
        self.inflight[key] = _now()
        try:
            connection = dialect.connect(*cargs, **cparams)
        finally:
            self.inflight.pop(key, None)
        self._register(connection)
        return connection

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        self._register(dbapi_connection)

    def _pinger(self, ping: Callable[[Any], bool]) -> Callable[[Any], bool]:
        tracked = self.driver.ping_uses_cursor  # else the ping is a call of its own

        def do_ping(dbapi_connection: Any) -> bool:
            if self.open_since is not None:
                return False  # the pool reconnects, and the new connection is refused
            self._register(dbapi_connection)  # psycopg: its cursor, tracked, runs the ping
            if tracked:
                return ping(dbapi_connection)
            key = _ident()
            inflight = self.inflight
            inflight[key] = _now()
            try:
                return ping(dbapi_connection)
            finally:
                inflight.pop(key, None)

        return do_ping

    def _register(self, connection: Any) -> None:
        """Track this connection's statements and remember its socket (once)."""
        known = self.connections.get(id(connection))
        if known is not None and known[0]() is connection:
            return
        if not WATCHER.running:
            WATCHER.start()
        attribute = self.driver.cursor_attribute
        factory = getattr(connection, attribute)
        if getattr(factory, "_flaskprod_guard", None) is not self:
            setattr(connection, attribute, self._cursor_class(factory))
        try:
            fd = self.driver.fileno(connection)
            with socket.socket(fileno=os.dup(fd)) as sock:
                local, peer = sock.getsockname(), sock.getpeername()
            self.connections[id(connection)] = (weakref.ref(connection), fd, local, peer)
            self.peers.add(peer)
        except (OSError, ValueError, AttributeError, self._dbapi_error):  # closed meanwhile
            return
        if len(self.connections) > 64:  # connections come and go (recycle, overflow)
            for key, entry in list(self.connections.items()):
                if entry[0]() is None:
                    self.connections.pop(key, None)

    # -- the guard's thread ------------------------------------------------------------

    def step(self) -> float:
        """Look once; return how long until the next look is due."""
        now = _now()
        if self.open_since is not None:
            if now < self.next_probe:
                return self.next_probe - now
            began = _now()
            if self.probe():
                self._close(began)
                return 0.0
            self.next_probe = _now() + REPROBE
            return REPROBE
        oldest = min(
            (t for t in self.inflight.copy().values() if t > self.last_alive), default=None
        )
        if oldest is None:
            return min(0.25, self.stall / 2)
        due = oldest + self.stall
        if now < due:
            return due - now
        began = _now()
        if self.probe():
            self.last_alive = began
            return 0.0
        self._trip(began - oldest)
        return REPROBE

    def probe(self) -> bool:
        """Whether the server answers a new connection within ``probe_timeout`` (the
        driver's probe: any answer counts, an error too; silence, a refused or
        unreachable address do not)."""
        if self.target is None:
            return True  # no way to tell: never cut
        try:
            return self.driver.probe(self.target, self.probe_timeout, self._learn_peer)
        except Exception as error:  # a broken probe must not kill the guard's thread
            log.warning("database probe failed: %s", error)
            return False

    def _learn_peer(self, fd: int) -> None:
        """The server's address, from the probe's socket (when the TCP connection was
        accepted): a process that never got a connection through still knows whose
        connections in progress to cut."""
        try:
            with socket.socket(fileno=os.dup(fd)) as sock:
                self.peers.add(sock.getpeername())
        except OSError:
            pass

    def _trip(self, waited: float) -> None:
        self.open_since = _now()
        self.next_probe = self.open_since + REPROBE
        cut = self.cut_connections()
        log.error(
            "database %s stalled: a call unanswered for %.1f s, and a new connection got "
            "no answer within %g s; %d connection(s) cut, database calls fail at once "
            "(503) until it answers again",
            self.engine_name,
            waited + self.probe_timeout,
            self.probe_timeout,
            cut,
        )

    def _close(self, began: float) -> None:
        opened = self.open_since or began
        self.open_since = None
        self.last_alive = began
        log.warning(
            "database %s answers again after %.1f s: the stall guard lets calls through",
            self.engine_name,
            _now() - opened,
        )

    def cut_connections(self) -> int:
        """Shut down every socket of this process connected to the database server (the
        peers of this engine's connections): its connections in use or idle, and those
        still being made. The fd is dup'ed (the owner still closes its own) and its peer
        read from the dup, so a closed connection's reused fd is never cut by mistake.
        Returns how many."""
        known: dict[int, tuple[Any, Any, Any]] = {}
        for key, (ref, fd, local, peer) in list(self.connections.items()):
            connection = ref()
            if connection is None or self.driver.closed(connection):
                self.connections.pop(key, None)
            else:
                known[fd] = (connection, local, peer)
        peers = self.peers
        count = 0
        for fd in _socket_fds(known):
            try:
                with socket.socket(fileno=os.dup(fd)) as sock:
                    local, peer = sock.getsockname(), sock.getpeername()
                    if peer not in peers:
                        continue
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected, closed meanwhile, not a socket
                continue
            count += 1
            if fd in known and known[fd][1:] == (local, peer):
                self.cut.add(known[fd][0])
        return count


def _socket_fds(fallback: dict[int, Any]) -> list[int]:
    """The process's socket fds (Linux: /proc/self/fd), else the registered ones."""
    try:
        names = [entry.name for entry in Path("/proc/self/fd").iterdir()]
    except OSError:
        return list(fallback)
    fds = []
    for name in names:
        try:
            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                fds.append(int(name))
        except (OSError, ValueError):
            continue
    return fds


class Watcher:
    """The one thread per process that looks at every guard."""

    def __init__(self) -> None:
        self.guards: weakref.WeakSet[StallGuard] = weakref.WeakSet()
        self.running = False
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.running = False
        self._lock = threading.Lock()
        for guard in list(self.guards):
            guard._reset()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            thread = threading.Thread(target=self._run, name="flaskprod-dbguard", daemon=True)
            thread.start()
            self.running = True

    def _run(self) -> None:
        while True:
            wait = 0.25
            for guard in list(self.guards):
                try:
                    wait = min(wait, guard.step())
                except Exception:  # never let one bad look end the guard
                    log.exception("the database stall guard failed to look")
            time.sleep(max(0.005, wait))


WATCHER = Watcher()
_by_engine: weakref.WeakKeyDictionary[Engine, StallGuard] = weakref.WeakKeyDictionary()
_attach_lock = threading.Lock()


def guard_engine(
    engine: Engine, stall: float = 0.5, probe_timeout: float = 1.0
) -> StallGuard | None:
    """Guard ``engine`` (idempotent); None for engines that are not psycopg's or
    PyMySQL's, or with ``stall`` 0. ``Production`` does it for Flask-SQLAlchemy's
    engines; call it for an engine of your own."""
    if not stall or engine.dialect.driver not in DRIVERS or engine.dialect.is_async:
        return None
    with _attach_lock:
        guard = _by_engine.get(engine)
        if guard is None:
            guard = StallGuard(engine, stall, probe_timeout)
            guard.attach(engine)
            _by_engine[engine] = guard
            WATCHER.guards.add(guard)
    return guard


class AppStallGuard:
    """``app.extensions["flaskprod.stall"]``: guards the app's engines at its first
    request (Flask-SQLAlchemy makes them after ``Production(app)``)."""

    def __init__(self, app: Flask, stall: float, probe_timeout: float) -> None:
        self.app = app
        self.stall = stall
        self.probe_timeout = probe_timeout
        self.guards: list[StallGuard] = []

    def attach(self) -> None:
        from flaskprod.runtime.database import app_engines

        guards = [guard_engine(e, self.stall, self.probe_timeout) for e in app_engines(self.app)]
        self.guards = [g for g in guards if g is not None]
        if self.guards and not WATCHER.running:
            WATCHER.start()

    def stalled(self) -> bool:
        return any(guard.is_open for guard in self.guards)


def respond_unavailable(error: DatabaseUnavailable) -> Any:
    """503 with Retry-After, through the app's own HTTP error handling."""
    return current_app.handle_http_exception(ServiceUnavailable(retry_after=RETRY_AFTER))


def install(app: Flask) -> None:
    """Called by ``Production`` for a psycopg or PyMySQL URL with
    ``DATABASE_STALL_SECONDS`` > 0."""
    config = app.config
    app.register_error_handler(DatabaseUnavailable, respond_unavailable)
    app.extensions["flaskprod.stall"] = AppStallGuard(
        app, float(config["DATABASE_STALL_SECONDS"]), float(config["DATABASE_PROBE_TIMEOUT"])
    )
