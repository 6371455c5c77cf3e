"""The issue's targets, as ratios of figures measured in the same run."""

from __future__ import annotations

from typing import Any


def _cell(results: dict[str, Any], stack: str, workload: str) -> dict[str, Any] | None:
    cell: dict[str, Any] | None = (
        results["stacks"].get(stack, {}).get("workloads", {}).get(workload)
    )
    return cell


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: str, met: bool, detail: str) -> None:
        targets.append({"name": name, "value": value, "goal": goal, "met": met, "detail": detail})

    ours, usual = _cell(results, "flaskprod", "mix"), _cell(results, "usual", "mix")
    if ours and usual:
        ratio = ours["max"]["rps"] / max(usual["max"]["rps"], 1e-9)
        p99_ours, p99_usual = ours["fixed_rate"]["p99_ms"], usual["fixed_rate"]["p99_ms"]
        add(
            "mix: flaskprod >= 2x the usual configuration, lower p99",
            ratio,
            ">= 2.0 and lower p99",
            ratio >= 2.0 and p99_ours < p99_usual,
            f"{ours['max']['rps']:.0f} vs {usual['max']['rps']:.0f} req/s = {ratio:.2f}x; "
            f"p99 at {ours['fixed_rate']['rate']:.0f} req/s: {p99_ours:.1f} ms vs "
            f"{p99_usual:.1f} ms",
        )
    cached, limit = _cell(results, "flaskprod", "products"), _cell(results, "limit", "hello")
    if cached and limit:
        ratio = cached["max"]["rps"] / max(limit["max"]["rps"], 1e-9)
        add(
            "cached product list through nginx + TLS >= 75 % of the limit",
            ratio,
            ">= 0.75",
            ratio >= 0.75,
            f"{cached['max']['rps']:.0f} vs {limit['max']['rps']:.0f} req/s "
            f"(Flask hello, bare gunicorn) = {ratio:.0%}",
        )
    static = _cell(results, "flaskprod", "static")
    app_cells: list[tuple[str, dict[str, Any]]] = []
    # Routes that reach the app (the product list may be answered by nginx's cache).
    for name in ("product", "order"):
        found = _cell(results, "flaskprod", name)
        if found:
            app_cells.append((name, found))
    if static and app_cells:
        name, fastest = max(app_cells, key=lambda pair: pair[1]["max"]["rps"])
        ratio = static["max"]["rps"] / max(fastest["max"]["rps"], 1e-9)
        add(
            "static files >= 20x the app's request rate",
            ratio,
            ">= 20",
            ratio >= 20,
            f"{static['max']['rps']:.0f} vs {fastest['max']['rps']:.0f} req/s "
            f"(the app's faster route to the database, {name}) = {ratio:.1f}x",
        )
    ours = results["stacks"].get("flaskprod", {})
    cells = list(ours.get("workloads", {}).values())
    if cells:
        worst = max(cell["max"]["worker_rss_mib_max"] for cell in cells)
        pss = max(cell["max"].get("worker_pss_mib_max", 0.0) for cell in cells)
        # The stack's server note starts with its name: granian (the default) or gunicorn.
        server = str(ours.get("notes", {}).get("server", "gunicorn")).split(" ")[0]
        shared = (
            "the preloaded pages it shares counted once"
            if server == "gunicorn"
            else "the pages it shares with the forked master counted once"
        )
        add(
            "shop worker < 60 MB RSS",
            worst,
            "< 60 MiB",
            worst < 60,
            f"largest {server} worker after a run: RSS {worst:.1f} MiB (PSS {pss:.1f} MiB: "
            f"{shared})",
        )
    return targets
