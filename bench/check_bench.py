"""Time ``flaskprod check`` on examples/shop with its rendered kit.

Two figures, medians of N runs each:
- in-process: ``run_checks`` alone (discover, parse every file, run every rule,
  silence), the work a file-level check does once Python and flaskprod are loaded;
- console script: ``flaskprod check examples/shop`` as a user runs it (process start,
  imports, the report), with ``--no-import`` (files only) and without (the app is also
  imported in a subprocess under production's environment).

    .venv/bin/python bench/check_bench.py [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"


def in_process(runs: int, no_import: bool) -> list[float]:
    from flaskprod.check.runner import CheckOptions, load_rules, run_checks

    load_rules()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_checks(CheckOptions(root=SHOP, no_import=no_import))
        times.append(time.perf_counter() - start)
    return times


def console(runs: int, extra: list[str]) -> list[float]:
    script = Path(sys.executable).parent / "flaskprod"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [str(script), "check", str(SHOP), "--format", "json", *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(f"flaskprod check failed ({done.returncode}): {done.stderr}")
    return times


def report(label: str, times: list[float]) -> None:
    print(
        f"{label:44} median {statistics.median(times) * 1000:7.1f} ms"
        f"  (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, n={len(times)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    report("run_checks, file level (--no-import)", in_process(runs, no_import=True))
    report("run_checks, with the app imported", in_process(max(3, runs // 3), no_import=False))
    report("flaskprod check --no-import (console)", console(runs, ["--no-import"]))
    report("flaskprod check (console, app imported)", console(max(3, runs // 3), []))


if __name__ == "__main__":
    main()
