"""How long `flaskprod up` takes, how long a reload takes, and what the stack weighs.

    .venv/bin/python bench/up_bench.py [--runs 3] [--project examples/shop]

On a copy of the project (in a temp folder, free ports, its own state folder), each
``--runs`` times, with the median and the range:
- ``up -d`` to ready, new cluster: an empty state folder (CA, initdb, migrations...);
- ``up -d`` to ready, existing cluster: after ``down``, data kept;
- ``reload`` (the new app server ready on the other slot, nginx switched, the old one gone);
- ``down``;
and once, with the stack at rest after a few requests: the memory of every process of
the stack, summed per service (masters, workers, backends), as RSS and as PSS (RSS
counts the pages a preloaded app shares with its workers once per process).
Times are wall-clock of the CLI as a user runs it, python start-up included.
"""

from __future__ import annotations

import argparse
import json
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from flaskprod.stack.ports import free_ports
from flaskprod.stack.state import StateDir, children_of, process_rss

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> float:
    started = time.perf_counter()
    result = subprocess.run([FLASKPROD, *args], capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"flaskprod {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return took


def tree_rss(pid: int) -> int:
    return process_rss(pid) + sum(tree_rss(child) for child in children_of(pid))


def pss(pid: int) -> int:
    """Proportional set size: shared pages (preloaded app, nginx workers) counted once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(pid: int) -> int:
    return pss(pid) + sum(tree_pss(child) for child in children_of(pid))


def copy_project(source: Path) -> Path:
    base = Path(tempfile.mkdtemp(prefix="flaskprod-bench-up-"))
    base.chmod(0o755)
    project = base / source.name
    shutil.copytree(
        source,
        project,
        ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__", "*.pyc"),
    )
    return project


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.2f}s  "
        f"(min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--project", type=Path, default=REPO / "examples" / "shop")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    options = parser.parse_args()

    results: dict[str, list[float]] = {
        "up -d to ready, new cluster": [],
        "up -d to ready, existing cluster": [],
        "reload": [],
        "down": [],
    }
    memory: dict[str, tuple[float, float]] = {}
    for number in range(options.runs):
        project = copy_project(options.project)
        https, http = free_ports(2)
        ports = ["--https-port", str(https), "--http-port", str(http)]
        try:
            results["up -d to ready, new cluster"].append(run("up", str(project), "-d", *ports))
            results["down"].append(run("down", str(project)))
            results["up -d to ready, existing cluster"].append(
                run("up", str(project), "-d", *ports)
            )
            ca = ssl.create_default_context(cafile=str(project / ".flaskprod/tls/ca.pem"))
            with httpx.Client(verify=ca) as client:
                for _ in range(20):
                    client.get(f"https://localhost:{ports[1]}/").raise_for_status()
            results["reload"].append(run("reload", str(project)))
            if number == 0:
                time.sleep(2)  # at rest
                state = StateDir(project / ".flaskprod").read()
                assert state is not None
                for record in state.services:
                    memory[record.name] = (
                        tree_rss(record.pid) / 2**20,
                        tree_pss(record.pid) / 2**20,
                    )
            results["down"].append(run("down", str(project)))
        finally:
            subprocess.run([FLASKPROD, "down", str(project)], capture_output=True, check=False)
            shutil.rmtree(project.parent, ignore_errors=True)

    print(f"flaskprod up on {options.project.name} ({options.runs} runs)")
    for name, values in results.items():
        print(f"  {name:<34} {summary(values)}")
    print("memory at rest (process trees; PSS counts shared pages once):")
    for name, (rss, proportional) in memory.items():
        print(f"  {name:<10} RSS {rss:7.1f} MiB   PSS {proportional:7.1f} MiB")
    total_rss = sum(r for r, _ in memory.values())
    total_pss = sum(p for _, p in memory.values())
    print(f"  {'total':<10} RSS {total_rss:7.1f} MiB   PSS {total_pss:7.1f} MiB")
    if options.json:
        options.json.write_text(
            json.dumps({"seconds": results, "rss_mib": memory}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
