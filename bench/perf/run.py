"""The side-by-side benchmark (see docs/performance.md, which this renders).

    .venv/bin/python -m bench.perf            # full run, about 8 minutes
    .venv/bin/python -m bench.perf --quick    # a short run, under 2 minutes
    .venv/bin/python -m bench.perf --models   # worker models and granian, about 5 minutes

Loopback only; every run is bounded by wrk's -d and the open-loop client's count.
Writes bench/results/<UTC timestamp>.json and latest.json (--models:
models-<timestamp>.json and models-latest.json), then docs/performance.md and its
plots (docs/performance/*.png) from both latest files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bench.perf import procstat
from bench.perf.measure import Settings, closed_loop, fixed_rate
from bench.perf.stacks import (
    REPO,
    TOKEN,
    Running,
    Shared,
    flaskprod_stack,
    granian_stack,
    gunicorn_edits,
    limit_stack,
    load_spec,
    product_ids,
    shared_services,
    usual_stack,
)
from bench.perf.targets import evaluate
from bench.perf.workloads import MIX, Target
from flaskprod.errors import UserError
from flaskprod.spec.model import ServerSection

RESULTS = REPO / "bench" / "results"
APP_WORKLOADS = ("products", "product", "order", "static", "mix")
#: --models: gthread first, so that its maximum sets the fixed rate all of them share.
MODELS = ("gthread", "sync", "gevent")
MODEL_WORKLOADS = ("product", "mix")
MODELS_LATEST = "models-latest.json"
QUICK = Settings(seconds=2.0, repeats=1, warmup=0.0, latency_seconds=2.0)


_BEGAN = time.monotonic()


def _say(message: str) -> None:
    print(f"[{time.monotonic() - _BEGAN:5.0f}s] {message}", file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return {
        "python": platform.python_version(),
        "gunicorn": version("gunicorn"),
        "flask": version("flask"),
        "nginx": nginx.stderr.strip().rpartition("/")[2],
        "wrk": "4.1.0 (Debian)",
    }


StackFactory = Callable[[], AbstractContextManager[Running]]
#: (start it, its workloads, the fixed rates it shares, its name)
Planned = tuple[StackFactory, tuple[str, ...], dict[str, float], str]


def _measure_stack(
    make: StackFactory,
    workloads: tuple[str, ...],
    target: Target,
    settings: Settings,
    rates: dict[str, float],
    results: dict[str, Any],
) -> None:
    with make() as stack:
        ids = target.product_ids or (product_ids(stack) if "hello" not in workloads else ())
        target = Target(stack.host, ids or (1,), target.token)
        entry: dict[str, Any] = {"notes": stack.notes, "url": stack.url, "workloads": {}}
        results["stacks"][stack.name] = entry
        for workload in workloads:
            load = procstat.load_average()[0]
            _say(f"  {stack.name:<18} {workload:<9} max ...")
            best = closed_loop(stack, workload, target, settings)
            rate = rates.setdefault(
                workload, max(1.0, min(settings.rate_cap, settings.rate_fraction * best["rps"]))
            )
            _say(f"  {stack.name:<18} {workload:<9} {best['rps']:8.0f} req/s; at {rate:.0f}/s ...")
            latency = fixed_rate(stack, workload, target, rate, settings)
            latency["fraction_of_max"] = rate / best["rps"] if best["rps"] else None
            entry["workloads"][workload] = {
                "max": best,
                "fixed_rate": latency,
                "load_average": load,
            }


def _start(settings: Settings, command: str, mode: str) -> dict[str, Any]:
    return {
        "meta": {
            "mode": mode,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": command,
            "cores": os.cpu_count(),
            "load_average_start": procstat.load_average(),
            "settings": settings.__dict__,
            "versions": _versions(),
            "mix": [list(pair) for pair in MIX],
        },
        "stacks": {},
    }


def _finish(results: dict[str, Any]) -> None:
    meta = results["meta"]
    meta["load_average_end"] = procstat.load_average()
    started = datetime.datetime.fromisoformat(meta["started"])
    meta["seconds"] = round((datetime.datetime.now(datetime.UTC) - started).total_seconds())


def _run_plan(
    plan: list[Planned],
    target: Target,
    settings: Settings,
    results: dict[str, Any],
    required: int,
) -> None:
    """Each stack in turn; the first ``required`` must start, the others may fail."""
    for number, (make, workloads, rates, name) in enumerate(plan, 1):
        _say(f"stack {number}/{len(plan)}: {name}")
        try:
            _measure_stack(make, workloads, target, settings, rates, results)
        except (RuntimeError, UserError) as error:
            if number <= required:
                raise  # the stacks the targets need
            # A variant that does not start is a finding, not the end of the run.
            reason = str(error).strip().splitlines()
            why = next((line for line in reason if "error:" in line), reason[-1])
            _say(f"  {name}: did not start: {why}")
            results["stacks"][name] = {"notes": {"error": why}, "workloads": {}}


def run_models(settings: Settings, command: str) -> dict[str, Any]:
    """flaskprod's stack with each gunicorn worker model, then with granian, on the
    DB read and the mix: one run, one machine, the same fixed rate for all."""
    results = _start(settings, command, "models")
    with shared_services() as shared:
        target = Target("localhost", (), TOKEN)
        rates: dict[str, float] = {}
        plan: list[Planned] = []
        for kind in MODELS:

            def make(kind: str = kind) -> AbstractContextManager[Running]:
                return flaskprod_stack(
                    shared, name=f"gunicorn {kind}", spec_edits=gunicorn_edits(kind)
                )

            plan.append((make, MODEL_WORKLOADS, rates, f"gunicorn {kind}"))
        plan.append((lambda: granian_stack(shared), MODEL_WORKLOADS, rates, "granian"))
        _run_plan(plan, target, settings, results, required=0)
    _finish(results)
    return results


def run(settings: Settings, variants: bool, command: str) -> dict[str, Any]:
    results = _start(settings, command, "stacks")
    with shared_services() as shared:
        spec = load_spec(shared.project)
        workers = spec.server.effective_workers
        logs = shared.base / "logs"
        target = Target("localhost", (), TOKEN)
        hello_rates: dict[str, float] = {}
        app_rates: dict[str, float] = {}
        plan: list[Planned] = [
            (lambda: limit_stack(logs, workers), ("hello",), hello_rates, "limit"),
            (
                lambda: limit_stack(logs, workers, production=True),
                ("hello",),
                hello_rates,
                "limit+Production",
            ),
            (lambda: usual_stack(shared), APP_WORKLOADS, app_rates, "usual"),
            (lambda: flaskprod_stack(shared), APP_WORKLOADS, app_rates, "flaskprod"),
        ]
        if variants:
            plan += _variants(shared, spec.server, app_rates)
        _run_plan(plan, target, settings, results, required=4)
    _finish(results)
    results["targets"] = evaluate(results)
    return results


def _variants(shared: Shared, default: ServerSection, rates: dict[str, float]) -> list[Planned]:
    """flaskprod's stack with gunicorn (server.kind = "gunicorn") in each worker model
    that is not the default stack already, on the mix and the DB read."""
    plan: list[Planned] = []
    for worker_class in ("sync", "gthread", "gevent"):
        if default.kind == "gunicorn" and worker_class == default.worker_class:
            continue
        name = f"flaskprod/gunicorn-{worker_class}"

        def make(kind: str = worker_class, name: str = name) -> AbstractContextManager[Running]:
            return flaskprod_stack(shared, name=name, spec_edits=gunicorn_edits(kind))

        plan.append((make, ("product", "mix"), rates, name))
    return plan


def write(results: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = results["meta"]["started"].replace(":", "").replace("+0000", "Z")
    models = results["meta"].get("mode") == "models"
    path = results_dir / (f"models-{stamp}.json" if models else f"{stamp}.json")
    latest = results_dir / (MODELS_LATEST if models else "latest.json")
    text = json.dumps(results, indent=1) + "\n"
    for destination in (path, latest):
        temp = destination.with_suffix(".tmp")
        temp.write_text(text)
        os.replace(temp, destination)
    return path


def _render_docs(results_dir: Path, docs: Path) -> Path:
    """docs/performance.md from the latest full run and the latest --models run."""
    from bench.perf.report import render

    main = json.loads((results_dir / "latest.json").read_text())
    models_file = results_dir / MODELS_LATEST
    models = json.loads(models_file.read_text()) if models_file.is_file() else None
    return render(main, docs, models)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="flaskprod's side-by-side benchmark")
    parser.add_argument("--quick", action="store_true", help="short runs (under 2 minutes)")
    parser.add_argument("--seconds", type=float, help="each closed-loop run (default 6)")
    parser.add_argument("--repeats", type=int, help="closed-loop runs per cell (default 3)")
    parser.add_argument(
        "--no-variants", action="store_true", help="skip the gunicorn worker models"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument(
        "--docs", type=Path, default=REPO / "docs", help="where performance.md goes"
    )
    parser.add_argument("--no-docs", action="store_true", help="only write the JSON")
    parser.add_argument(
        "--render", type=Path, metavar="RESULTS_JSON", help="only re-render the docs from a run"
    )
    parser.add_argument(
        "--models",
        action="store_true",
        help="only flaskprod's stack per worker model (sync, gthread, gevent) and with "
        "granian, on the DB read and the mix (about 5 minutes)",
    )
    options = parser.parse_args(argv)
    if options.render:
        # Targets are re-evaluated from the stored figures (the rules may have changed).
        stored = json.loads(options.render.read_text())
        if stored["meta"].get("mode") != "models":
            stored["targets"] = evaluate(stored)
        write(stored, options.render.parent)
        _say(f"report: {_render_docs(options.render.parent, options.docs)}")
        return
    settings = QUICK if options.quick else Settings()
    if options.seconds:
        settings = Settings(**{**settings.__dict__, "seconds": options.seconds})
    if options.repeats:
        settings = Settings(**{**settings.__dict__, "repeats": options.repeats})
    command = ".venv/bin/python -m bench.perf" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    began = time.monotonic()
    if options.models:
        models = run_models(settings, command=command)
        path = write(models, options.results_dir)
        _say(f"results: {path} ({time.monotonic() - began:.0f}s)")
        if not options.no_docs:
            _say(f"report: {_render_docs(options.results_dir, options.docs)}")
        return
    # --quick leaves the gunicorn worker-model variants out (under 2 minutes).
    variants = not (options.no_variants or options.quick)
    results = run(settings, variants=variants, command=command)
    path = write(results, options.results_dir)
    _say(f"results: {path} ({time.monotonic() - began:.0f}s)")
    if not options.no_docs:
        _say(f"report: {_render_docs(options.results_dir, options.docs)}")
    for target in results["targets"]:
        mark = "met" if target["met"] else "MISSED"
        _say(f"  {mark:<6} {target['name']}: {target['detail']}")


if __name__ == "__main__":
    main()
