"""Render docs/performance.md and its plots from one results file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

ORDER = ("hello", "products", "product", "order", "static", "mix")
LABELS = {
    "hello": "hello (limit)",
    "products": "product list",
    "product": "product by id (DB read)",
    "order": "order (DB write)",
    "static": "static file",
    "mix": "mix",
}


def _cells(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    rows = []
    for stack, entry in results["stacks"].items():
        for workload in ORDER:
            cell = entry["workloads"].get(workload)
            if cell:
                rows.append((stack, workload, cell))
    return rows


def _write_atomic(path: Path, data: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(data)
    os.replace(temp, path)


def plot_throughput(results: dict[str, Any], path: Path) -> None:
    stacks = [
        s
        for s, entry in results["stacks"].items()
        if s.startswith(("usual", "flaskprod")) and entry["workloads"]
    ]
    workloads = [w for w in ORDER if w not in ("hello", "static")]
    figure, axis = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(1, len(stacks))
    for index, stack in enumerate(stacks):
        values = [
            results["stacks"][stack]["workloads"].get(w, {}).get("max", {}).get("rps", 0)
            for w in workloads
        ]
        positions = [i + (index - (len(stacks) - 1) / 2) * width for i in range(len(workloads))]
        bars = axis.bar(positions, values, width, label=stack)
        axis.bar_label(bars, fmt="%.0f", fontsize=7)
    limit = results["stacks"].get("limit", {}).get("workloads", {}).get("hello")
    if limit:
        axis.axhline(limit["max"]["rps"], color="grey", linestyle="--", linewidth=1)
        axis.annotate(
            f"limit: Flask hello on bare gunicorn ({limit['max']['rps']:.0f})",
            (0, limit["max"]["rps"]),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=8,
            color="grey",
        )
    axis.set_xticks(range(len(workloads)), [LABELS[w] for w in workloads])
    axis.set_ylabel("requests / s (closed loop, median)")
    axis.set_title("Throughput per stack (higher is better)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_latency(results: dict[str, Any], path: Path) -> None:
    stacks = [s for s in results["stacks"] if s in ("usual", "flaskprod")]
    workloads = [w for w in ORDER if w not in ("hello",)]
    figure, axes = plt.subplots(1, len(workloads), figsize=(12, 4), sharey=False)
    for axis, workload in zip(axes, workloads, strict=True):
        rate = None
        for stack in stacks:
            cell = results["stacks"][stack]["workloads"].get(workload)
            if not cell:
                continue
            fixed = cell["fixed_rate"]
            rate = fixed["rate"]
            axis.plot(
                ["p50", "p99", "p99.9"],
                [fixed["p50_ms"], fixed["p99_ms"], fixed["p999_ms"]],
                marker="o",
                label=stack,
            )
        axis.set_yscale("log")
        axis.set_title(f"{LABELS[workload]}\nat {rate or 0:.0f} req/s", fontsize=9)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency, ms (log; fixed rate, from the due time)")
    axes[-1].legend(fontsize=8)
    figure.suptitle("Latency percentiles at the same fixed rate (lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def table(results: dict[str, Any]) -> str:
    lines = [
        "| stack | workload | req/s (max) | runs | p50 / p99 / p99.9 ms at fixed rate | "
        "fixed rate | errors (max / fixed) | stack CPU (cores) | CPU µs/req | "
        "stack RSS MiB | worker RSS / PSS MiB | wrk CPU / open-loop CPU (cores) |",
        "|---|---|---:|---|---|---:|---|---:|---:|---:|---|---|",
    ]
    for stack, workload, cell in _cells(results):
        top, fixed = cell["max"], cell["fixed_rate"]
        runs = ", ".join(_fmt(v) for v in top["rps_runs"])
        lines.append(
            f"| {stack} | {LABELS[workload]} | {_fmt(top['rps'])} | {runs} | "
            f"{fixed['p50_ms']:.1f} / {fixed['p99_ms']:.1f} / {fixed['p999_ms']:.1f} | "
            f"{fixed['rate']:.0f} | "
            f"{int(top['errors'])} / {int(fixed['errors'])} | {top['stack_cpu_cores']:.2f} | "
            f"{_fmt(top['stack_cpu_us_per_request'])} | {top['stack_rss_mib']:.0f} | "
            f"{top['worker_rss_mib_max']:.0f} / {top.get('worker_pss_mib_max', 0):.0f} | "
            f"{top['client_cpu_cores']:.2f} / {fixed['client_cpu_cores']:.2f} |"
        )
    return "\n".join(lines)


def targets_table(results: dict[str, Any]) -> str:
    lines = ["| target | goal | measured | met |", "|---|---|---|---|"]
    for target in results["targets"]:
        lines.append(
            f"| {target['name']} | {target['goal']} | {target['detail']} | "
            f"{'yes' if target['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def notes_table(results: dict[str, Any]) -> str:
    lines = ["| stack | what runs |", "|---|---|"]
    for stack, entry in results["stacks"].items():
        notes = "; ".join(entry["notes"].values())
        lines.append(f"| {stack} | {notes} |")
    return "\n".join(lines)


def variants_table(results: dict[str, Any]) -> str:
    """flaskprod's stack (its default server) and per gunicorn worker model
    (flaskprod/gunicorn-<class>: server.kind = "gunicorn"), same run."""
    lines = [
        "| server / worker model | workload | req/s (max) | p99 ms at fixed rate | errors | "
        "workers | worker RSS / PSS MiB | stack RSS MiB |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for stack, entry in results["stacks"].items():
        if not stack.startswith("flaskprod"):
            continue
        if not entry["workloads"]:
            lines.append(f"| {stack} | — | did not start: {entry['notes'].get('error', '?')} |||||")
        for workload in ("product", "mix"):
            cell = entry["workloads"].get(workload)
            if not cell:
                continue
            top = cell["max"]
            lines.append(
                f"| {stack} ({entry['notes'].get('server', '')}) | {LABELS[workload]} | "
                f"{_fmt(top['rps'])} | {cell['fixed_rate']['p99_ms']:.1f} | "
                f"{int(top['errors'])} | {int(top['workers'])} | "
                f"{top['worker_rss_mib_max']:.0f} / {top.get('worker_pss_mib_max', 0):.0f} | "
                f"{top['stack_rss_mib']:.0f} |"
            )
    return "\n".join(lines)


def models_section(models: dict[str, Any] | None) -> str:
    """The --models run: flaskprod's stack per worker model and with granian."""
    if not models:
        return "(no `--models` run in bench/results yet)"
    meta = models["meta"]
    head = (
        f"Run `{meta['command']}`, started {meta['started']}, took {meta['seconds']} s; "
        f"load average {', '.join(f'{v:.1f}' for v in meta['load_average_start'])} at the "
        f"start and {', '.join(f'{v:.1f}' for v in meta['load_average_end'])} at the end "
        f"(1, 5, 15 min); {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}."
    )
    lines = [
        head,
        "",
        "| server | workload | req/s (max) | runs | p50 / p99 ms at fixed rate | fixed rate | "
        "errors (max / fixed) | stack CPU (cores) | CPU µs/req | workers | "
        "worker RSS / PSS MiB | stack RSS MiB |",
        "|---|---|---:|---|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for stack, entry in models["stacks"].items():
        server = entry["notes"].get("server", "")
        if not entry["workloads"]:
            why = entry["notes"].get("error", "?")
            lines.append(f"| {stack} | — | did not start: {why} ||||||||||")
        for workload in ORDER:
            cell = entry["workloads"].get(workload)
            if not cell:
                continue
            top, fixed = cell["max"], cell["fixed_rate"]
            lines.append(
                f"| {stack} ({server}) | {LABELS[workload]} | {_fmt(top['rps'])} | "
                f"{', '.join(_fmt(v) for v in top['rps_runs'])} | "
                f"{fixed['p50_ms']:.1f} / {fixed['p99_ms']:.1f} | {fixed['rate']:.0f} | "
                f"{int(top['errors'])} / {int(fixed['errors'])} | "
                f"{top['stack_cpu_cores']:.2f} | {_fmt(top['stack_cpu_us_per_request'])} | "
                f"{int(top['workers'])} | "
                f"{top['worker_rss_mib_max']:.0f} / {top.get('worker_pss_mib_max', 0):.0f} | "
                f"{top['stack_rss_mib']:.0f} |"
            )
    return "\n".join(lines)


def overhead(results: dict[str, Any]) -> str:
    """Production(app)'s cost per request: the two limit stacks, same run."""
    bare = results["stacks"].get("limit", {}).get("workloads", {}).get("hello")
    wrapped = results["stacks"].get("limit+Production", {}).get("workloads", {}).get("hello")
    if not bare or not wrapped:
        return "(not measured in this run)"
    cpu = wrapped["max"]["stack_cpu_us_per_request"] - bare["max"]["stack_cpu_us_per_request"]
    ratio = wrapped["max"]["rps"] / max(bare["max"]["rps"], 1e-9)
    return (
        f"bare Flask {_fmt(bare['max']['rps'])} req/s, with `Production(app)` "
        f"{_fmt(wrapped['max']['rps'])} req/s ({ratio:.0%}); gunicorn's CPU per request "
        f"{_fmt(bare['max']['stack_cpu_us_per_request'])} µs vs "
        f"{_fmt(wrapped['max']['stack_cpu_us_per_request'])} µs: **{cpu:+,.0f} µs** per request"
    )


def render(results: dict[str, Any], docs: Path, models: dict[str, Any] | None = None) -> Path:
    """Write ``docs/performance.md`` (method text from method.md + figures); ``models``:
    the latest ``--models`` run, if any."""
    images = docs / "performance"
    images.mkdir(parents=True, exist_ok=True)
    plot_throughput(results, images / "throughput.png")
    plot_latency(results, images / "latency.png")
    meta = results["meta"]
    method = (Path(__file__).with_name("method.md")).read_text()
    page = method.format(
        command=meta["command"],
        started=meta["started"],
        seconds=meta["seconds"],
        cores=meta["cores"],
        load_start=", ".join(f"{v:.1f}" for v in meta["load_average_start"]),
        load_end=", ".join(f"{v:.1f}" for v in meta["load_average_end"]),
        versions=", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        settings=", ".join(f"{k}={v}" for k, v in meta["settings"].items()),
        mix=", ".join(f"{LABELS[name]} {weight} %" for name, weight in meta["mix"]),
        targets=targets_table(results),
        stacks=notes_table(results),
        table=table(results),
        variants=variants_table(results),
        overhead=overhead(results),
        models=models_section(models),
    )
    path = docs / "performance.md"
    _write_atomic(path, page)
    return path
