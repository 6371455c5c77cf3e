"""One cell of the table: a stack under one workload, closed-loop max then fixed rate."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from bench.perf import procstat
from bench.perf.openloop import client_tls, run_open_loop
from bench.perf.stacks import Running
from bench.perf.workloads import Target, factory
from bench.perf.wrk import run_wrk
from flaskprod.stack.state import children_of, process_rss

MIB = 2**20


@dataclass(frozen=True)
class Settings:
    seconds: float = 5.0  # each closed-loop run
    repeats: int = 3  # closed-loop runs; medians reported
    warmup: float = 1.0
    latency_seconds: float = 5.0  # the fixed-rate run
    connections: int = 64
    rate_fraction: float = 0.5  # fixed rate = this x the usual configuration's max
    rate_cap: float = 800.0  # what the Python open-loop client sustains on 2 shared cores


def _workers(master: int | None) -> list[int]:
    return children_of(master) if master is not None else []


def closed_loop(
    stack: Running, workload: str, target: Target, settings: Settings
) -> dict[str, Any]:
    if settings.warmup > 0:
        run_wrk(
            stack.url, workload, target, seconds=settings.warmup, connections=settings.connections
        )
    runs: list[dict[str, float]] = []
    roots = list(stack.pids.values())
    for _ in range(settings.repeats):
        before = procstat.read(roots)
        started = time.monotonic()
        result = run_wrk(
            stack.url, workload, target, seconds=settings.seconds, connections=settings.connections
        )
        wall = time.monotonic() - started
        after = procstat.read(roots)
        workers = _workers(stack.workers_of)
        rss = [process_rss(pid) / MIB for pid in workers]
        pss = [procstat.pss(pid) / MIB for pid in workers]
        stack_cpu = max(0.0, after.cpu_seconds - before.cpu_seconds)
        runs.append(
            {
                "rps": result.rps,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "p999_ms": result.p999_ms,
                "errors": result.errors,
                "status_errors": result.status_errors,
                "socket_errors": result.socket_errors,
                "requests": result.requests,
                "stack_cpu_cores": stack_cpu / wall,
                "stack_cpu_us_per_request": stack_cpu / max(1, result.requests) * 1e6,
                "client_cpu_cores": result.client_cpu_seconds / wall,
                "stack_rss_mib": after.rss_bytes / MIB,
                "worker_rss_mib_max": max(rss, default=0.0),
                "worker_pss_mib_max": max(pss, default=0.0),
                "workers": len(workers),
            }
        )
    summary: dict[str, Any] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    summary["errors"] = sum(run["errors"] for run in runs)
    summary["status_errors"] = sum(run["status_errors"] for run in runs)
    summary["socket_errors"] = sum(run["socket_errors"] for run in runs)
    summary["requests"] = sum(run["requests"] for run in runs)
    summary["rps_runs"] = [round(run["rps"], 1) for run in runs]
    return summary


def fixed_rate(
    stack: Running, workload: str, target: Target, rate: float, settings: Settings
) -> dict[str, Any]:
    roots = list(stack.pids.values())
    before = procstat.read(roots)
    started = time.monotonic()
    result = run_open_loop(
        "127.0.0.1",
        stack.port,
        factory(workload, target),
        rate=rate,
        seconds=settings.latency_seconds,
        server_name=stack.host,
        tls=client_tls() if stack.tls else None,
        connections=settings.connections,
    )
    wall = time.monotonic() - started
    after = procstat.read(roots)
    figures = asdict(result)
    figures["stack_cpu_cores"] = max(0.0, after.cpu_seconds - before.cpu_seconds) / wall
    figures["client_cpu_cores"] = result.client_cpu_seconds / wall
    figures["errors"] = result.status_errors + result.socket_errors
    return figures
