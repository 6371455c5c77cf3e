"""Where a request's CPU goes: each stack's processes by component, under the same load.

    .venv/bin/python -m bench.perf.breakdown                      # DB read and order
    .venv/bin/python -m bench.perf.breakdown --workloads product --rounds 5 --seconds 4
    .venv/bin/python -m bench.perf.breakdown --ref 1f6912c     # and the shop of a commit

The usual configuration and flaskprod's stack (as bench.perf builds them, on one
PostgreSQL and Redis) run side by side; each round measures every stack in turn with
wrk (64 connections, as the benchmark's maximum), so a busy machine slows them alike.
Printed per workload: CPU microseconds per request of each component, the median of
the rounds. Loopback only, bounded by wrk's -d: about 20 s + rounds x stacks x
workloads x seconds.

Components, from each process's command line at the start and end of a round:
``gunicorn workers`` (live at both readings), ``gunicorn master`` (with every worker
that exited during the round: a reaped child's CPU is its parent's), the same two for
granian (flaskprod's default app server), ``nginx``,
``postgres backends`` (the shop's sessions), ``postgres other`` (the postmaster with
exited backends, the checkpointer, WAL writer, autovacuum: shared by whatever runs),
``redis``. ``workers recycled`` counts the worker pids that changed (max_requests).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench.perf.procstat import TICKS, cpu_ticks, tree
from bench.perf.stacks import (
    REPO,
    TOKEN,
    Running,
    Shared,
    copy_shop,
    flaskprod_stack,
    product_ids,
    shared_services,
    usual_stack,
)
from bench.perf.workloads import Target
from bench.perf.wrk import run_wrk

COMPONENTS = (
    "gunicorn workers",
    "gunicorn master",
    "granian workers",
    "granian master",
    "nginx",
    "postgres backends",
    "postgres other",
    "redis",
)


def component(service: str, pid: int, root: int) -> str:
    """The component of ``pid``, a process of ``service`` (the root's tree)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        command = ""
    if service == "postgres":
        # A backend's title: "postgres: <user> <database> <client> <state>".
        is_backend = pid != root and command.startswith("postgres: shop ")
        return "postgres backends" if is_backend else "postgres other"
    if service in ("gunicorn", "granian"):  # flaskprod's stack runs granian by default
        return f"{service} master" if pid == root else f"{service} workers"
    return service


Snapshot = dict[int, tuple[str, int]]  # pid -> (component, CPU ticks so far)


def snapshot(stack: Running) -> Snapshot:
    found: Snapshot = {}
    for service, root in stack.pids.items():
        for pid in tree([root]):
            found[pid] = (component(service, pid, root), cpu_ticks(pid))
    return found


#: Where the CPU of a process that exits goes: its parent's reaped-children time.
_REAPED_INTO = {
    "gunicorn workers": "gunicorn master",
    "granian workers": "granian master",
    "postgres backends": "postgres other",
}


def attribute(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per component between two snapshots. A process new in ``after``
    counts from 0. One gone by ``after`` reappears, its whole life, in its parent's
    reaped-children time: what it had used at ``before`` is taken off there."""
    ticks = dict.fromkeys(COMPONENTS, 0)
    for pid, (name, now) in after.items():
        ticks[name] = ticks.get(name, 0) + now - (before[pid][1] if pid in before else 0)
    for pid, (name, then) in before.items():
        if pid not in after:
            into = _REAPED_INTO.get(name, name)
            ticks[into] = ticks.get(into, 0) - then
    return {name: value / TICKS for name, value in ticks.items()}


@dataclass(frozen=True)
class Round:
    requests: int
    rps: float
    errors: int
    recycled: int
    us_per_request: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.us_per_request.values())


def measure(stack: Running, workload: str, target: Target, seconds: float) -> Round:
    before = snapshot(stack)
    result = run_wrk(stack.url, workload, target, seconds=seconds, connections=64)
    after = snapshot(stack)
    requests = max(1, result.requests)
    workers = {pid for pid, (name, _) in before.items() if name.endswith(" workers")}
    still = {pid for pid, (name, _) in after.items() if name.endswith(" workers")}
    return Round(
        requests=result.requests,
        rps=result.rps,
        errors=result.errors,
        recycled=len(workers - still),
        us_per_request={
            name: cpu / requests * 1e6 for name, cpu in attribute(before, after).items()
        },
    )


def table(workload: str, rounds: dict[str, list[Round]]) -> Iterator[str]:
    names = list(rounds)
    width = max(12, *(len(name) + 2 for name in names))
    yield f"{workload}: CPU us per request (median of {len(rounds[names[0]])} rounds)"
    yield f"  {'component':<20}" + "".join(f"{name:>{width}}" for name in names)

    def row(label: str, values: list[float]) -> str:
        return f"  {label:<20}" + "".join(f"{value:>{width}.0f}" for value in values)

    for name in COMPONENTS:
        yield row(
            name,
            [statistics.median(r.us_per_request[name] for r in rounds[n]) for n in names],
        )
    yield row("TOTAL", [statistics.median(r.total for r in rounds[n]) for n in names])
    yield row("req/s", [statistics.median(r.rps for r in rounds[n]) for n in names])
    yield row("errors", [sum(r.errors for r in rounds[n]) for n in names])
    yield row("workers recycled", [sum(r.recycled for r in rounds[n]) for n in names])


def shop_at(rev: str, into: Path) -> Path:
    """examples/shop as committed at ``rev`` (git archive), unpacked under ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "shop.tar"
    with archive.open("wb") as out:
        result = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "examples/shop"],
            stdout=out,
            stderr=subprocess.PIPE,
            check=False,
        )
    if result.returncode != 0:
        raise SystemExit(f"--ref {rev}: {result.stderr.decode().strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "examples" / "shop"


def _usual_of(shared: Shared, source: Path, running: ExitStack) -> Running:
    """The usual configuration serving the shop tree ``source`` (its own folder)."""
    base = Path(tempfile.mkdtemp(prefix="usual-ref-", dir=shared.base))
    base.chmod(0o755)
    mine = dataclasses.replace(shared, base=base, project=copy_shop(base, source=source))
    return running.enter_context(usual_stack(mine))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--workloads", default="product,order")
    parser.add_argument("--seconds", type=float, default=4.0, help="each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref", help="also the shop of this git commit (usual@REV, ...)")
    options = parser.parse_args(argv)
    workloads = options.workloads.split(",")
    with shared_services() as shared, ExitStack() as running:
        stacks = {
            "usual": running.enter_context(usual_stack(shared)),
            "flaskprod": running.enter_context(flaskprod_stack(shared)),
        }
        if options.ref:
            source = shop_at(options.ref, Path(tempfile.mkdtemp(dir=shared.base)))
            stacks[f"usual@{options.ref}"] = _usual_of(shared, source, running)
            stacks[f"flaskprod@{options.ref}"] = running.enter_context(
                flaskprod_stack(shared, name="flaskprod-ref", source=source)
            )
        target = Target("localhost", product_ids(stacks["flaskprod"]), TOKEN)
        for workload in workloads:
            for stack in stacks.values():  # warm-up: pools filled, statements prepared
                run_wrk(stack.url, workload, target, seconds=1, connections=64)
            rounds: dict[str, list[Round]] = {name: [] for name in stacks}
            for _ in range(options.rounds):
                for name, stack in stacks.items():
                    rounds[name].append(measure(stack, workload, target, options.seconds))
            for line in table(workload, rounds):
                print(line, flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
