"""Time ``flaskprod init`` on examples/shop, as a user runs it (the console script).

Each run gets a fresh temporary copy of the shop without its spec and kit, so every run
does the whole job: detect (parse + import the app in a child process), write the spec,
render and write the 22 files. Copying is not timed. Prints the median of N runs, with
and without importing the app.

    .venv/bin/python bench/init_bench.py [--runs 9]
"""

from __future__ import annotations

import argparse
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


def time_init(extra: list[str], runs: int) -> list[float]:
    script = Path(sys.executable).parent / "flaskprod"
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="flaskprod-init-bench-") as folder:
            project = fresh_copy(Path(folder))
            start = time.perf_counter()
            done = subprocess.run(
                [str(script), "init", str(project), "--name", "shop", *extra],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(f"flaskprod init failed: {done.stderr.strip()}")
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    for label, extra in (("init (imports the app)", []), ("init --no-import", ["--no-import"])):
        times = time_init(extra, args.runs)
        print(
            f"{label:<24} median {statistics.median(times) * 1000:6.0f} ms  "
            f"min {min(times) * 1000:6.0f} ms  max {max(times) * 1000:6.0f} ms  "
            f"({args.runs} runs)"
        )


if __name__ == "__main__":
    main()
