"""Liveness and readiness in front of a Flask app that has no routes for them.

This source is the body of the kit's entry module (``flaskprod_wsgi.py`` at the project
root, rendered when ``http.health_source = "kit"``): the app server serves
``flaskprod_wsgi:application``, which answers ``health_path`` and ``ready_path`` itself
and passes every other request to the app, behind Werkzeug's ProxyFix when the app has
none of its own (:func:`behind_proxies`). It runs in the PROJECT's
environment, on whatever Python and Flask the project pins: standard library only,
nothing from flaskprod (Werkzeug, which Flask brings, for ProxyFix), nothing newer than
Python 3.9.

Readiness checks what the app is configured with, from the variables the kit sets:
``DATABASE_URL`` (PostgreSQL: a TLS-or-plain session startup up to the server's
authentication request, like ``pg_isready``; SQLite: the file opens and reads, or its
folder is writable for SQLite to create it) and
``REDIS_URL`` (``AUTH`` + ``PING`` over RESP). Each check runs on its own daemon thread
and the answer waits at most :data:`CHECK_TIMEOUT` for all of them, so a hung dependency
gives 503 in time; a check still hung from an earlier probe is waited for, not started
again, so probes cannot pile up threads.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

#: Seconds readiness may take in all (each check's sockets time out by then too).
CHECK_TIMEOUT = 1.0
_POSTGRES_SSL_REQUEST = 80877103
_POSTGRES_PROTOCOL_3 = 196608
#: Where libpq looks for PostgreSQL's socket when a URL names no host.
_POSTGRES_SOCKET_DIRS = ("/var/run/postgresql", "/tmp")  # noqa: S108 - libpq's default

Check = Callable[[], None]
StartResponse = Callable[..., Any]


class Unready(Exception):
    """A dependency answered, but not as a ready one (an error reply, a wrong server)."""


# -- sockets ------------------------------------------------------------------------------


def _connect(host: str, port: int, timeout: float, unix_path: str | None = None) -> socket.socket:
    if unix_path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(unix_path)
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection((host, port), timeout=timeout)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise Unready("the server closed the connection")
        data += chunk
    return data


# -- PostgreSQL ---------------------------------------------------------------------------


def _postgres_address(url: str) -> tuple[str, int, str | None, str, str]:
    """(host, port, unix socket path or None, user, database) of a SQLAlchemy/libpq URL."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    port = parts.port or int(query.get("port", ["5432"])[0])
    host = unquote(parts.hostname or "") or query.get("host", [""])[0]
    user = unquote(parts.username or "") or query.get("user", [""])[0] or "postgres"
    database = unquote(parts.path.lstrip("/")) or query.get("dbname", [""])[0] or user
    unix_path = None
    if not host:
        folders = [d for d in _POSTGRES_SOCKET_DIRS if Path(f"{d}/.s.PGSQL.{port}").exists()]
        host = folders[0] if folders else "localhost"
    if host.startswith("/"):
        unix_path = f"{host}/.s.PGSQL.{port}"
    return host, port, unix_path, user, database


def _postgres_error(body: bytes) -> str:
    fields = {}
    for field in body.split(b"\0"):
        if field:
            fields[field[:1]] = field[1:].decode("utf-8", "replace")
    return f"{fields.get(b'C', '?')} {fields.get(b'M', 'error')}"


