"""The WSGI layer around the Flask app: request id, access line, headers, health.

Why WSGI and not Flask hooks: it sees every response exactly once, including errors
raised by other extensions' hooks and exceptions that escape Flask (testing/debug),
so the access line is written once per request in all cases. The health endpoints
live here too, so they never open a session (no Set-Cookie, no Redis lookup for a
server-side session), never meet CSRF or the app's login hooks, and touch nothing.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask

from flaskprod.runtime.errors import too_large_response
from flaskprod.runtime.health import LIVE_BODY, readiness
from flaskprod.runtime.logging import ACCESS_LOGGER
from flaskprod.runtime.request_id import HEADER, request_id_from
from flaskprod.runtime.security import add_missing, security_headers
from flaskprod.runtime.watchdog import WATCHDOG, request_timeout

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

access_log = logging.getLogger(ACCESS_LOGGER)
error_log = logging.getLogger("flaskprod.errors")


def body_too_large(environ: WSGIEnvironment, limit: int) -> bool:
    """Whether the request body is over ``limit``; a chunked one is buffered to know."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", ""):
        return buffer_chunked_body(environ, limit)
    length = environ.get("CONTENT_LENGTH")
    if not length:
        return False
    try:
        return int(length) > limit
    except ValueError:
        return False  # Werkzeug treats a malformed length as none: so do we.


def buffer_chunked_body(environ: WSGIEnvironment, limit: int) -> bool:
    """Read a chunked body (no Content-Length) up to ``limit`` + 1 bytes.

    Werkzeug 3.1 silently truncates such a body at ``MAX_CONTENT_LENGTH`` when it is
    read whole (``LimitedStream.readall`` stops at the limit without raising), so an
    oversized upload would arrive cut short instead of being refused. Buffered here,
    the body is either refused (True: 413) or handed on with its real length.
    """
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = stream.read(limit + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    too_large = size > limit
    environ["wsgi.input"] = io.BytesIO(b"" if too_large else b"".join(parts))
    environ["CONTENT_LENGTH"] = "0" if too_large else str(size)
    # The body is now plain bytes of a known length (the encoding was hop-by-hop).
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return too_large


class FlaskprodMiddleware:
    """Wraps ``app.wsgi_app``; ProxyFix (when used) wraps this, so addresses and the
    scheme are already the client's when we look at them."""

    def __init__(self, wsgi_app: WSGIApplication, app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.configured = False
        self.health_path = self.ready_path = ""
        self.headers: list[tuple[str, str]] = []
        self.hsts: tuple[str, str] | None = None
        self.max_body: int | None = None
        self.access_log = True
        self.request_timeout = 0.0

    def configure(self, environ: WSGIEnvironment) -> None:
        """Read the settings once, at the first request: the factory may still change
        ``app.config`` after ``Production(app)`` (idempotent, so a race is harmless).
        The first request's environ says what kind of server this is (threads or not)."""
        config = self.app.config
        self.health_path = str(config["HEALTH_PATH"])
        self.ready_path = str(config["READY_PATH"])
        self.headers, self.hsts = security_headers(config)
        limit = config.get("MAX_CONTENT_LENGTH")
        self.max_body = int(limit) if limit is not None else None
        self.access_log = bool(config.get("ACCESS_LOG", True))
        self.request_timeout = request_timeout(config, environ)
        stall = self.app.extensions.get("flaskprod.stall")
        if stall is not None:
            # Flask-SQLAlchemy made its engines after Production(app): guard them now.
            stall.attach()
        self.configured = True

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start = time.perf_counter()
        if not self.configured:
            self.configure(environ)
        rid = request_id_from(environ)
        timeout = self.request_timeout
        if timeout:
            if not WATCHDOG.running:
                WATCHDOG.start()
            ident = threading.get_ident()
            WATCHDOG.inflight[ident] = (
                start + timeout,
                start,
                timeout,
                rid,
                environ.get("REQUEST_METHOD", ""),
                environ.get("PATH_INFO", ""),
            )
        status_line = "500"
        extra = self.headers
        if self.hsts is not None and environ.get("wsgi.url_scheme") == "https":
            extra = [*extra, self.hsts]

        def _start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            nonlocal status_line
            status_line = status
            add_missing(headers, [(HEADER, rid), *extra])
            return start_response(status, headers, exc_info)

        try:
            path = environ.get("PATH_INFO")
            if path == self.health_path or path == self.ready_path:
                return self._health(environ, _start_response, path == self.ready_path, start)
            if self.max_body is not None and body_too_large(environ, self.max_body):
                return too_large_response(self.app, environ)(environ, _start_response)
            return self.wsgi_app(environ, _start_response)
        except Exception:
            # Only reached when Flask propagates (testing/debug): it did not log it.
            error_log.exception("unhandled exception", extra={"request_id": rid})
            raise
        finally:
            if timeout:
                WATCHDOG.inflight.pop(ident, None)
            if self.access_log and access_log.isEnabledFor(logging.INFO):
                method = environ.get("REQUEST_METHOD")
                path = environ.get("PATH_INFO")
                status = int(status_line[:3])
                duration = round((time.perf_counter() - start) * 1000, 2)
                # makeRecord + handle: what .info() does, minus the stack walk
                # that finds the caller's file and line (useless here, and costly).
                record = access_log.makeRecord(
                    ACCESS_LOGGER,
                    logging.INFO,
                    __file__,
                    0,
                    "%s %s %s %sms",
                    (method, path, status, duration),
                    None,
                    extra={
                        "request_id": rid,
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": duration,
                        "remote_addr": environ.get("REMOTE_ADDR"),
                    },
                )
                access_log.handle(record)

    def _health(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        ready: bool,
        started: float,
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            body = b'{"error":{"status":405,"code":"method_not_allowed","message":"GET only"}}'
            start_response(
                "405 METHOD NOT ALLOWED",
                [
                    ("Content-Type", "application/json"),
                    ("Allow", "GET, HEAD"),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        status = 200
        body = LIVE_BODY
        if ready:
            status, data = readiness(self.app, started=started)
            body = json.dumps(data, separators=(",", ":")).encode()
        start_response(
            "200 OK" if status == 200 else "503 SERVICE UNAVAILABLE",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
