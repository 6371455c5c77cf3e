"""Time ``flaskprod check`` on examples/shop with its rendered kit.

Figures, medians of N runs each:
- in-process: ``run_checks`` alone (discover, parse every file, run every rule,
  silence), the work a file-level check does once Python and flaskprod are loaded;
- console script: ``flaskprod check examples/shop`` as a user runs it (process start,
  imports, the report), with ``--no-import`` (files only) and without (the app is also
  imported in a subprocess under production's environment);
- before/after, in one run: the console script of a BASE revision (its ``src/`` from
  ``git archive``, first on PYTHONPATH) and of this checkout, interleaved run by run so
  both see the same load; each once cold (the state folder's check cache removed before
  the run) and once warm (the cache of the run before), and this checkout once more
  cold with an empty XDG_CACHE_HOME (no compiled templates: the first check after an
  install). Wall time and CPU time (the process and its children: the app's import) are
  both reported: on a shared machine the CPU time is the steadier of the two, and the
  cold wall time is bounded below by the app's import (its own process, started once
  its inputs are read).

    .venv/bin/python bench/check_bench.py [--runs 9] [--base main] [--only-compare]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop"
CACHE = SHOP / ".flaskprod" / "check-cache"


def in_process(runs: int, no_import: bool) -> list[float]:
    from flaskprod.check.runner import CheckOptions, load_rules, run_checks

    load_rules()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_checks(CheckOptions(root=SHOP, no_import=no_import))
        times.append(time.perf_counter() - start)
    return times


def timed_check(extra: list[str], env: Mapping[str, str] | None = None) -> tuple[float, float]:
    """One ``flaskprod check`` of the shop: (wall seconds, CPU seconds incl. children)."""
    script = Path(sys.executable).parent / "flaskprod"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [str(script), "check", str(SHOP), "--format", "json", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_with_bytecode(os.environ if env is None else env),
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:  # exit status 1 is also a crash's: the report must be there
        json.loads(done.stdout)
        reported = done.returncode in (0, 1)
    except ValueError:
        reported = False
    if not reported:
        raise SystemExit(f"flaskprod check failed ({done.returncode}): {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _with_bytecode(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with Python writing and reading .pyc files, as an installed flaskprod
    does (a shell with PYTHONDONTWRITEBYTECODE would time the compiler instead)."""
    return {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}


def console(runs: int, extra: list[str]) -> list[float]:
    return [timed_check(extra)[0] for _ in range(runs)]


def report(label: str, times: list[float]) -> None:
    print(
        f"{label:44} median {statistics.median(times) * 1000:7.1f} ms"
        f"  (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, n={len(times)})"
    )


def base_source(base: str, into: Path) -> Path:
    """``src/`` of git revision ``base``, unpacked under ``into`` (with ``docs/``: the
    package's checks.md is a link to docs/checks.md, which flaskprod's digest reads)."""
    archive = into / "base.tar"
    with archive.open("wb") as out:
        command = ["git", "-C", str(REPO), "archive", base, "src", "docs"]
        subprocess.run(command, stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def compare(runs: int, base: str) -> None:
    """Base revision vs this checkout, each cold (its check cache removed before the
    run) and warm (the cache of the run before), interleaved run by run so that all
    see the same load. "cold, first run" also starts without flaskprod's compiled
    templates (an empty XDG_CACHE_HOME), as the very first check after installing."""
    variants = ("base cold", "base warm", "cold", "warm", "cold, first run")
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="check-bench-") as tmp:
        source = base_source(base, Path(tmp))
        base_env = {**os.environ, "PYTHONPATH": str(source)}
        timed_check([], base_env)  # each variant once before timing: .pyc files, caches
        timed_check([])
        for run in range(runs):
            shutil.rmtree(CACHE, ignore_errors=True)
            samples["base cold"].append(timed_check([], base_env))
            samples["base warm"].append(timed_check([], base_env))
            shutil.rmtree(CACHE, ignore_errors=True)
            samples["cold"].append(timed_check([]))
            samples["warm"].append(timed_check([]))
            shutil.rmtree(CACHE, ignore_errors=True)
            empty = Path(tmp, f"xdg-cache-{run}")
            samples["cold, first run"].append(
                timed_check([], {**os.environ, "XDG_CACHE_HOME": str(empty)})
            )
    medians = {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in samples.items()
    }
    labels = {
        "base cold": f"flaskprod check, {base}, cold cache",
        "base warm": f"flaskprod check, {base}, warm cache",
        "cold": "flaskprod check, this checkout, cold cache",
        "warm": "flaskprod check, this checkout, warm cache",
        "cold, first run": "  the same, no compiled templates either",
    }
    for name, (wall, cpu) in medians.items():
        print(f"{labels[name]:44} median wall {wall * 1000:7.1f} ms, CPU {cpu * 1000:7.1f} ms")
    for name in ("cold", "warm"):
        base_wall, base_cpu = medians[f"base {name}"]
        wall, cpu = medians[name]
        print(
            f"ratio {base} / this checkout, {name:4}: wall {base_wall / wall:.2f}x, "
            f"CPU {base_cpu / cpu:.2f}x  (n={runs}, load average {os.getloadavg()[0]:.1f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--base", default="main", help="git revision to compare with")
    parser.add_argument("--only-compare", action="store_true", help="only before/after")
    args = parser.parse_args()
    runs = args.runs
    if not args.only_compare:
        report("run_checks, file level (--no-import)", in_process(runs, no_import=True))
        report("run_checks, with the app imported", in_process(max(3, runs // 3), False))
        report("flaskprod check --no-import (console)", console(runs, ["--no-import"]))
        report("flaskprod check (console, app imported)", console(max(3, runs // 3), []))
    compare(runs, args.base)


if __name__ == "__main__":
    main()
