"""Time ``flaskprod init`` on examples/shop, as a user runs it (the console script).

Each run gets a fresh temporary copy of the shop without its spec and kit, so every run
does the whole job: detect (parse + import the app in a child process), write the spec,
render and write the 22 files. Copying is not timed. Prints the median of N runs, with
and without importing the app, wall clock and CPU time.

    .venv/bin/python bench/init_bench.py [--runs 9]
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
GENERATED = {"flaskprod.toml", "deploy", ".dockerignore", ".github", "instance", "__pycache__"}


def fresh_copy(into: Path) -> Path:
    target = into / "shop"
    shutil.copytree(SHOP, target, ignore=lambda _dir, names: [n for n in names if n in GENERATED])
    return target


def time_init(extra: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock seconds, and CPU seconds of the whole process tree (the command and the
    app's import in its child): the CPU figure is far less sensitive to a busy machine."""
    script = Path(sys.executable).parent / "flaskprod"
    times, cpu = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="flaskprod-init-bench-") as folder:
            project = fresh_copy(Path(folder))
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                [str(script), "init", str(project), "--name", "shop", *extra],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                raise SystemExit(f"flaskprod init failed: {done.stderr.strip()}")
            times.append(elapsed)
    return times, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    for label, extra in (("init (imports the app)", []), ("init --no-import", ["--no-import"])):
        times, cpu = time_init(extra, args.runs)
        print(
            f"{label:<24} wall median {statistics.median(times) * 1000:6.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})  "
            f"cpu median {statistics.median(cpu) * 1000:6.0f} ms  ({args.runs} runs, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )


if __name__ == "__main__":
    main()
