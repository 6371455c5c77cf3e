"""docs/reliability.md, written from the results JSON files (``bench/results/faults-*.json``).

For each scenario the newest result is shown: the load, the fault, requests sent and
failed (by status; first attempts and, for orders, after the client's retries with the
same key), orders acknowledged against the database, time to recover, and every check
with what was expected and observed. Nothing here is typed by hand.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "reliability.md"
COMMAND = ".venv/bin/python -m bench.faults"


Run = tuple[dict[str, Any], dict[str, Any]]  # (a scenario's result, the run it came from)


def all_results(folder: Path = RESULTS) -> dict[int, list[Run]]:
    """Scenario number -> every result of it, oldest first."""
    found: dict[int, list[Run]] = {}
    for path in sorted(folder.glob("faults-*.json")):  # names sort by UTC time
        run = json.loads(path.read_text())
        run["file"] = path.relative_to(REPO).as_posix()
        for result in run["scenarios"]:
            found.setdefault(int(result["scenario"]), []).append((result, run))
    return found


def run_server(run: dict[str, Any]) -> str:
    """The app server a run used (runs from before ``--server`` were all gunicorn's)."""
    return str(run.get("server", "gunicorn"))


def shop_server() -> str:
    """The app server the shop's flaskprod.toml says: its runs are the headlines."""
    from bench.shop_stack import SHOP, server_kind

    return server_kind(SHOP)


def headline(runs: list[Run], server: str | None = None) -> Run:
    """The result a scenario is shown with: its newest full-size run if there is one (a
    quick run's shorter outages must not hide what the full one found), else its newest;
    runs of the shop's own configuration first (its app server, ``server`` here, and
    not ``--worker-class`` ones)."""
    server = server or shop_server()
    own = [r for r in runs if not r[1].get("worker_class") and run_server(r[1]) == server] or runs
    return next((r for r in reversed(own) if r[1].get("size") == "full"), own[-1])


def newest_results(folder: Path = RESULTS) -> dict[int, Run]:
    """Scenario number -> (its headline result, the run it came from)."""
    server = shop_server()
    return {number: headline(runs, server) for number, runs in all_results(folder).items()}


def history(runs: list[Run]) -> list[str]:
    """One line per run of a scenario, so that a difference between runs shows."""
    lines = ["Every run of this scenario (time to recover, failed first/final, verdict):", ""]
    for result, run in runs:
        load = result["load"]
        verdict = "passed" if result["passed"] else "FAILED"
        lines.append(
            f"- `{run['file']}` ({run['size']}, {run_server(run)}{_worker_class(run)}): "
            f"{result['time_to_recover_s']} s, "
            f"{load['failed_total_first_attempt']} / {load['failed_total_final']}, {verdict}"
        )
    return [*lines, ""]


def _worker_class(run: dict[str, Any]) -> str:
    return f", {run['worker_class']} workers" if run.get("worker_class") else ""


def _statuses(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    return ", ".join(f"{n} x {status}" for status, n in sorted(counts.items()))


def _ran(load: dict[str, Any]) -> str:
    return f"; ran {load['ran_s']} s" if "ran_s" in load else ""


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|").replace("\n", " ")


def scenario_section(result: dict[str, Any], run: dict[str, Any]) -> list[str]:
    load = result["load"]
    orders = result.get("orders")
    verdict = "passed" if result["passed"] else "**FAILED**"
    lines = [
        f"## {result['scenario']}. {result['title']} — {verdict}",
        "",
        f"Run: `{run['command']}` ({run['size']} size, {run_server(run)}, {run['started']}, "
        f"`{run['file']}`)",
        "",
        "| | |",
        "| --- | --- |",
        f"| Load | {_cell(load['load'])}{_ran(load)} |",
        f"| Fault | {_cell(result['fault'])} |",
        f"| Requests sent (first attempts) | {load['sent']} ({load['gets']} GET, "
        f"{load['posts']} POST; {load['retries']} POST retries; "
        f"{load.get('stale_connection_resends', 0)} resent after a keep-alive close) |",
        f"| Failed GETs | {_statuses(load['failed_gets'])} |",
        f"| Failed order POSTs, first attempt | {_statuses(load['failed_posts_first_attempt'])} |",
        f"| Failed order POSTs, after retries with the same key | "
        f"{_statuses(load['failed_posts_final'])} |",
    ]
    if orders:
        lines += [
            f"| Orders acknowledged / in the database | {orders['acknowledged']} / "
            f"{orders['in_database']} (stored but never acknowledged: "
            f"{orders['stored_not_acknowledged']}) |",
            f"| Lost / duplicated orders | {orders['lost']} / {orders['duplicated']} |",
        ]
    lat = load["latency_ms"]
    lines += [
        f"| Latency GET p50 / p99 / max (ms) | {lat['get']['p50']} / {lat['get']['p99']} / "
        f"{lat['get']['max']} |",
        f"| Time to recover (s) | {result['time_to_recover_s']} |",
        "",
        "| Check | Expected | Observed | |",
        "| --- | --- | --- | --- |",
    ]
    for item in result["checks"]:
        mark = "ok" if item["passed"] else "FAIL"
        lines.append(
            f"| {_cell(item['check'])} | {_cell(item['expected'])} | "
            f"{_cell(item['observed'])} | {mark} |"
        )
    if result.get("extra"):
        lines += ["", "<details><summary>More figures</summary>", "", "```json"]
        lines += json.dumps(result["extra"], indent=2, sort_keys=True).splitlines()
        lines += ["```", "", "</details>"]
    return [*lines, ""]


HEADER = f"""# Reliability: the fault suite

Generated by `bench/faults/report.py` from `bench/results/faults-*.json`: do not edit,
run the suite again. Every figure below comes from a real run of the real stack
(`flaskprod up -d` of `examples/shop`: nginx with TLS → the app server (gunicorn or
granian, as the run says) → the shop, PostgreSQL, Redis, all on loopback) on this
machine. Scenarios 9 and 10 are scenarios 4 and 7 with the shop on MariaDB instead
(`database.engine = "mariadb"`, PyMySQL, the MariaDB `up` runs in the state folder).

Each scenario is shown with its newest full-size run (else its newest quick one) on the
app server the shop's flaskprod.toml names (`server.kind`); every run of it is listed
below its table. Reproduce (scenarios 1-8; `--quick` for a shorter run, `--scenario N`
for one; `--scenario 9`, `--scenario 10` or `--database mariadb` runs the shop on
MariaDB):

    {COMMAND} [--quick] [--scenario N] [--server gunicorn|granian]
        [--worker-class sync|gthread|gevent] [--database mariadb]

`--server` runs the shop on another app server than its own, `--worker-class` with
another gunicorn worker class than its own (gthread; implies gunicorn): such runs are
listed under a scenario, never shown as its headline.

How to read it: the load generator (`bench/faults/load.py`) sends reads and order
POSTs at a fixed rate, bounded in count and time, each client thread from its own
loopback address (nginx limits /api/ per client). Every order POST carries an
`Idempotency-Key`; a POST that got no answer, a 429 or a 5xx is retried with the same
key (up to 4 times, 0.25-2 s back-off), as a real client would. "First attempt"
failures are what clients saw; "after retries" is what they were finally refused.
A request that met an idle keep-alive connection nginx closed as it was sent (nginx's
old workers close idle connections on a reload) got no response and was never read: it
is sent once more on a new connection, as browsers do (RFC 9112 §9.3.1), and counted
("resent after a keep-alive close"); it fails only if that resend fails.
Orders are then checked in PostgreSQL directly: each acknowledged key exactly once,
with the id the client was given. "Time to recover": from the fault to the end of the
last failed first attempt (scenarios 1-2) or the last failed attempt, order retries
included (scenario 3: a client busy retrying sends no first attempt, so first attempts
alone end the gap early), or to the first 200 of the measure named in the scenario
(readiness for 4 and 7, a session page for 5). The slow clients of scenario 6
run in a child process of their own, so that their TLS work does not slow the load
generator's clock.

Scenario 3's supervisor: `flaskprod up` has no restart loop (in the foreground it
stops the whole stack when a service dies; detached, nothing watches). On a server
systemd restarts the app server; here the harness does what the rendered unit
(`deploy/systemd/shop.service`) tells systemd to do. With `KillMode=mixed` and the
main process already dead, systemd has no one to send SIGTERM to and SIGKILLs what is
left of the service (the orphaned workers, which still hold the listening socket),
then starts the server again after `RestartSec` (`bench/faults/scenarios.py:
Supervisor`). Order POSTs that fall into a gap longer than the client's retries
(about 4 s) are finally refused: they are counted, and none of them may be stored
twice or acknowledged and lost.
"""


def render(folder: Path = RESULTS, server: str | None = None) -> str:
    """The page; ``server``: whose runs are the headlines (default: the shop's)."""
    every = all_results(folder)
    server = server or shop_server()
    newest = {number: headline(runs, server) for number, runs in every.items()}
    lines = [*HEADER.splitlines(), ""]
    if not newest:
        lines.append("No results yet: run the command above.")
    summary = ["| # | Scenario | Failed (first / final) | Lost / dup. orders | Recover (s) | |"]
    summary.append("| --- | --- | --- | --- | --- | --- |")
    for number, (result, _run) in sorted(newest.items()):
        load, orders = result["load"], result.get("orders")
        lost = f"{orders['lost']} / {orders['duplicated']}" if orders else "n/a (reads only)"
        summary.append(
            f"| {number} | {result['title']} | {load['failed_total_first_attempt']} / "
            f"{load['failed_total_final']} | {lost} | {result['time_to_recover_s']} | "
            f"{'passed' if result['passed'] else 'FAILED'} |"
        )
    if newest:
        lines += [*summary, ""]
    for number, (result, run) in sorted(newest.items()):
        lines += scenario_section(result, run)
        if len(every[number]) > 1:
            lines += history(every[number])
    return "\n".join(lines).rstrip() + "\n"


_OTHER_BENCH = re.compile(r"<!-- (bench\.[\w.]+):start -->.*?<!-- \1:end -->", re.S)


def write_doc(folder: Path = RESULTS, doc: Path = DOC) -> Path:
    """Render and write ``doc`` atomically (temp file + os.replace). Blocks other
    benches write into the page (``<!-- bench.NAME:start -->`` ... ``:end -->``, e.g.
    bench/multihost.py's) are kept at its end."""
    old = doc.read_text() if doc.exists() else ""
    kept = [match.group(0) for match in _OTHER_BENCH.finditer(old)]
    text = render(folder) + "".join(f"\n{block}\n" for block in kept)
    doc.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=doc.parent, prefix=f".{doc.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(name, 0o644)
    os.replace(name, doc)
    return doc
