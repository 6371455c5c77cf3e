"""Run the fault scenarios against a real stack and write the figures.

    .venv/bin/python -m bench.faults [--quick] [--scenario N ...] [--no-doc]
                                     [--server gunicorn|granian]
                                     [--worker-class sync|gthread|gevent]
                                     [--database mariadb]

Starts one ``flaskprod up -d`` of a copy of examples/shop on free loopback ports, runs
the chosen scenarios (1-8 by default; with ``--database mariadb`` the shop runs on
MariaDB and the default is scenarios 9 and 10, the database restarted and stalled
there) one after another, writes
``bench/results/faults-<UTC time>.json`` (atomically) and regenerates
``docs/reliability.md`` from every results file (newest result per scenario). Exits 1
when a check failed, 0 otherwise. Bounded: every load and fault has a count and a time
limit; the stack is stopped at the end (``flaskprod down``, then by pid).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from bench.faults.report import RESULTS, write_doc
from bench.faults.scenarios import FULL, MARIADB_ONLY, POSTGRES_ONLY, QUICK, SCENARIOS
from bench.faults.stack import running_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Shorter load and outages.")
    parser.add_argument(
        "--scenario", type=int, action="append", choices=sorted(SCENARIOS), help="Repeatable."
    )
    parser.add_argument("--no-doc", action="store_true", help="Do not rewrite the doc.")
    parser.add_argument(
        "--worker-class",
        choices=("sync", "gthread", "gevent"),
        help="gunicorn's worker class instead of the shop's (the doc shows such runs in "
        "each scenario's list of runs, not as its headline).",
    )
    parser.add_argument(
        "--server",
        choices=("gunicorn", "granian"),
        help="The app server instead of the shop's server.kind (the doc shows runs of "
        "another server than the shop's in each scenario's list of runs, not as its "
        "headline).",
    )
    parser.add_argument(
        "--database",
        choices=("mariadb",),
        help="Run the shop on MariaDB (through PyMySQL) instead of PostgreSQL; implied by "
        "scenarios 9 and 10.",
    )
    options = parser.parse_args(argv)
    if options.scenario and set(options.scenario) & set(MARIADB_ONLY):
        options.database = "mariadb"
    if options.database == "mariadb" and set(options.scenario or []) & set(POSTGRES_ONLY):
        parser.error(f"scenarios {POSTGRES_ONLY} fault PostgreSQL: not with --database mariadb")
    if options.worker_class and options.server == "granian":
        parser.error("--worker-class is gunicorn's: it cannot go with --server granian")
    if options.worker_class and not options.server:
        options.server = "gunicorn"  # the class of gunicorn's workers, whatever the shop runs
    size = QUICK if options.quick else FULL
    default = MARIADB_ONLY if options.database else [n for n in SCENARIOS if n not in MARIADB_ONLY]
    chosen = options.scenario or sorted(default)
    command = "python -m bench.faults" + (" --quick" if options.quick else "")
    command += "".join(f" --scenario {n}" for n in options.scenario or [])
    if options.server:
        command += f" --server {options.server}"
    if options.worker_class:
        command += f" --worker-class {options.worker_class}"
    if options.database and not options.scenario:
        command += f" --database {options.database}"
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results: list[dict[str, Any]] = []
    with running_stack(options.worker_class, options.server, options.database) as stack:
        server = stack.server
        print(f"stack up: {stack.url} ({server}, project {stack.project})", flush=True)
        for number in chosen:
            began = time.monotonic()
            result = SCENARIOS[number](stack, size)
            result["seconds"] = round(time.monotonic() - began, 1)
            results.append(result)
            verdict = "passed" if result["passed"] else "FAILED"
            print(f"scenario {number} ({result['title']}): {verdict} in {result['seconds']} s")
            for item in result["checks"]:
                if not item["passed"]:
                    print(
                        f"  - {item['check']}: expected {item['expected']}, "
                        f"observed {item['observed']}"
                    )
    run = {
        "command": command,
        "size": size.name,
        "started": started,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "scenarios": results,
        "server": server,
    }
    if options.worker_class:
        run["worker_class"] = options.worker_class
    if options.database:
        run["database"] = options.database
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"faults-{started.replace(':', '')}.json"
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=".faults-")
    with os.fdopen(fd, "w") as handle:
        json.dump(run, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    print(f"results: {path}")
    if not options.no_doc:
        print(f"doc: {write_doc()}")
    return 0 if all(r["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