def check_postgres(url: str, timeout: float = CHECK_TIMEOUT) -> None:
    """The server accepts a session for the app's user and database: it answers the
    SSLRequest, then the startup message with an authentication request (or, with
    trust, a ready session). An error instead (starting up, shutting down, no such
    database, too many connections, refused by pg_hba) raises :class:`Unready`."""
    host, port, unix_path, user, database = _postgres_address(url)
    sock = _connect(host, port, timeout, unix_path)
    try:
        sock.sendall(struct.pack("!ii", 8, _POSTGRES_SSL_REQUEST))
        answer = _receive(sock, 1)
        if answer == b"S":
            # Only a handshake, no credentials are sent: the certificate is not verified.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock)
        elif answer != b"N":
            raise Unready(f"not a PostgreSQL server at {host}:{port}")
        params = b"".join(
            key + b"\0" + value.encode() + b"\0"
            for key, value in ((b"user", user), (b"database", database))
        )
        params += b"\0"
        sock.sendall(struct.pack("!ii", 8 + len(params), _POSTGRES_PROTOCOL_3) + params)
        while True:
            kind = _receive(sock, 1)
            (length,) = struct.unpack("!i", _receive(sock, 4))
            body = _receive(sock, length - 4)
            if kind == b"E":
                raise Unready(_postgres_error(body))
            if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                return  # it asks for credentials: it accepts sessions (pg_isready's "ok")
            if kind == b"Z":
                sock.sendall(b"X\0\0\0\4")  # Terminate: a clean end in the server's log
                return
    finally:
        sock.close()


# -- SQLite -------------------------------------------------------------------------------


def check_sqlite(
    url: str, instance_path: str | None = None, timeout: float = CHECK_TIMEOUT
) -> None:
    """The database file exists and reads (``sqlite:///relative`` is tried from the
    working folder, then from the app's instance folder, as Flask-SQLAlchemy 3 does)."""
    path = url.split("://", 1)[1].split("?", 1)[0]
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        return
    candidates = [Path(path)]
    if not candidates[0].is_absolute() and instance_path:
        candidates.append(Path(instance_path) / path)
    existing = [candidate for candidate in candidates if candidate.is_file()]
    if not existing:
        # SQLite creates the file on the first connection: ready if it can.
        folder = candidates[-1].parent
        if os.access(folder, os.W_OK):
            return
        raise Unready(f"no SQLite database file {path}, and {folder} is not writable")
    uri = f"file:{quote(str(existing[0].resolve()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=timeout)
    try:
        connection.execute("PRAGMA schema_version").fetchone()
    finally:
        connection.close()


# -- Redis --------------------------------------------------------------------------------


def _resp(*words: str) -> bytes:
    encoded = [word.encode() for word in words]
    return b"*%d\r\n" % len(encoded) + b"".join(
        b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded
    )


def _resp_line(reader: Any) -> bytes:
    line: bytes = reader.readline(65536)
    if not line:
        raise Unready("Redis closed the connection")
    if line.startswith(b"-"):
        raise Unready(line[1:].strip().decode("utf-8", "replace").split(" ")[0])
    return line


