"""A small, bounded load generator: reads and idempotent-keyed order POSTs through nginx.

Fixed rate (each thread sends on its own schedule, so a slow answer does not slow the
others), bounded by a count AND a duration, loopback only. Every attempt is recorded
(what, when, status or error, latency). Each thread sends from its own loopback
address, as separate clients would: nginx limits /api/ per client address (20 r/s).

Orders: every POST carries a fresh ``Idempotency-Key`` (``<prefix><n>``); a failed
POST (no answer, 429 or 5xx) is retried with the *same* key a bounded number of times
with a short back-off — how real clients use idempotency keys. An order is
*acknowledged* when an attempt answered 201 (or 200: a retry found it created); its
id is kept so the database can be checked afterwards.

Keep-alive: a request sent on an idle keep-alive connection at the instant nginx closes
it (its old workers close idle connections when it reloads, as every server does when
it stops) gets no response at all, and the request never reached nginx's handler. Like
browsers (and RFC 9112 §9.3.1), the client then sends it once more on a new connection;
such resends are counted (``stale_connection_resends``), never hidden, and a request
whose resend fails counts as failed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.faults.stack import FaultStack, loopback

ORDER = {"items": [{"product_id": 1, "quantity": 1}]}
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/')


@dataclass(frozen=True)
class LoadPlan:
    """How much load: ``rate`` first attempts per second over ``threads`` clients,
    at most ``max_requests`` of them and never longer than ``duration`` seconds."""

    rate: float = 40.0
    duration: float = 20.0
    max_requests: int = 2000
    #: Every ``post_every``-th request is an order POST (0: reads only).
    post_every: int = 4
    get_paths: tuple[str, ...] = ("/api/products", "/")
    threads: int = 8
    post_retries: int = 4
    timeout: float = 10.0

    def describe(self) -> str:
        posts = f", 1 in {self.post_every} an order POST" if self.post_every else ", reads only"
        return (
            f"{self.rate:g} req/s from {self.threads} clients (bounds: {self.duration:g} s, "
            f"{self.max_requests} requests){posts}; reads: {', '.join(self.get_paths)}"
        )


@dataclass
class Attempt:
    kind: str  # "get" or "post"
    path: str
    at: float  # seconds since the load started
    latency: float
    status: int | None
    error: str | None
    attempt: int  # 0: first attempt; >0: a retry of a POST with the same key
    key: str | None = None
    traceback: bool = False

    @property
    def ok(self) -> bool:
        if self.kind == "post":
            return self.status in (200, 201)
        return self.status == 200

    def outcome(self) -> str:
        return str(self.status) if self.status is not None else (self.error or "error")


@dataclass
class LoadRecord:
    plan: LoadPlan
    prefix: str
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)  # key -> order id
    final_failures: dict[str, str] = field(default_factory=dict)  # key -> last outcome
    events: dict[str, float] = field(default_factory=dict)
    #: Requests sent again because a keep-alive connection closed before any response.
    stale_connection_resends: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    """Runs a :class:`LoadPlan` against a stack in background threads."""

    def __init__(self, stack: FaultStack, plan: LoadPlan, prefix: str, block: int = 3) -> None:
        self.stack = stack
        self.plan = plan
        self.record = LoadRecord(plan, prefix)
        self.block = block  # the 127.0.<block>.x addresses this load sends from
        self._stop = threading.Event()
        self._numbers = itertools.count()
        self._threads: list[threading.Thread] = []
        self.t0 = 0.0

    # -- control -------------------------------------------------------------------------
    def start(self) -> Load:
        self.t0 = time.monotonic()
        for index in range(self.plan.threads):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, event: str) -> float:
        """Note when something happened (a fault, a restart), on the load's clock."""
        at = self.now()
        with self.record.lock:
            self.record.events[event] = round(at, 3)
        return at

    def sent(self) -> int:
        with self.record.lock:
            return sum(1 for a in self.record.attempts if a.attempt == 0)

    def wait_sent(self, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` first attempts were answered (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.sent() < count and time.monotonic() < deadline and self.running():
            time.sleep(0.02)

    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self) -> LoadRecord:
        self._stop.set()
        return self.join()

    def join(self) -> LoadRecord:
        limit = self.plan.timeout * (self.plan.post_retries + 2) + 5
        for thread in self._threads:
            thread.join(timeout=limit)
        return self.record

    # -- one client ----------------------------------------------------------------------
    def _client(self, index: int) -> None:
        plan = self.plan
        interval = plan.threads / plan.rate
        end = self.t0 + plan.duration
        with self.stack.client(loopback(self.block, index), timeout=plan.timeout) as client:
            client.headers["Authorization"] = f"Bearer {self.stack.token}"
            for step in itertools.count():
                due = self.t0 + (index / plan.rate) + step * interval
                if self._stop.is_set() or due >= end:
                    return
                number = next(self._numbers)
                if number >= plan.max_requests:
                    return
                pause = due - time.monotonic()
                if pause < -interval:
                    # A request that hung made this client late: its missed slots are
                    # skipped, not fired in a burst (a burst would meet nginx's rate
                    # limit and measure the catch-up instead of the fault).
                    continue
                if pause > 0 and self._stop.wait(pause):
                    return
                if plan.post_every and number % plan.post_every == plan.post_every - 1:
                    self._order(client, f"{self.record.prefix}{number}")
                else:
                    self._get(client, plan.get_paths[number % len(plan.get_paths)])

    def _send(
        self, client: httpx.Client, kind: str, path: str, attempt: int, **kwargs: Any
    ) -> tuple[Attempt, httpx.Response | None]:
        at = self.now()
        began = time.perf_counter()
        response: httpx.Response | None = None
        status: int | None = None
        error: str | None = None
        traceback = False
        method = "POST" if kind == "post" else "GET"
        try:
            try:
                response = client.request(method, path, **kwargs)
            except httpx.RemoteProtocolError as closed:
                if "without sending a response" not in str(closed):
                    raise
                # an idle keep-alive connection the server closed as this was sent: the
                # request was never read; send it once more on a new connection
                with self.record.lock:
                    self.record.stale_connection_resends += 1
                response = client.request(method, path, **kwargs)
            status = response.status_code
            traceback = status >= 400 and any(m in response.text for m in TRACEBACK_MARKERS)
        except httpx.HTTPError as failure:
            error = type(failure).__name__
        result = Attempt(
            kind=kind,
            path=path,
            at=round(at, 4),
            latency=round(time.perf_counter() - began, 4),
            status=status,
            error=error,
            attempt=attempt,
            key=kwargs.get("headers", {}).get("Idempotency-Key"),
            traceback=traceback,
        )
        with self.record.lock:
            self.record.attempts.append(result)
        return result, response

    def _get(self, client: httpx.Client, path: str) -> None:
        self._send(client, "get", path, 0)

    def _order(self, client: httpx.Client, key: str) -> None:
        headers = {"Idempotency-Key": key}
        outcome = ""
        for attempt in range(self.plan.post_retries + 1):
            if attempt:
                # Back-off 0.25, 0.5, 1, 2 s (bounded by post_retries); kept even when the
                # load is stopping, so every order started gets its answer.
                time.sleep(0.25 * 2 ** (attempt - 1))
            result, response = self._send(
                client, "post", "/api/orders", attempt, json=ORDER, headers=headers
            )
            outcome = result.outcome()
            if result.ok and response is not None:
                with self.record.lock:
                    self.record.acknowledged[key] = int(response.json()["id"])
                return
            if result.status is not None and result.status < 500 and result.status != 429:
                break  # refused for a reason a retry cannot change
        with self.record.lock:
            self.record.final_failures[key] = outcome


# -- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_ms(attempts: list[Attempt]) -> dict[str, float]:
    values = [a.latency for a in attempts]
    return {
        "p50": round(percentile(values, 50) * 1000, 1),
        "p99": round(percentile(values, 99) * 1000, 1),
        "max": round(max(values, default=0.0) * 1000, 1),
    }


def summarize(record: LoadRecord) -> dict[str, Any]:
    """Requests sent, failed by status (first attempts and final), latencies."""
    first = [a for a in record.attempts if a.attempt == 0]
    gets = [a for a in first if a.kind == "get"]
    posts = [a for a in first if a.kind == "post"]
    failed_gets = Counter(a.outcome() for a in gets if not a.ok)
    failed_posts = Counter(a.outcome() for a in posts if not a.ok)
    return {
        "load": record.plan.describe(),
        "ran_s": round(max((a.at + a.latency for a in record.attempts), default=0.0), 1),
        "sent": len(first),
        "gets": len(gets),
        "posts": len(posts),
        "retries": sum(1 for a in record.attempts if a.attempt > 0),
        "stale_connection_resends": record.stale_connection_resends,
        "failed_gets": dict(failed_gets),
        "failed_posts_first_attempt": dict(failed_posts),
        "failed_posts_final": dict(Counter(record.final_failures.values())),
        "failed_total_first_attempt": sum(failed_gets.values()) + sum(failed_posts.values()),
        "failed_total_final": sum(failed_gets.values()) + len(record.final_failures),
        "tracebacks": sum(1 for a in record.attempts if a.traceback),
        # When and where things failed, against the events' times (first 12).
        "failed_examples": [
            {
                "at": a.at,
                "kind": a.kind,
                "path": a.path,
                "outcome": a.outcome(),
                "latency": a.latency,
                "attempt": a.attempt,
            }
            for a in sorted(record.attempts, key=lambda a: a.at)
            if not a.ok
        ][:12],
        "latency_ms": {"get": latency_ms(gets), "post": latency_ms(posts)},
        "acknowledged": len(record.acknowledged),
        "events": dict(record.events),
    }


def verify_orders(stack: FaultStack, record: LoadRecord) -> dict[str, Any]:
    """Acknowledged orders against PostgreSQL, read directly: each acknowledged key must
    exist exactly once, with the id the client was given."""
    stored = stack.orders_by_key(record.prefix)
    lost = sorted(k for k in record.acknowledged if k not in stored)
    duplicated = sorted(k for k, ids in stored.items() if len(ids) > 1)
    wrong_id = sorted(
        k for k, order_id in record.acknowledged.items() if k in stored and stored[k] != [order_id]
    )
    unacknowledged = sorted(k for k in stored if k not in record.acknowledged)
    return {
        "acknowledged": len(record.acknowledged),
        "in_database": len(stored),
        "rows_in_database": sum(len(ids) for ids in stored.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "wrong_id": len(wrong_id),
        # Created by a POST whose answer the client never saw and gave up on: not lost
        # (never acknowledged), listed so a reader sees them.
        "stored_not_acknowledged": len(unacknowledged),
        "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "wrong_id": wrong_id[:5]},
    }


def recovery_seconds(record: LoadRecord, fault_at: float) -> float:
    """From the fault to the end of the last failed first attempt after it (0 when
    nothing failed): how long clients noticed anything."""
    ends = [
        a.at + a.latency
        for a in record.attempts
        if a.attempt == 0 and not a.ok and a.at >= fault_at
    ]
    return round(max(ends) - fault_at, 3) if ends else 0.0
