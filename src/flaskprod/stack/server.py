"""The lifecycle every data server flaskprod starts shares (PostgreSQL, Redis).

One process on a loopback port: start it on a free port (a fresh one if taken,
unless the port was given), wait until a probe proves it is *our* server answering,
stop it at interpreter exit unless told otherwise, stop/pause/resume it by pid.
A subclass says how to prepare its folder, launch the process and probe it.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
from typing import ClassVar, TypedDict

from flaskprod.errors import ServiceFailed
from flaskprod.stack import process
from flaskprod.stack.ports import PortInUse, free_port, retry_on_port_in_use


class ServerOptions(TypedDict, total=False):
    """What every :class:`LoopbackServer` takes besides its port, as keywords: a
    subclass passes them through (``**options: Unpack[ServerOptions]``)."""

    ready_timeout: float
    die_with_parent: bool
    stop_at_exit: bool


class LoopbackServer:
    """Base of :class:`~flaskprod.stack.postgres.PostgresCluster`,
    :class:`~flaskprod.stack.redis.RedisServer`, :class:`~flaskprod.stack.mariadb.MariaDBServer`,
    :class:`~flaskprod.stack.pgbouncer.PgBouncer` and :class:`~flaskprod.stack.seaweedfs.SeaweedFS`.

    ``port=None`` picks a free one (a taken port is retried on a fresh one unless the
    port was given). ``ready_timeout``: how long :meth:`start` waits for the probe
    (default :attr:`default_ready_timeout`). ``die_with_parent`` stops the server if this
    Python process dies (tests); ``stop_at_exit`` (default) stops it when this interpreter
    exits normally — turn it off for servers that must outlive the command that started
    them (``up -d``).
    """

    #: How errors and the process name call the server.
    name: ClassVar[str]
    #: How :meth:`stop` asks it to stop, and whether to its whole process group.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_group: ClassVar[bool] = True
    #: How long :meth:`start` waits for the probe unless told.
    default_ready_timeout: ClassVar[float] = process.READY_TIMEOUT

    def __init__(
        self,
        port: int | None = None,
        *,
        ready_timeout: float | None = None,
        die_with_parent: bool = False,
        stop_at_exit: bool = True,
    ) -> None:
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.ready_timeout = self.default_ready_timeout if ready_timeout is None else ready_timeout
        self.die_with_parent = die_with_parent
        self.stop_at_exit = stop_at_exit
        self._process: process.Process | None = None

    # -- what a server says about itself ------------------------------------------------

    def _prepare(self) -> None:
        """Make its folder ready; called once per :meth:`start`, before any port is tried."""

    def _launch(self, port: int) -> process.Process:
        """Write its config for ``port`` and start the process (not yet ready)."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """Whether the process answers, and is ours (not another on the same port)."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The server's (main) pid while it runs."""
        return self._process.pid if self._process is not None and self.running else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.alive()

    def start(self) -> None:
        """Prepare, start the server and wait until it answers its probe."""
        if self.running:
            return
        self._prepare()
        retry_on_port_in_use(
            self._start_on,
            port=self.port,
            attempts=1 if self._fixed_port else 3,
            name=self.name,
        )
        if self.stop_at_exit:
            atexit.register(self._stop_at_exit)

    def _start_on(self, port: int) -> None:
        self.port = port
        self._process = self._launch(port)
        try:
            self._process.wait_ready(self._ready, timeout=self.ready_timeout, port=port)
        except PortInUse:
            self._process = None
            raise

    def stop(self, timeout: float = process.STOP_TIMEOUT) -> None:
        """:attr:`stop_signal`, SIGKILL after ``timeout``."""
        if self._process is not None:
            self._process.stop(sig=self.stop_signal, timeout=timeout, group=self.stop_group)
            self._process = None
        atexit.unregister(self._stop_at_exit)

    def _stop_at_exit(self) -> None:
        # Named so: up.py unregisters it for servers that outlive the command.
        with contextlib.suppress(Exception):
            self.stop(timeout=5.0)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP to it and its children): connections and commands
        hang, as with a stalled host."""
        if self._process is None:
            raise ServiceFailed(f"{self.name} is not running: cannot pause it")
        self._process.pause()

    def resume(self) -> None:
        if self._process is not None:
            self._process.resume()
