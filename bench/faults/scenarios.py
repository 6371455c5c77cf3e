"""The fault scenarios (scenario 9 is scenario 4 on MariaDB). Each runs a bounded load
against a running stack, injects one fault, and returns its figures and the checks it
makes (each check says what was expected and what was observed; the scenario passes
when all of them hold).

Every scenario gets a :class:`Size`: ``TEST`` (make test: a few seconds of load),
``QUICK`` (``--quick``) or ``FULL``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.faults.load import (
    Load,
    LoadPlan,
    LoadRecord,
    latency_ms,
    recovery_seconds,
    summarize,
    verify_orders,
)
from bench.faults.probes import Poller
from bench.faults.slow import SlowClients
from bench.faults.stack import FaultStack, flaskprod
from flaskprod.runtime.config import DATABASE_PROBE_TIMEOUT, DATABASE_STALL_SECONDS
from flaskprod.stack import process
from flaskprod.stack.state import children_of as process_children

#: How long a request may wait on a stalled database (scenario 7): the stall guard's
#: defaults, which the fault stack does not override.
STALL_BOUND = DATABASE_STALL_SECONDS + DATABASE_PROBE_TIMEOUT


@dataclass(frozen=True)
class Size:
    name: str
    rate: float  # first attempts per second
    before: float  # seconds of load before the fault
    after: float  # seconds of load after recovery
    outage: float  # seconds a service stays down / paused
    slow_clients: int
    slow_seconds: float
    stall: float  # seconds PostgreSQL stays SIGSTOPped


TEST = Size(
    "test", rate=20, before=1.5, after=1.5, outage=2.5, slow_clients=40, slow_seconds=4, stall=4
)
QUICK = Size(
    "quick", rate=40, before=3, after=3, outage=3, slow_clients=150, slow_seconds=10, stall=8
)
FULL = Size(
    "full", rate=50, before=10, after=10, outage=5, slow_clients=400, slow_seconds=25, stall=40
)


def check(name: str, passed: bool, expected: str, observed: Any) -> dict[str, Any]:
    return {"check": name, "passed": bool(passed), "expected": expected, "observed": observed}


def _plan(size: Size, budget: float, **kw: Any) -> LoadPlan:
    return LoadPlan(
        rate=size.rate,
        duration=budget,
        max_requests=int(size.rate * budget) + 10,
        **kw,
    )


def _prefix(number: int) -> str:
    return f"fault{number}-{uuid.uuid4().hex[:8]}-"


def _finish(
    number: int,
    title: str,
    fault: str,
    load: Load,
    stack: FaultStack,
    checks: list[dict[str, Any]],
    recover: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record = load.stop()
    orders = verify_orders(stack, record)
    summary = summarize(record)
    return {
        "scenario": number,
        "title": title,
        "fault": fault,
        "load": summary,
        "orders": orders,
        "time_to_recover_s": recover,
        "extra": extra or {},
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }


def _order_checks(stack: FaultStack, record: LoadRecord) -> list[dict[str, Any]]:
    orders = verify_orders(stack, record)
    return [
        check(
            "every acknowledged order is in the database",
            orders["lost"] == 0 and orders["wrong_id"] == 0,
            "0 lost",
            f"{orders['lost']} lost, {orders['wrong_id']} with another id "
            f"({orders['acknowledged']} acknowledged)",
        ),
        check(
            "no order is stored twice",
            orders["duplicated"] == 0,
            "0 duplicated",
            orders["duplicated"],
        ),
        check(
            "orders were placed during the run",
            orders["acknowledged"] > 0,
            "> 0 acknowledged",
            orders["acknowledged"],
        ),
    ]


def _run_for(load: Load, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and load.running():
        time.sleep(0.02)


# -- 1. reload ----------------------------------------------------------------------------


def reload_under_load(stack: FaultStack, size: Size) -> dict[str, Any]:
    load = Load(stack, _plan(size, size.before + size.after + 60), _prefix(1)).start()
    _run_for(load, size.before)
    load.mark("reload")
    began = time.monotonic()
    output = flaskprod("reload", str(stack.project), timeout=90).stdout
    took = round(time.monotonic() - began, 3)
    load.mark("reloaded")
    _run_for(load, size.after)
    load.stop()
    summary = summarize(load.record)
    checks = [
        check(
            "no request failed",
            summary["failed_total_first_attempt"] == 0,
            "0 failed",
            summary["failed_gets"] | summary["failed_posts_first_attempt"],
        ),
        check("the reload finished", "reloaded" in output, "'reloaded' in its output", took),
        *_order_checks(stack, load.record),
    ]
    return _finish(
        1,
        "flaskprod reload during load",
        f"flaskprod reload (took {took} s)",
        load,
        stack,
        checks,
        recovery_seconds(load.record, load.record.events["reload"]),
        {"reload_seconds": took, "phases": _phases(output)},
    )


def _phases(output: str) -> str:
    """The release pipeline's line of seconds per phase ('build 0.1s, ...'), if any."""
    for line in output.splitlines():
        if ": live on slot " in line and "(" in line:
            return line[line.index("(") + 1 : line.rindex(")")]
    return ""


