"""Closed-loop maximum throughput with wrk: as many requests as the connections allow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.perf.workloads import Target, lua


class MissingTool(RuntimeError):
    pass


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise MissingTool("wrk is not installed (Debian: apt-get install wrk)")
    return found


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int  # socket errors (connect, read, write, timeout) + statuses >= 400
    status_errors: int
    socket_errors: int
    client_cpu_seconds: float  # wrk's own CPU (user + system)


def run_wrk(
    url: str,
    workload: str,
    target: Target,
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
) -> WrkResult:
    """One wrk run against ``url`` (scheme://host:port, no path)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as script:
        script.write(lua(workload, target))
    try:
        popen = subprocess.Popen(
            [
                find_wrk(),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "5s",
                "-s",
                script.name,
                url + "/",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert popen.stdout is not None
        output = popen.stdout.read()
        _, status, usage = os.wait4(popen.pid, 0)
        popen.returncode = os.waitstatus_to_exitcode(status)
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKJSON ")), None)
    if popen.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (status {popen.returncode}):\n{output[-2000:]}")
    data = json.loads(line[len("WRKJSON ") :])
    seconds_run = data["duration_us"] / 1e6
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return WrkResult(
        requests=data["requests"],
        seconds=seconds_run,
        rps=data["requests"] / seconds_run if seconds_run else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        p999_ms=data["p999_us"] / 1000,
        errors=socket_errors + data["status"],
        status_errors=data["status"],
        socket_errors=socket_errors,
        client_cpu_seconds=usage.ru_utime + usage.ru_stime,
    )
