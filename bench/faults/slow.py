"""Slow clients, slowloris-style: many TLS connections to nginx, each sending its
request a little at a time. Half dribble their headers (one short header line every
``interval`` seconds), half send complete headers and then dribble a request body.
nginx should hold them all (it reads and buffers requests before it passes anything
to the app server), so the app's few workers never wait on a slow client.

The clients run in a child process of their own (asyncio): in the harness's process
their TLS work would compete for the GIL with the load generator and inflate the
latencies it measures. Bounded: ``count`` connections, each for ``seconds``, then it
finishes its request and reads the answer (or gives up after a timeout). Loopback
only, from 127.0.6.x.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import ssl
import time
from collections import Counter
from typing import Any

from bench.faults.stack import FaultStack

HOST = "127.0.0.1"


class SlowClients:
    """Runs the slow clients in a child process; counts are shared with it."""

    def __init__(
        self, stack: FaultStack, count: int, seconds: float, interval: float = 1.0
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = count
        self.seconds = seconds
        self._connected = context.Value("i", 0)
        self._open = context.Value("i", 0)
        self._results: Any = context.Queue()
        self._process = context.Process(
            target=_child,
            args=(stack.https_port, str(stack.ca), count, seconds, interval),
            kwargs={"connected": self._connected, "opened": self._open, "results": self._results},
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()

    def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._connected.value < self.count and time.monotonic() < deadline:
            if not self._process.is_alive():
                return
            time.sleep(0.05)

    def open_now(self) -> int:
        return int(self._open.value)

    def finish(self, timeout: float) -> dict[str, Any]:
        try:
            answers = self._results.get(timeout=timeout)
        except queue.Empty:
            answers = {"unfinished": self.count}
        self._process.join(timeout=5)
        if self._process.is_alive():  # our own child, by its handle
            self._process.terminate()
            self._process.join(timeout=5)
        return {
            "connections": self.count,
            "connected": int(self._connected.value),
            "seconds_each": self.seconds,
            "answers": answers,
        }


def _child(port: int, ca: str, count: int, seconds: float, interval: float, **shared: Any) -> None:
    clients = _Clients(port, ca, count, seconds, interval, shared["connected"], shared["opened"])
    asyncio.run(clients.all())
    shared["results"].put(dict(clients.outcomes))


class _Clients:
    def __init__(
        self,
        port: int,
        ca: str,
        count: int,
        seconds: float,
        interval: float,
        connected: Any,
        opened: Any,
    ) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=ca)
        self.count = count
        self.seconds = seconds
        self.interval = interval
        self.connected = connected
        self.opened = opened
        self.outcomes: Counter[str] = Counter()

    async def all(self) -> None:
        await asyncio.gather(*(self._one(n) for n in range(self.count)))

    def _note(self, what: str, *, opened: int = 0) -> None:
        if opened:
            with self.opened.get_lock():
                self.opened.value += opened
        if what:
            self.outcomes[what] += 1

    async def _one(self, number: int) -> None:
        source = f"127.0.6.{number % 250 + 1}"
        await asyncio.sleep(number * 0.01)  # spread the TLS handshakes a little
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    HOST,
                    self.port,
                    ssl=self.context,
                    server_hostname="localhost",
                    local_addr=(source, 0),
                ),
                timeout=15,
            )
        except (TimeoutError, OSError) as error:
            self._note(f"connect: {type(error).__name__}")
            return
        with self.connected.get_lock():
            self.connected.value += 1
        self._note("", opened=1)
        try:
            await self._dribble(writer, number)
            status = await asyncio.wait_for(reader.readline(), timeout=20)
            parts = status.split()
            self._note(parts[1].decode() if len(parts) > 1 else "closed")
        except (TimeoutError, OSError) as error:
            self._note(f"error: {type(error).__name__}")
        finally:
            self._note("", opened=-1)
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), timeout=2)

    async def _dribble(self, writer: asyncio.StreamWriter, number: int) -> None:
        end = time.monotonic() + self.seconds
        if number % 2 == 0:  # slow headers
            writer.write(b"GET /api/products HTTP/1.1\r\nHost: localhost\r\n")
            line = 0
            while time.monotonic() < end:
                writer.write(b"X-Slow-%d: %d\r\n" % (line, number))
                await writer.drain()
                line += 1
                await asyncio.sleep(self.interval)
            writer.write(b"Connection: close\r\n\r\n")
        else:  # slow body (no credentials: the app answers 401 once nginx passes it on)
            chunks = max(1, int(self.seconds / self.interval)) + 1
            body = b'{"items": []}'.ljust(chunks * 16)
            writer.write(
                b"POST /api/orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            )
            for index in range(chunks):
                if index:
                    await asyncio.sleep(self.interval)
                writer.write(body[index * 16 : (index + 1) * 16])
                await writer.drain()
        await writer.drain()
