"""A poller: one URL through nginx, every ``interval`` seconds, each answer recorded.

Used for readiness (``/health/ready``) and for pages that need a session while Redis
is away. Bounded: it stops at ``stop()`` or after ``max_seconds``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from bench.faults.load import TRACEBACK_MARKERS
from bench.faults.stack import FaultStack


@dataclass
class Probe:
    at: float
    status: int | None
    latency: float
    traceback: bool
    body: str = ""


@dataclass
class Poller:
    stack: FaultStack
    path: str
    t0: float  # the load's clock: times are comparable with its events
    interval: float = 0.1
    timeout: float = 5.0
    max_seconds: float = 120.0
    source: str = "127.0.9.1"
    probes: list[Probe] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Probe]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
        return self.probes

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        with self.stack.client(self.source, timeout=self.timeout) as client:
            while not self._stop.is_set() and time.monotonic() < end:
                at = time.monotonic() - self.t0
                began = time.perf_counter()
                status: int | None = None
                text = ""
                try:
                    response = client.get(self.path)
                    status, text = response.status_code, response.text
                except httpx.HTTPError:
                    pass
                self.probes.append(
                    Probe(
                        at=round(at, 3),
                        status=status,
                        latency=round(time.perf_counter() - began, 3),
                        traceback=any(m in text for m in TRACEBACK_MARKERS),
                        body=text[:300] if status != 200 else "",
                    )
                )
                self._stop.wait(self.interval)

    # -- reading ------------------------------------------------------------------------
    def first(self, status: int | None, after: float) -> Probe | None:
        """The first probe sent at or after ``after`` that answered ``status``."""
        return next((p for p in self.probes if p.at >= after and p.status == status), None)

    def wait_for(self, status: int, after: float, seconds: float) -> Probe | None:
        """Wait (at most ``seconds``) for :meth:`first` to find a ``status`` answer."""
        deadline = time.monotonic() + seconds
        while (found := self.first(status, after)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def first_answer(self, after: float) -> Probe | None:
        """The first probe sent at or after ``after``, whatever it answered."""
        return next((p for p in self.probes if p.at >= after), None)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        counts: dict[str, int] = {}
        for probe in self.probes:
            if since <= probe.at < until:
                key = str(probe.status)
                counts[key] = counts.get(key, 0) + 1
        return counts