def check_redis(url: str, timeout: float = CHECK_TIMEOUT) -> None:
    """``AUTH`` (when the URL has a password) then ``PING`` answers ``+PONG``."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    password = unquote(parts.password) if parts.password else query.get("password", [""])[0]
    username = unquote(parts.username) if parts.username else ""
    host = parts.hostname or "localhost"
    unix_path = parts.path if parts.scheme == "unix" else None
    sock = _connect(host, parts.port or 6379, timeout, unix_path)
    try:
        if parts.scheme == "rediss":  # the password is sent: verify the server
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        reader = sock.makefile("rb")
        commands: list[tuple[str, ...]] = []
        if password:
            commands.append(("AUTH", username, password) if username else ("AUTH", password))
        commands.append(("PING",))
        sock.sendall(b"".join(_resp(*command) for command in commands))
        for _ in commands:
            reply = _resp_line(reader)
        if reply.strip() != b"+PONG":
            raise Unready(f"PING answered {reply.strip()[:40]!r}")
    finally:
        sock.close()


# -- readiness ----------------------------------------------------------------------------


def dependency_checks(
    environ: Mapping[str, str], instance_path: str | None = None
) -> dict[str, Check]:
    """The checks that apply to this environment: DATABASE_URL and REDIS_URL."""
    checks: dict[str, Check] = {}
    database = environ.get("DATABASE_URL", "").strip()
    scheme = database.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgres", "postgresql"):
        checks["database"] = lambda: check_postgres(database)
    elif scheme == "sqlite":
        checks["database"] = lambda: check_sqlite(database, instance_path)
    redis = environ.get("REDIS_URL", "").strip()
    if redis.split("://", 1)[0].lower() in ("redis", "rediss", "unix"):
        checks["redis"] = lambda: check_redis(redis)
    return checks


class _Run:
    """One check on its own daemon thread (never blocks the worker from exiting)."""

    def __init__(self, check: Check) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.ms = 0.0
        threading.Thread(target=self._run, args=(check,), daemon=True).start()

    def _run(self, check: Check) -> None:
        start = time.perf_counter()
        try:
            check()
        except BaseException as error:  # reported as the check's result
            self.error = error
        finally:
            self.ms = round((time.perf_counter() - start) * 1000, 1)
            self.done.set()


_runs: dict[tuple[int, str], _Run] = {}
_runs_lock = threading.Lock()


def readiness(
    checks: Mapping[str, Check], timeout: float = CHECK_TIMEOUT
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body): 200 when every check passed within ``timeout``, else 503."""
    start = time.perf_counter()
    with _runs_lock:
        runs = {}
        for name, check in checks.items():
            key = (os.getpid(), name)  # threads do not survive a fork: per process
            run = _runs.get(key)
            if run is None or run.done.is_set():
                run = _runs[key] = _Run(check)
            runs[name] = run
    for run in runs.values():
        run.done.wait(max(0.0, start + timeout - time.perf_counter()))
    results: dict[str, dict[str, Any]] = {}
    for name, run in runs.items():
        # its own socket timeout and this wait are the same limit: whichever fires first
        if not run.done.is_set() or isinstance(run.error, TimeoutError):
            results[name] = {"status": "fail", "error": "timeout"}
        elif run.error is None:
            results[name] = {"status": "ok", "ms": run.ms}
        else:
            # The client sees the error's kind; the details (hosts, users) go to the log.
            results[name] = {"status": "fail", "error": type(run.error).__name__}
        if results[name]["status"] != "ok":
            detail = run.error if run.done.is_set() else f"no answer within {timeout:g}s"
            print(f"flaskprod_wsgi: readiness: {name}: {detail}", file=sys.stderr, flush=True)
    ok = all(result["status"] == "ok" for result in results.values())
    return (200 if ok else 503), {"status": "ok" if ok else "fail", "checks": results}


# -- the client, as the proxy saw it ------------------------------------------------------


def behind_proxies(app: Any, proxies: int) -> Any:
    """``app`` as the kit's proxy passes it requests: Werkzeug's ProxyFix trusting
    ``proxies`` hops of X-Forwarded-For and X-Forwarded-Proto (the headers the kit's
    nginx sets), so that ``request.remote_addr`` is the client, not nginx, and
    ``url_for(_external=True)`` says https. Left alone with 0 proxies, when ``app`` is
    no Flask app, or when it has a ProxyFix of its own: two would trust twice as many
    hops, and clients could forge their address. (Werkzeug comes with Flask.)"""
    if proxies <= 0 or not hasattr(app, "wsgi_app"):
        return app
    layer = app.wsgi_app
    for _ in range(20):  # the middlewares around the app's own wsgi_app
        if type(layer).__name__ == "ProxyFix":
            return app
        layer = getattr(layer, "app", None)
        if layer is None:
            break
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    return app


# -- the WSGI app in front ----------------------------------------------------------------

_REASONS = {200: "200 OK", 405: "405 Method Not Allowed", 503: "503 Service Unavailable"}


class HealthFront:
    """Answers ``health_path`` and ``ready_path``; every other request goes to ``app``."""

    def __init__(
        self,
        app: Any,
        health_path: str,
        ready_path: str,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.health_path = health_path
        self.ready_path = ready_path
        instance_path = getattr(app, "instance_path", None)
        self.checks = dependency_checks(os.environ if environ is None else environ, instance_path)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path not in (self.health_path, self.ready_path):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            status, body = 405, {"status": "fail", "error": "use GET"}
        elif path == self.health_path:
            status, body = 200, {"status": "ok"}
        else:
            status, body = readiness(self.checks)
        data = json.dumps(body, sort_keys=True).encode()
        start_response(
            _REASONS[status],
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b"" if method == "HEAD" else data]
