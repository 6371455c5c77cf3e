"""Free loopback TCP ports for the servers flaskprod starts.

The race: :func:`free_port` asks the kernel for a port that is free *now*, then
closes the socket so the server can bind it. Between that close and the server's own
``bind()`` another process may take the same port (other engineers' suites run on this
machine too). It is rare — the kernel hands out ephemeral ports in rotation — but
real, so every server started through :mod:`flaskprod.stack` is started with
:func:`retry_on_port_in_use`: when the server dies saying its address is in use
(:class:`PortInUse`), we pick a fresh port and start it again, a bounded number of
times.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import TypeVar

from flaskprod.errors import EnvironmentProblem, ServiceFailed

LOOPBACK = "127.0.0.1"

#: How many different ports a server is tried on before we give up.
PORT_ATTEMPTS = 3

T = TypeVar("T")


class PortInUse(ServiceFailed):
    """A server could not bind its port because someone else holds it."""

    def __init__(self, message: str, *, port: int) -> None:
        super().__init__(message)
        self.port = port


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nobody listens on at this instant (see the race above)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # No SO_REUSEADDR: we want a port that is really free, not one in TIME_WAIT.
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free ports: each socket stays bound until all are chosen, since
    calling :func:`free_port` repeatedly may hand out the same port twice (and two nginx
    ``listen`` lines on one port silently become name-based virtual hosts)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
    return ports


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``port`` on ``host`` right now.

    With SO_REUSEADDR, as servers (PostgreSQL, Redis, nginx, gunicorn) bind: connections
    of a past server lingering in TIME_WAIT do not make the port taken, a listener does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def retry_on_port_in_use(
    start: Callable[[int], T],
    *,
    port: int | None = None,
    attempts: int = PORT_ATTEMPTS,
    name: str = "server",
) -> T:
    """Call ``start(port)``; when it raises :class:`PortInUse`, retry on a fresh port.

    ``port`` is the first port to try (a fresh one when ``None``). A port the user asked
    for explicitly should not be silently changed: pass ``attempts=1`` then.
    """
    last: PortInUse | None = None
    for attempt in range(attempts):
        candidate = port if (attempt == 0 and port is not None) else free_port()
        try:
            return start(candidate)
        except PortInUse as error:
            last = error
    assert last is not None
    if attempts == 1:
        raise EnvironmentProblem(
            f"{name}: port {last.port} on {LOOPBACK} is already in use",
            hint="stop what listens there or choose another port",
        )
    raise EnvironmentProblem(
        f"{name} could not bind a port after {attempts} attempts (last: {last.port})",
        hint="another process keeps taking them; free a port or pass one explicitly",
    )
