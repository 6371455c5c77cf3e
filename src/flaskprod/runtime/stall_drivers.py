"""What the stall guard (:mod:`flaskprod.runtime.stall`) needs of each DB-API driver:
psycopg 3 (PostgreSQL) and PyMySQL (MariaDB/MySQL).

Per driver: the connection's cursor-class attribute (the guard tracks statements by
subclassing it), the connection's socket, the error a refused call raises, whether
its ping runs through a cursor, and the *probe*: a new connection to the server that
must get an answer within the probe timeout, without blocking (a stalled server
accepts the TCP connection and never answers it).
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

#: psycopg.connect() keywords that are not libpq connection parameters.
_NOT_CONNINFO = frozenset(
    {"context", "autocommit", "prepare_threshold", "row_factory", "cursor_factory"}
)
_STALLED = (
    "the database server is stalled (no answer to a new connection): failing fast "
    "until it answers again"
)

_now = time.perf_counter
#: Told the server's address (a socket fd) when a probe's TCP connection was accepted.
LearnPeer = Callable[[int], None]


def _wait(fd: int, read: bool, deadline: float) -> bool:
    left = deadline - _now()
    if left <= 0:
        return False
    ready = select.select([fd] if read else [], [] if read else [fd], [], left)
    return bool(ready[0] or ready[1])


class Driver:
    """One driver's hooks (the base: what psycopg and PyMySQL share)."""

    name = ""
    #: The connection attribute holding the class its cursor() makes.
    cursor_attribute = ""
    #: The dialect's ping runs a statement through a cursor (tracked with them); else
    #: the guard tracks the ping itself.
    ping_uses_cursor = True

    def stalled_error(self) -> Exception:
        raise NotImplementedError

    def fileno(self, connection: Any) -> int:
        return int(connection.fileno())

    def closed(self, connection: Any) -> bool:
        return bool(connection.closed)

    def probe_target(self, cargs: Any, cparams: Mapping[str, Any]) -> Any:
        """What :meth:`probe` connects to, from the engine's connect arguments."""
        raise NotImplementedError

    def probe(self, target: Any, timeout: float, learn_peer: LearnPeer) -> bool:
        """Whether the server answers a new connection within ``timeout``."""
        raise NotImplementedError


class Psycopg(Driver):
    name = "psycopg"
    cursor_attribute = "cursor_factory"

    def stalled_error(self) -> Exception:
        import psycopg

        return psycopg.OperationalError(_STALLED)

    def probe_target(self, cargs: Any, cparams: Mapping[str, Any]) -> Any:
        """libpq's connection string for what SQLAlchemy passes to ``psycopg.connect``."""
        from psycopg.conninfo import make_conninfo

        params = {k: v for k, v in cparams.items() if k not in _NOT_CONNINFO}
        return make_conninfo(cargs[0] if cargs else "", **params)

    def probe(self, target: Any, timeout: float, learn_peer: LearnPeer) -> bool:
        """A new connection and ``SELECT 1`` through libpq's non-blocking API. Any
        answer of the server counts, an error too (too many clients, a failed login):
        it is running. Silence, a refused or unreachable address do not."""
        from psycopg import pq

        deadline = _now() + timeout
        pgconn = pq.PGconn.connect_start(str(target).encode())
        try:
            status: int = pq.PollingStatus.WRITING
            while status != pq.PollingStatus.OK:
                if status == pq.PollingStatus.FAILED:
                    message = pgconn.get_error_message()
                    return "FATAL:" in message or "ERROR:" in message
                if not _wait(pgconn.socket, status == pq.PollingStatus.READING, deadline):
                    learn_peer(pgconn.socket)
                    return False
                status = pgconn.connect_poll()
            pgconn.send_query(b"SELECT 1")
            while True:
                pgconn.consume_input()
                if not pgconn.is_busy():
                    return True
                if not _wait(pgconn.socket, True, deadline):
                    learn_peer(pgconn.socket)
                    return False
        finally:
            pgconn.finish()


class PyMySQL(Driver):
    name = "pymysql"
    cursor_attribute = "cursorclass"
    # SQLAlchemy pings with the connection's own ping() (COM_PING), not a cursor
    ping_uses_cursor = False

    def stalled_error(self) -> Exception:
        import pymysql

        # 2013 (CR_SERVER_LOST): SQLAlchemy's MySQL dialect counts it a disconnect
        error: Exception = pymysql.err.OperationalError(2013, _STALLED)
        return error

    def fileno(self, connection: Any) -> int:
        return int(connection._sock.fileno())  # PyMySQL keeps its socket there

    def closed(self, connection: Any) -> bool:
        return not connection.open

    def probe_target(self, cargs: Any, cparams: Mapping[str, Any]) -> Any:
        if cparams.get("unix_socket"):
            return str(cparams["unix_socket"])
        return (str(cparams.get("host") or "localhost"), int(cparams.get("port") or 3306))

    def probe(self, target: Any, timeout: float, learn_peer: LearnPeer) -> bool:
        """A new connection that must get the server's greeting (a MySQL server
        speaks first, before any login; an error packet such as "too many
        connections" is an answer too). Silence, a refused or closed connection are not."""
        deadline = _now() + timeout
        if isinstance(target, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = target
        else:
            host, port = target
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            address = info[4]
        with sock:
            sock.setblocking(False)
            try:
                sock.connect(address)
            except BlockingIOError:
                if not _wait(sock.fileno(), False, deadline):
                    return False
            except OSError:
                return False  # refused, unreachable: nothing there answers
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                return False
            if not _wait(sock.fileno(), True, deadline):
                learn_peer(sock.fileno())
                return False
            try:
                return bool(sock.recv(64))
            except OSError:
                return False


#: By SQLAlchemy's ``dialect.driver``.
DRIVERS: dict[str, Driver] = {"psycopg": Psycopg(), "pymysql": PyMySQL()}
