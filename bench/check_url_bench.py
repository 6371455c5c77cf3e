"""Time ``flaskprod check --url`` against the local stack (target: within 2 s).

Starts ``flaskprod up -d`` on a copy of examples/shop (free loopback ports), then, N
times each, medians of:
- in-process: ``run_checks`` with the live layer only (every probe, concurrently,
  under the default 10 s total timeout; the Observatory score), trusting the local CA;
- console script: ``flaskprod check SHOP --url URL --ca CA --format json`` as a user
  runs it (process start, imports, the report), wall time and CPU time (the wall time
  on a shared, loaded machine is mostly waiting for a core; the load is printed).
Then ``flaskprod down`` and every recorded pid is checked gone.

    .venv/bin/python bench/check_url_bench.py [--runs 9] [--crawl 0]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
FLASKPROD = str(Path(sys.executable).parent / "flaskprod")


def _flaskprod(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASKPROD, *args], capture_output=True, text=True, timeout=180, check=False
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--crawl", type=int, default=0)
    args = parser.parse_args()

    from flaskprod.check.runner import CheckOptions, load_rules, run_checks
    from flaskprod.stack.ports import free_ports
    from flaskprod.stack.state import StateDir

    base = Path(tempfile.mkdtemp(prefix="flaskprod-url-bench-"))
    base.chmod(0o755)
    project = base / "shop"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns(".flaskprod", "__pycache__"))
    https, http = free_ports(2)
    dirs = StateDir(project / ".flaskprod")
    up = _flaskprod("up", str(project), "-d", "--https-port", str(https),
                    "--http-port", str(http), "--timeout", "90")  # fmt: skip
    try:
        if up.returncode != 0:
            print(f"flaskprod up failed:\n{up.stdout}\n{up.stderr}", file=sys.stderr)
            return 2
        url, ca = f"https://localhost:{https}", str(dirs.tls / "ca.pem")
        load_rules()
        inproc = []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = run_checks(
                CheckOptions(
                    root=project,
                    no_import=True,
                    layers=("live",),
                    options={"url": url, "ca": ca, "crawl": args.crawl},
                )
            )
            inproc.append(time.perf_counter() - started)
        findings = [f"{f.id} {f.level}" for f in result.findings]
        console, cpu = [], []
        for _ in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = _flaskprod("check", str(project), "--url", url, "--ca", ca,
                              "--crawl", str(args.crawl), "--format", "json")  # fmt: skip
            console.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if done.returncode not in (0, 1):
                print(done.stderr, file=sys.stderr)
                return 2
        print(f"check --url against the local stack ({args.runs} runs, crawl {args.crawl}):")
        print(
            f"  in-process run_checks (live layer): median {statistics.median(inproc):.3f} s"
            f"  (min {min(inproc):.3f}, max {max(inproc):.3f})"
        )
        print(
            f"  console script flaskprod check --url: median {statistics.median(console):.3f} s"
            f"  (min {min(console):.3f}, max {max(console):.3f})"
        )
        print(f"  console script CPU time (user+sys): median {statistics.median(cpu):.3f} s")
        print(f"  load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"  findings of the last run: {findings or 'none'}")
        return 0
    finally:
        recorded = dirs.read()
        _flaskprod("down", str(project))
        left = [r.name for r in (recorded.services if recorded else []) if r.alive()]
        for record in recorded.services if recorded else []:
            if record.alive():
                record.stop(10)
        shutil.rmtree(base, ignore_errors=True)
        if left:
            print(f"flaskprod down left {left} running (stopped by pid)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
