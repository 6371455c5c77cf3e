"""The request watchdog: a request that outlives ``REQUEST_TIMEOUT`` ends its worker.

Why: gunicorn's ``timeout`` only kills a worker whose main loop stops heartbeating.
A sync worker runs the request on that loop, so a hung request gets it killed; a
gthread worker keeps heartbeating from its main thread while a request thread hangs
(on a frozen database, say: a stopped server cannot enforce ``statement_timeout`` and
psycopg 3 has no client-side query timeout), so the thread is held for as long as the
dependency hangs and nginx answers 504. The watchdog restores the sync worker's rule.

Cost per request: one dict store and one pop, keyed by thread id (no thread, no
timer per request). One daemon thread per process looks once a second (or at the
soonest deadline, if nearer); a request over its deadline makes it log one ERROR line
and end the process with ``os._exit`` (``sys.exit`` would wait forever joining the
stuck thread). Gunicorn's master then starts a fresh worker. Other requests in
flight on that worker are cut: nginx answers 502 for them (retrying on another
upstream when there is one), and clients retry POSTs with the same Idempotency-Key.

Only the WSGI call is watched: a streamed body produced after the view returned is not.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("flaskprod.watchdog")

#: What a sync worker killed at gunicorn's timeout exits with (its SIGABRT handler).
#: Not 3 or 4: those make gunicorn's master halt instead of replacing the worker.
EXIT_REQUEST_TIMEOUT = 1

#: REQUEST_TIMEOUT when not configured, in production on a threaded server:
#: gunicorn's own default ``timeout``.
DEFAULT_TIMEOUT = 30.0

#: How often the watchdog looks, in seconds (sooner when a deadline is nearer).
INTERVAL = 1.0


def request_timeout(config: Mapping[str, Any], environ: Mapping[str, Any]) -> float:
    """Seconds a request may run here, 0 for unwatched.

    A configured ``REQUEST_TIMEOUT`` applies under any server (0 turns it off). Unset,
    only production on a server that runs requests on threads (gunicorn gthread or
    gevent: ``wsgi.multithread``) is watched, with gunicorn's default 30 s: a sync
    worker is killed by gunicorn itself, and the dev server and the test client are
    never cut short unless asked.
    """
    configured = config.get("REQUEST_TIMEOUT")
    if configured is not None:
        return float(configured)
    if config.get("FLASKPROD_ENV") == "production" and environ.get("wsgi.multithread"):
        return DEFAULT_TIMEOUT
    return 0.0


#: (deadline, start, timeout, request id, method, path), both times perf_counter().
Entry = tuple[float, float, float, str, str, str]


class RequestWatchdog:
    """The requests in flight in this process and the thread that watches them."""

    def __init__(
        self,
        interval: float = INTERVAL,
        end: Callable[[int], object] = os._exit,
    ) -> None:
        #: Thread id -> its request. Written by request threads without a lock: a dict
        #: store or pop is atomic, and the watchdog reads a copy.
        self.inflight: dict[int, Entry] = {}
        self.running = False
        self._interval = interval
        self._end = end
        self._lock = threading.Lock()
        # A forked child (gunicorn without preload, multiprocessing) has no thread:
        # the next request there starts one; the parent's requests are not its own.
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.inflight = {}
        self.running = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the watching thread once per process (idempotent, thread-safe)."""
        with self._lock:
            if self.running:
                return
            thread = threading.Thread(target=self._watch, name="flaskprod-watchdog", daemon=True)
            thread.start()
            self.running = True

    def _watch(self) -> None:
        while True:
            now = time.perf_counter()
            overdue = self.overdue(now)
            if overdue is not None:
                self.fire(*overdue)
                return
            # Once a second, or at the soonest deadline if that comes first: a request
            # is ended at its timeout, not up to a second after it.
            soonest = min((e[0] for e in self.inflight.copy().values()), default=now + 1e9)
            time.sleep(min(self._interval, max(0.01, soonest - now)))

    def overdue(self, now: float) -> tuple[int, Entry] | None:
        """The longest-running request past its deadline, if any."""
        late = [(ident, e) for ident, e in self.inflight.copy().items() if now > e[0]]
        return min(late, key=lambda item: item[1][1]) if late else None

    def fire(self, ident: int, entry: Entry) -> None:
        """Log why, then end the process. A timer ends it anyway should logging block
        (a handler's lock held by a stuck thread)."""
        _, start, timeout, rid, method, path = entry
        fallback = threading.Timer(2.0, self._end, (EXIT_REQUEST_TIMEOUT,))
        fallback.daemon = True
        fallback.start()
        seconds = time.perf_counter() - start
        others = len(self.inflight) - 1
        log.error(
            "request %s %s still running after %.1f s (REQUEST_TIMEOUT %g s), waiting in "
            "%s; the worker exits so that gunicorn replaces it, as a sync worker's timeout "
            "would (%d other request(s) in flight here are cut)",
            method,
            path,
            seconds,
            timeout,
            where(ident),
            others,
            extra={"request_id": rid, "method": method, "path": path},
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self._end(EXIT_REQUEST_TIMEOUT)


def where(ident: int, depth: int = 3) -> str:
    """The innermost frames of thread ``ident``: what the request is waiting on."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "an unknown place"
    frames = traceback.extract_stack(frame)[-depth:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))


#: The process's watchdog, shared by every app that uses ``Production``.
WATCHDOG = RequestWatchdog()