# -- 2. a worker killed ---------------------------------------------------------------------


#: The server's line once a new worker serves: gunicorn forks from the preloaded app
#: ("Booting worker"), a granian worker imports the app first, then says "Started".
_WORKER_SERVING = re.compile(rb"Booting worker with pid|Started worker-")


def _new_worker_serving(
    stack: FaultStack, offset: int, load: Load, fault_at: float, timeout: float = 30.0
) -> float | None:
    """Seconds from the kill to the server's line that the new worker serves."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _WORKER_SERVING.search(_server_log_since(stack, offset)):
            return round(load.mark("new worker serving") - fault_at, 3)
        time.sleep(0.02)
    return None


def worker_killed(stack: FaultStack, size: Size) -> dict[str, Any]:
    expected = len(stack.workers())
    load = Load(stack, _plan(size, size.before + size.after + 60), _prefix(2)).start()
    _run_for(load, size.before)
    log_offset = stack.log(stack.server).stat().st_size
    fault_at = load.mark("kill")
    victim = stack.kill_worker()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = stack.workers()
        if victim not in workers and len(workers) >= expected:
            break
        time.sleep(0.02)
    replaced = round(load.mark("replaced") - fault_at, 3)
    serving = _new_worker_serving(stack, log_offset, load, fault_at)
    _run_for(load, size.after)
    load.stop()
    summary = summarize(load.record)
    checks = [
        check("no GET failed", not summary["failed_gets"], "0 failed", summary["failed_gets"]),
        check(
            "no order failed in the end (retried with the same key)",
            not summary["failed_posts_final"],
            "0 final failures",
            summary["failed_posts_final"],
        ),
        check(
            f"{stack.server} replaced the worker",
            victim not in stack.workers() and len(stack.workers()) >= expected,
            f"{expected} workers, {victim} not among them",
            f"{len(stack.workers())} workers after {replaced} s",
        ),
        check(
            "the new worker serves (the server's log says so)",
            serving is not None,
            "'Booting worker' / 'Started worker' within 30 s",
            serving,
        ),
        *_order_checks(stack, load.record),
    ]
    return _finish(
        2,
        f"a {stack.server} worker killed (SIGKILL)",
        f"SIGKILL to worker {victim}",
        load,
        stack,
        checks,
        recovery_seconds(load.record, fault_at),
        {
            "worker_replaced_after_s": replaced,
            "new_worker_serving_after_s": serving,
            "first_attempt_post_failures": summary["failed_posts_first_attempt"],
        },
    )


# -- 3. the master killed, restarted by a supervisor -----------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """The restart settings of the rendered systemd unit (``deploy/systemd/<name>.service``)."""

    restart: str
    restart_sec: float
    kill_mode: str
    timeout_stop_sec: float

    @classmethod
    def of(cls, stack: FaultStack) -> RestartPolicy:
        from flaskprod.check.parsers.systemd import parse_unit_text

        path = stack.project / "deploy" / "systemd" / f"{stack.spec().app.name}.service"
        unit = parse_unit_text(path, path.read_text())
        return cls(
            restart=unit.value("Service", "Restart", "no"),
            restart_sec=_seconds(unit.value("Service", "RestartSec", "100ms")),
            kill_mode=unit.value("Service", "KillMode", "control-group"),
            timeout_stop_sec=_seconds(unit.value("Service", "TimeoutStopSec", "90")),
        )


def _seconds(value: str) -> float:
    """systemd time spans as the unit writes them: "2", "2s", "100ms", "1min"."""
    for suffix, factor in (("ms", 0.001), ("min", 60.0), ("s", 1.0)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


class Supervisor:
    """Stands in for the server's systemd, following the rendered unit: when the app
    server's main process (gunicorn's or granian's master) is gone, what is left of the
    service (the processes of its tree here, its cgroup there) is stopped as ``KillMode``
    says, then the server is started again after ``RestartSec``, exactly as ``up``
    started it. ``flaskprod up`` has no restart loop of
    its own (in the foreground it stops the stack when a service dies; detached,
    nothing watches).

    systemd's stop of a service whose main process already died: ``mixed`` sends
    SIGTERM to the main process only — there is none, so nothing is waited for — and
    then SIGKILL to every remaining process; ``control-group`` sends SIGTERM to all,
    waits up to ``TimeoutStopSec``, then SIGKILLs; ``process`` leaves the rest alone."""

    def __init__(self, stack: FaultStack, load: Load, policy: RestartPolicy) -> None:
        self.stack = stack
        self.load = load
        self.policy = policy
        self.server = stack.server
        self.restarts: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.policy.timeout_stop_sec + 60)

    def _stop_leftovers(self, tree: dict[int, int | None]) -> int:
        """Stop what is left of the dead service: the processes of its tree (seen while
        the master lived; after a reload the master is not its group's leader, so its
        group says nothing), each still the process we saw (same start time)."""

        def alive() -> list[int]:
            return [
                p for p, t in tree.items() if process.start_time(p) == t and process.is_alive(p)
            ]

        left = alive()
        if self.policy.kill_mode == "control-group":
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.policy.timeout_stop_sec
            while alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.policy.kill_mode in ("control-group", "mixed"):
            for pid in alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        return len(left)

    def _wait_accepts(self, timeout: float = 30.0) -> float | None:
        """Seconds since the load began when the new server's socket accepts."""
        from flaskprod.stack.gunicorn import socket_accepts

        address = self.stack.record(self.server).address
        path = Path(address.removeprefix("unix:"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if socket_accepts(path):
                return round(self.load.mark("server socket accepts"), 3)
            time.sleep(0.02)
        return None

    def _run(self) -> None:
        tree: dict[int, int | None] = {}
        while not self._stop.wait(0.05):
            old = self.stack.record(self.server)
            if old.alive():
                tree = {p: process.start_time(p) for p in process.descendants(old.pid)}
                continue
            noticed = self.load.mark("supervisor noticed")
            left = self._stop_leftovers(tree)
            emptied = self.load.mark("service stopped")
            time.sleep(self.policy.restart_sec)
            pid = self.stack.start_server()
            started = self.load.mark("supervisor restarted")
            accepts = self._wait_accepts()
            self.restarts.append(
                {
                    "old": old.pid,
                    "new": pid,
                    "noticed": round(noticed, 3),
                    "leftovers": left,
                    "leftovers_stopped": round(emptied, 3),
                    "started": round(started, 3),
                    # The new server's socket accepts (nginx stops answering 502): how
                    # much of the gap is the server's own start after RestartSec.
                    "socket_accepts": accepts,
                }
            )
            tree = {}


def master_killed(stack: FaultStack, size: Size) -> dict[str, Any]:
    policy = RestartPolicy.of(stack)
    budget = size.before + size.after + policy.timeout_stop_sec + policy.restart_sec + 60
    load = Load(stack, _plan(size, budget), _prefix(3)).start()
    supervisor = Supervisor(stack, load, policy).start()
    try:
        _run_for(load, size.before)
        fault_at = load.mark("kill master")
        killed = stack.kill_master()
        deadline = time.monotonic() + policy.timeout_stop_sec + policy.restart_sec + 30
        while time.monotonic() < deadline and not supervisor.restarts:
            time.sleep(0.05)
        stack.wait_ready(60)
        load.mark("ready again")
        _run_for(load, size.after)
        load.stop()
    finally:
        supervisor.stop()
    record = load.record
    failed = [a for a in record.attempts if a.attempt == 0 and not a.ok]
    # The gap ends with the last failed attempt, retries included: while orders are
    # retried (back-off up to 2 s), their clients send no first attempt, so first
    # attempts alone stop failing before the server is back.
    failed_any = [a for a in record.attempts if not a.ok and a.at >= fault_at]
    ok_after = [a for a in record.attempts if a.ok and a.at >= fault_at]
    statuses = sorted({a.outcome() for a in failed_any})
    gap_end = max((a.at + a.latency for a in failed_any), default=fault_at)
    gap = round(gap_end - fault_at, 3) if failed_any else 0.0
    outside = [a for a in failed if a.at < fault_at]
    accepts = [r["socket_accepts"] for r in supervisor.restarts if r.get("socket_accepts")]
    checks = [
        check("failures are 502/503 only", set(statuses) <= {"502", "503"}, "502/503", statuses),
        check("no failure before the fault", not outside, "0", len(outside)),
        check(
            "restarted without manual action",
            bool(supervisor.restarts),
            f"the supervisor restarted {stack.server}",
            supervisor.restarts,
        ),
        check(
            "requests succeed after the gap",
            bool(ok_after) and ok_after[-1].at > gap_end,
            "successes after the last failure",
            len(ok_after),
        ),
        *_order_checks(stack, record),
    ]
    return _finish(
        3,
        f"the {stack.server} master killed, restarted by a supervisor",
        f"SIGKILL to the master {killed}; its orphaned workers stopped and {stack.server} "
        f"restarted as systemd does with the rendered unit (Restart={policy.restart}, "
        f"KillMode={policy.kill_mode}, RestartSec={policy.restart_sec:g})",
        load,
        stack,
        checks,
        gap,
        {
            "gap_s": gap,
            "server_socket_accepts_after_kill_s": round(accepts[0] - fault_at, 3)
            if accepts
            else None,
            "failed_statuses": statuses,
            "ready_after_kill_s": round(load.record.events["ready again"] - fault_at, 3),
            "supervisor": supervisor.restarts,
            "policy": policy.__dict__,
        },
    )


# -- 4. PostgreSQL restarted ---------------------------------------------------------------


def _answer_time(poller: Poller, status: int, after: float) -> float | None:
    probe = poller.first(status, after)
    return None if probe is None else round(probe.at + probe.latency - after, 3)


PRODUCTS_CACHE_KEY = "shop:products:v1"  # examples/shop/shop/cache.py


def _fresh_product_cache(stack: FaultStack) -> int:
    """Drop the cached product list and read it once, so the fault meets a fresh entry
    (it lives PRODUCTS_CACHE_SECONDS, 30 s); returns its TTL in seconds."""
    stack.redis_command("DEL", PRODUCTS_CACHE_KEY)
    with stack.client() as client:
        client.get("/api/products").raise_for_status()
    return int(stack.redis_command("TTL", PRODUCTS_CACHE_KEY))


def postgres_restarted(stack: FaultStack, size: Size) -> dict[str, Any]:
    return _database_restarted(stack, size, 4, "postgres")


def mariadb_restarted(stack: FaultStack, size: Size) -> dict[str, Any]:
    """Scenario 4 on MariaDB (a stack run with ``--database mariadb``): the shop through
    PyMySQL with flaskprod's pool settings (pre-ping, pool_recycle)."""
    return _database_restarted(stack, size, 9, "mariadb")


def _database_restarted(
    stack: FaultStack, size: Size, number: int, database: str
) -> dict[str, Any]:
    if stack.database != database:
        raise RuntimeError(
            f"scenario {number} restarts {database}, and this stack runs {stack.database}"
        )
    label = stack.database_label
    cache_ttl = _fresh_product_cache(stack)
    plan = _plan(size, size.before + size.outage + size.after + 60, get_paths=("/api/products",))
    load = Load(stack, plan, _prefix(number)).start()
    ready = Poller(stack, "/health/ready", load.t0, source="127.0.9.1").start()
    page = Poller(stack, "/", load.t0, interval=0.25, source="127.0.9.2").start()
    try:
        _run_for(load, size.before)
        stopped_at = load.mark(f"stop {database}")
        stack.stop_database()
        load.mark(f"{database} stopped")
        time.sleep(size.outage)
        load.mark(f"start {database}")
        stack.start_database()
        started_at = load.mark(f"{database} accepts connections")
        ready.wait_for(200, started_at, 15)
        _run_for(load, size.after)
        load.stop()
    finally:
        ready.stop()
        page.stop()
    summary = summarize(load.record)
    to_503 = _answer_time(ready, 503, stopped_at)
    to_200 = _answer_time(ready, 200, started_at)
    page_statuses = page.statuses(stopped_at, started_at)
    tracebacks = summary["tracebacks"] + sum(p.traceback for p in ready.probes + page.probes)
    checks = [
        check(
            "readiness turns 503 within 2 s",
            to_503 is not None and to_503 <= 2.0,
            "<= 2 s after the stop",
            to_503,
        ),
        check(
            "readiness back to 200 within 2 s of the restart",
            to_200 is not None and to_200 <= 2.0,
            "<= 2 s",
            to_200,
        ),
        check(
            "cached product reads keep answering",
            not summary["failed_gets"],
            "0 failed",
            summary["failed_gets"],
        ),
        check("no page shows a traceback", tracebacks == 0, "0", tracebacks),
        check(
            "pages that need the database answer 503, not 500",
            "500" not in page_statuses,
            "no 500",
            page_statuses,
        ),
        *_order_checks(stack, load.record),
    ]
    down = round(started_at - stopped_at, 3)
    how = "fast shutdown" if database == "postgres" else "clean shutdown, SIGTERM"
    return _finish(
        number,
        f"{label} restarted",
        f"{label} stopped ({how}) for {down} s, then started; the product list "
        f"was cached {size.before:g} s before the stop (entry lifetime {cache_ttl} s)",
        load,
        stack,
        checks,
        to_200 if to_200 is not None else -1.0,
        {
            "readiness_503_after_s": to_503,
            "readiness_200_after_restart_s": to_200,
            "readiness": ready.statuses(),
            "page_during_outage": page_statuses,
            "first_attempt_post_failures": summary["failed_posts_first_attempt"],
        },
    )


# -- 5. Redis stopped ----------------------------------------------------------------------


def redis_stopped(stack: FaultStack, size: Size) -> dict[str, Any]:
    plan = _plan(size, size.before + size.outage + size.after + 60, get_paths=("/api/products",))
    load = Load(stack, plan, _prefix(5)).start()
    signup = Poller(stack, "/signup", load.t0, interval=0.2, source="127.0.9.3").start()
    ready = Poller(stack, "/health/ready", load.t0, interval=0.2, source="127.0.9.4").start()
    login: dict[str, Any] = {}
    try:
        _run_for(load, size.before)
        stopped_at = load.mark("stop redis")
        stack.stop_redis()
        time.sleep(size.outage / 2)
        with stack.client("127.0.9.5") as client:  # one log-in page (its own rate limit)
            response = client.get("/login")
            login = {
                "status": response.status_code,
                "traceback": "Traceback" in response.text,
                "says": response.text[:2000].count("503") > 0
                or "unavailable" in response.text.lower(),
            }
        time.sleep(size.outage / 2)
        load.mark("start redis")
        stack.start_redis()
        started_at = load.mark("redis accepts connections")
        signup.wait_for(200, started_at, 20)  # each worker leaves Redis alone 5 s after an error
        _run_for(load, size.after)
        load.stop()
    finally:
        signup.stop()
        ready.stop()
    summary = summarize(load.record)
    during = signup.statuses(stopped_at + 0.5, started_at)
    recovered = _answer_time(signup, 200, started_at)
    tracebacks = summary["tracebacks"] + sum(p.traceback for p in signup.probes)
    checks = [
        check(
            "product reads fall back to the database",
            not summary["failed_gets"],
            "0 failed",
            summary["failed_gets"],
        ),
        check(
            "orders (token, no session) keep working",
            not summary["failed_posts_final"],
            "0 final failures",
            summary["failed_posts_final"],
        ),
        check(
            "session pages answer a clear 503, never 500",
            bool(during) and set(during) <= {"503"},
            "503 only",
            during,
        ),
        check(
            "the log-in page answers 503 without a traceback",
            login.get("status") == 503 and not login.get("traceback"),
            "503",
            login,
        ),
        check("no traceback in any answer", tracebacks == 0, "0", tracebacks),
        check(
            "sessions recover when Redis returns",
            recovered is not None,
            "/signup 200 again",
            recovered,
        ),
        *_order_checks(stack, load.record),
    ]
    down = round(started_at - stopped_at, 3)
    return _finish(
        5,
        "Redis stopped",
        f"Redis stopped for {down} s, then started",
        load,
        stack,
        checks,
        recovered if recovered is not None else -1.0,
        {
            "session_page_during_outage": during,
            "login_page": login,
            "readiness": ready.statuses(stopped_at, started_at),
            "sessions_back_after_restart_s": recovered,
        },
    )


# -- 6. slow clients -----------------------------------------------------------------------


def slow_clients(stack: FaultStack, size: Size) -> dict[str, Any]:
    seconds = size.slow_seconds
    reads = ("/api/products", "/")
    # Warm up first (connections, caches, lazy imports), so the baseline is not its cold start.
    Load(stack, _plan(size, 2.0, get_paths=reads, post_every=0), _prefix(6), block=4).start().join()
    baseline = Load(
        stack, _plan(size, seconds, get_paths=reads, post_every=0), _prefix(6), block=4
    ).start()
    base = baseline.join()
    slow = SlowClients(stack, size.slow_clients, seconds + 8)
    slow.start()
    slow.wait_connected(timeout=30)
    under = Load(
        stack, _plan(size, seconds, get_paths=reads, post_every=0), _prefix(6), block=5
    ).start()
    under.mark("slow clients connected")
    time.sleep(seconds / 2)
    held = slow.open_now()  # in the middle of the measured load
    loaded = under.join()
    slow_result = slow.finish(timeout=seconds + 30)
    base_summary, load_summary = summarize(base), summarize(loaded)
    base_lat = latency_ms([a for a in base.attempts if a.attempt == 0])
    load_lat = latency_ms([a for a in loaded.attempts if a.attempt == 0])
    bound = max(2 * base_lat["p99"], base_lat["p99"] + 25.0)
    checks = [
        check(
            "no request failed without slow clients",
            not base_summary["failed_gets"],
            "0",
            base_summary["failed_gets"],
        ),
        check(
            "no request failed with slow clients",
            not load_summary["failed_gets"],
            "0",
            load_summary["failed_gets"],
        ),
        check(
            "the slow connections were held open during the load",
            held >= 0.9 * size.slow_clients,
            f">= {0.9 * size.slow_clients:g}",
            held,
        ),
        check(
            "p99 keeps its level (<= max(2x, +25 ms) of the baseline)",
            load_lat["p99"] <= bound,
            f"<= {bound:g} ms",
            load_lat["p99"],
        ),
    ]
    return {
        "scenario": 6,
        "title": "slow clients (slowloris-style)",
        "fault": f"{size.slow_clients} connections sending their request slowly for "
        f"{seconds + 8:g} s (half the headers, half a body)",
        "load": load_summary,
        "orders": None,
        "time_to_recover_s": 0.0,
        "extra": {
            "latency_without_ms": base_lat,
            "latency_with_ms": load_lat,
            "baseline": base_summary,
            "slow_clients": slow_result,
            "held_open_during_load": held,
        },
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }


# -- 7. PostgreSQL stalled -----------------------------------------------------------------


def _server_log_since(stack: FaultStack, offset: int) -> bytes:
    with stack.log(stack.server).open("rb") as handle:
        handle.seek(offset)
        return handle.read()


_CUT_BY_WATCHDOG = re.compile(rb"still running after ([0-9.]+) s")
#: granian's access line (its default format, with --access-log): ... " 200 12.345 (ms).
_GRANIAN_ACCESS = re.compile(rb'^\[[^]]+\] \S* - "[^"]*" \d{3} ([0-9.]+)$')
#: A worker the server had to end or lost: gunicorn's timeout kill, granian's note
#: that a worker exited (the watchdog's exit, a crash).
_WORKER_ENDED = re.compile(rb"WORKER TIMEOUT|Unexpected exit from worker")


def _line_seconds(line: bytes) -> float | None:
    """How long the request of an access line took, in seconds: gunicorn's JSON line
    (duration_us), the app's own JSON line (flaskprod.access, duration_ms) or granian's
    line (milliseconds last); None for any other line."""
    if line.startswith(b"{") and b'"duration_' in line:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            fields = json.loads(line)
            if "duration_us" in fields:
                return int(fields["duration_us"]) / 1e6
            return float(fields["duration_ms"]) / 1e3
    elif (granian := _GRANIAN_ACCESS.match(line)) is not None:
        return float(granian.group(1)) / 1e3
    return None


def _longest_in_app(log: bytes) -> float:
    """The longest request the app held a worker thread for, whatever the client or
    nginx gave up after: the access lines of requests that ended (gunicorn's, granian's
    or the app's own) and flaskprod's watchdog lines for requests it cut (those write
    no access line)."""
    longest = 0.0
    for line in log.splitlines():
        if (seconds := _line_seconds(line.strip())) is not None:
            longest = max(longest, seconds)
        elif (cut := _CUT_BY_WATCHDOG.search(line)) is not None:
            longest = max(longest, float(cut.group(1)))
    return longest


def postgres_stalled(stack: FaultStack, size: Size) -> dict[str, Any]:
    return _database_stalled(stack, size, 7, "postgres")


def mariadb_stalled(stack: FaultStack, size: Size) -> dict[str, Any]:
    """Scenario 7 on MariaDB (a stack run with ``--database mariadb``): the shop through
    PyMySQL, its stall guard probing for MariaDB's greeting."""
    return _database_stalled(stack, size, 10, "mariadb")


def _database_stalled(stack: FaultStack, size: Size, number: int, database: str) -> dict[str, Any]:
    if stack.database != database:
        raise RuntimeError(
            f"scenario {number} stalls {database}, and this stack runs {stack.database}"
        )
    label = stack.database_label
    spec = stack.spec()
    worker_timeout = float(spec.server.timeout)
    log_offset = stack.log(stack.server).stat().st_size
    _fresh_product_cache(stack)
    # Clients wait longer than nginx does (proxy_read_timeout = worker timeout + 5 s), so
    # what they see is what the stack answers, not their own patience.
    plan = LoadPlan(
        rate=size.rate,
        duration=size.before + size.stall + size.after + 60,
        max_requests=int(size.rate * (size.before + size.stall + size.after + 60)) + 10,
        get_paths=("/api/products", "/"),
        timeout=worker_timeout + 15.0,
    )
    load = Load(stack, plan, _prefix(number)).start()
    ready = Poller(
        stack, "/health/ready", load.t0, interval=0.25, timeout=40, source="127.0.9.6"
    ).start()
    try:
        _run_for(load, size.before)
        paused_at = load.mark(f"SIGSTOP {database}")
        stack.pause_database()
        time.sleep(size.stall)
        resumed_at = load.mark(f"SIGCONT {database}")
        stack.resume_database()
        ready.wait_for(200, resumed_at, 30)
        _run_for(load, size.after)
        load.stop()
    finally:
        stack.resume_database()
        ready.stop()
    summary = summarize(load.record)
    first_probe = ready.first_answer(paused_at)
    to_503 = _answer_time(ready, 503, paused_at)
    to_200 = _answer_time(ready, 200, resumed_at)
    longest = max((a.latency for a in load.record.attempts), default=0.0)
    log = _server_log_since(stack, log_offset)
    in_app = _longest_in_app(log)
    access_lines = sum(_line_seconds(line.strip()) is not None for line in log.splitlines())
    timeouts = len(_WORKER_ENDED.findall(log))
    statuses = dict(
        Counter(summary["failed_gets"]) + Counter(summary["failed_posts_first_attempt"])
    )
    after = [a for a in load.record.attempts if to_200 is not None and a.at > resumed_at + to_200]
    cut_by_watchdog = len(_CUT_BY_WATCHDOG.findall(log))
    checks = [
        check(
            # Without them the bound below would hold vacuously (an access log turned off).
            "the server's log has access lines to judge by",
            access_lines > 0,
            "> 0 (gunicorn's, granian's or the app's own)",
            access_lines,
        ),
        check(
            # The configured promise for a stalled database is the stall guard's
            # (flaskprod.runtime.stall), far under gunicorn's timeout: a call unanswered
            # for DATABASE_STALL_SECONDS is probed for DATABASE_PROBE_TIMEOUT, then cut.
            # + 0.5 s: the answer's way out of a loaded worker on a shared 2-core machine.
            "no worker holds a request beyond the stall guard's bound",
            in_app <= STALL_BOUND + 0.5,
            f"<= {DATABASE_STALL_SECONDS:g} + {DATABASE_PROBE_TIMEOUT:g} s (stall + probe) "
            "+ 0.5 s, from the access and watchdog lines",
            round(in_app, 3),
        ),
        check(
            "no request needed the request watchdog or the server's timeout",
            cut_by_watchdog == 0 and timeouts == 0,
            "0 watchdog exits, 0 workers ended (WORKER TIMEOUT / Unexpected exit)",
            f"{cut_by_watchdog} watchdog exits, {timeouts} workers ended",
        ),
        check(
            "no response shows a traceback", not summary["tracebacks"], "0", summary["tracebacks"]
        ),
        check(
            "requests the stall failed answer 503 (never 500)",
            set(statuses) <= {"503"},
            "503 only",
            statuses,
        ),
        check(
            "no client waits until nginx gives up (504)",
            "504" not in statuses,
            "no 504",
            statuses,
        ),
        check(
            "readiness reports the stall (503) within its 2 s deadline + 0.5 s",
            to_503 is not None and to_503 <= 2.5,
            "<= 2.5 s",
            to_503,
        ),
        check("readiness back to 200 after SIGCONT", to_200 is not None, "200", to_200),
        check(
            "requests succeed again after recovery",
            bool(after) and all(a.ok for a in after if a.kind == "get"),
            "all GETs 200",
            len(after),
        ),
        *_order_checks(stack, load.record),
    ]
    return _finish(
        number,
        f"{label} stalled (SIGSTOP)",
        f"{label} SIGSTOPped for {size.stall:g} s, then SIGCONT",
        load,
        stack,
        checks,
        to_200 if to_200 is not None else -1.0,
        {
            "readiness_503_after_s": to_503,
            "first_readiness_answer": first_probe
            and {"status": first_probe.status, "latency": first_probe.latency},
            "readiness_200_after_resume_s": to_200,
            "longest_request_client_s": round(longest, 3),
            "longest_request_in_app_s": round(in_app, 3),
            "access_lines_in_log": access_lines,
            "worker_timeouts_in_log": timeouts,
            "requests_cut_by_watchdog": cut_by_watchdog,
            "server_timeout_s": worker_timeout,
            "readiness": ready.statuses(),
            "first_attempt_failures": statuses,
        },
    )


# -- 8. the background worker killed mid-job ----------------------------------------------

#: The shop's queue ([processes.worker] = rq worker shop-jobs) and the stand-in job: a
#: fixed 0.4 s of work (time.sleep), so that a kill lands in the middle of one.
JOB_QUEUE = "shop-jobs"
JOB_SECONDS = 0.4
#: Seconds a job may run (RQ's job_timeout): the abandoned job of a killed work horse is
#: seen as such after min(timeout, 30) + 60 s (RQ's heartbeat TTL).
JOB_TIMEOUT = 10


def _queue(stack: FaultStack) -> Any:
    import redis
    import rq

    return rq.Queue(JOB_QUEUE, connection=redis.Redis.from_url(stack.env["REDIS_URL"]))


def _job_worker(stack: FaultStack) -> int:
    """The worker's main process (the keeper's child), once there is one."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        children = process_children(stack.pid("process-worker"))
        if children:
            return children[0]
        time.sleep(0.05)
    raise RuntimeError("the worker's keeper runs no worker")


def _status(job: Any) -> str:
    """A job's status as RQ names it ("queued", "started", "finished", "failed")."""
    status = job.get_status(refresh=True)
    return str(getattr(status, "value", status))


def _wait_started(queue: Any, jobs: list[Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in jobs:
            if _status(job) == "started":
                return job
        time.sleep(0.02)
    return None


def _statuses(jobs: list[Any]) -> Counter[str]:
    return Counter(_status(job) for job in jobs)


def background_worker_killed(stack: FaultStack, size: Size) -> dict[str, Any]:
    """SIGKILL to the RQ worker's main process while its work horse runs a job: the
    keeper (systemd's Restart=always under up) starts a new worker, the horse finishes
    its job, the queued jobs are run. Full size also kills main and horse together: the
    job is abandoned, and the new worker's registry cleanup (its maintenance, every 15 s)
    retries it, or reports it failed; never silently lost."""
    from rq import Retry

    queue = _queue(stack)
    count = 10 if size is TEST else 30
    load = Load(stack, _plan(size, size.before + size.after + 240), _prefix(8)).start()
    _run_for(load, size.before)
    jobs = [
        queue.enqueue("time.sleep", JOB_SECONDS, job_timeout=JOB_TIMEOUT, retry=Retry(max=2))
        for _ in range(count)
    ]
    started = _wait_started(queue, jobs)
    main = _job_worker(stack)
    load.mark("kill")  # the event in the load record
    os.kill(main, signal.SIGKILL)
    killed = time.monotonic()
    connection = queue.connection
    before = {name for name in connection.smembers("rq:workers")}
    new_worker = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and new_worker is None:
        fresh = {name for name in connection.smembers("rq:workers")} - before
        new_worker = round(time.monotonic() - killed, 3) if fresh else None
        time.sleep(0.05)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and set(_statuses(jobs)) - {"finished"}:
        time.sleep(0.1)
    all_done = round(time.monotonic() - killed, 3)
    statuses = _statuses(jobs)
    abandoned: dict[str, Any] = {}
    if size is not TEST:
        abandoned = _kill_horse_too(stack, queue, Retry)
    _run_for(load, size.after)
    load.stop()
    summary = summarize(load.record)
    lost = sum(n for status, n in statuses.items() if status not in {"finished", "failed"})
    checks = [
        check(
            "the keeper started a new worker, registered in Redis",
            new_worker is not None and new_worker <= 10,
            "within 10 s",
            f"{new_worker} s",
        ),
        check(
            "the job in progress and every queued job finished",
            statuses == Counter({"finished": count}),
            f"{count} finished",
            dict(statuses),
        ),
        check("no job lost", lost == 0, "0", lost),
        check("no GET failed", not summary["failed_gets"], "0 failed", summary["failed_gets"]),
    ]
    if abandoned:
        checks.append(
            check(
                "a job whose work horse was killed too is retried or reported failed",
                abandoned["status"] in {"finished", "failed"},
                "finished (retried) or failed (reported)",
                f"{abandoned['status']} after {abandoned['seconds']} s",
            )
        )
    return _finish(
        8,
        "the background worker killed mid-job (RQ, under its keeper)",
        f"SIGKILL to the RQ worker {main} while it ran job {started.id if started else '?'}",
        load,
        stack,
        checks,
        new_worker if new_worker is not None else -1.0,
        {
            "jobs": count,
            "job_seconds": JOB_SECONDS,
            "new_worker_registered_after_s": new_worker,
            "all_jobs_finished_after_s": all_done,
            "job_statuses": dict(statuses),
            "main_and_horse_killed": abandoned or "not run at this size",
        },
    )


def _kill_horse_too(stack: FaultStack, queue: Any, retry: Any) -> dict[str, Any]:
    """Main and work horse killed at once (an OOM kill of the whole unit): the job stays
    in RQ's started registry until its heartbeat expires; then the registry's cleanup
    requeues it (a retry left) and a worker finishes it."""
    job = queue.enqueue("time.sleep", 3.0, job_timeout=JOB_TIMEOUT, retry=retry(max=2))
    if _wait_started(queue, [job]) is None:
        return {"status": "never started", "seconds": None}
    main = _job_worker(stack)
    horses = process_children(main)
    killed_at = time.monotonic()
    for pid in [main, *horses]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = killed_at + 150
    status = _status(job)
    # Nothing here runs RQ's registry cleanup (`rq info` would): the new worker's own
    # maintenance must find the job (every 15 s: the RQ settings the kit gives an
    # `rq worker`, RQ_WORKER_SETTINGS in flaskprod.spec.processes).
    while time.monotonic() < deadline and status not in {"finished", "failed"}:
        time.sleep(1.0)
        status = _status(job)
    return {
        "status": status,
        "seconds": round(time.monotonic() - killed_at, 1),
        "horses_killed": horses,
    }


SCENARIOS: dict[int, Callable[[FaultStack, Size], dict[str, Any]]] = {
    1: reload_under_load,
    2: worker_killed,
    3: master_killed,
    4: postgres_restarted,
    5: redis_stopped,
    6: slow_clients,
    7: postgres_stalled,
    8: background_worker_killed,
    # on a stack run with --database mariadb only
    9: mariadb_restarted,
    10: mariadb_stalled,
}

#: The scenarios of a MariaDB stack (``--database mariadb``), and those of PostgreSQL's.
MARIADB_ONLY = (9, 10)
POSTGRES_ONLY = (4, 7)
