"""Scenario 1 (``flaskprod reload`` under load) repeated on a busy machine.

    .venv/bin/python -m bench.faults.contention [--runs N] [--burners N] [--rate R]
                                                [--server gunicorn|granian]

One ``flaskprod up -d`` of the shop (as ``bench.faults``), then ``--runs`` times the
reload-under-load scenario (``--quick`` size, ``--rate`` first attempts a second) while
``--burners`` CPU burners (``python -c 'while ...: pass'``, each bounded in time by
itself, started and stopped here by pid) compete for the cores. Prints one line per run
and the totals, writes ``bench/results/reload-contention-<UTC time>.json``. Exits 1 when
a run failed a request or lost an order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.faults.report import RESULTS
from bench.faults.scenarios import QUICK, reload_under_load
from bench.faults.stack import running_stack

#: A burner spins until its own deadline: it cannot outlive the run by much even if
#: this process is killed before it stops them.
_BURNER = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def _burners(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    code = _BURNER.format(seconds=seconds)
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def _stop(burners: list[subprocess.Popen[bytes]]) -> None:
    for burner in burners:
        if burner.poll() is None:
            burner.kill()  # by pid: our own child
        burner.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults.contention", description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="Reloads under load (1-100).")
    parser.add_argument("--burners", type=int, default=2, help="CPU burners (0-8).")
    parser.add_argument("--server", choices=("gunicorn", "granian"), help="Instead of the shop's.")
    parser.add_argument(
        "--rate", type=float, default=QUICK.rate, help="First attempts per second (10-150)."
    )
    options = parser.parse_args(argv)
    if not 1 <= options.runs <= 100 or not 0 <= options.burners <= 8:
        parser.error("--runs must be 1-100 and --burners 0-8")
    if not 10 <= options.rate <= 150:  # nginx limits /api/ to 20 r/s per client (8 here)
        parser.error("--rate must be 10-150")
    size = dataclasses.replace(QUICK, rate=options.rate)
    runs: list[dict[str, Any]] = []
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with running_stack(None, options.server) as stack:
        print(
            f"stack up: {stack.url} ({stack.server}), {options.burners} burners, "
            f"{options.rate:g} req/s",
            flush=True,
        )
        for number in range(1, options.runs + 1):
            burners = _burners(options.burners, seconds=120.0)
            try:
                time.sleep(0.5)  # the burners run before the load starts
                result = reload_under_load(stack, size)
            finally:
                _stop(burners)
            load, orders = result["load"], result["orders"]
            run = {
                "run": number,
                "sent": load["sent"],
                "failed_first_attempt": load["failed_total_first_attempt"],
                "retries": load["retries"],
                "orders_lost": orders["lost"],
                "orders_duplicated": orders["duplicated"],
                "reload_seconds": result["extra"]["reload_seconds"],
                "phases": result["extra"].get("phases", ""),
                "passed": result["passed"],
                # what failed and when, against the reload's start and end (load clock)
                "failed_examples": load["failed_examples"],
                "events": load["events"],
            }
            runs.append(run)
            print(
                f"run {number}: {run['sent']} requests, {run['failed_first_attempt']} failed, "
                f"{run['retries']} retries, orders lost {run['orders_lost']} duplicated "
                f"{run['orders_duplicated']}, reload {run['reload_seconds']} s "
                f"{'(' + run['phases'] + ') ' if run['phases'] else ''}"
                f"({'passed' if run['passed'] else 'FAILED'})",
                flush=True,
            )
            for failure in run["failed_examples"]:
                print(f"  failed: {failure} (events {run['events']})", flush=True)
    failed_runs = [r for r in runs if not r["passed"]]
    totals = {
        "runs": len(runs),
        "failed_runs": len(failed_runs),
        "requests": sum(r["sent"] for r in runs),
        "failed_requests": sum(r["failed_first_attempt"] for r in runs),
        "orders_lost": sum(r["orders_lost"] for r in runs),
        "orders_duplicated": sum(r["orders_duplicated"] for r in runs),
    }
    print(
        f"total: {totals['failed_runs']} of {totals['runs']} runs failed; "
        f"{totals['failed_requests']} of {totals['requests']} requests failed; orders lost "
        f"{totals['orders_lost']}, duplicated {totals['orders_duplicated']}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.replace(":", "").replace("-", "")
    path = RESULTS / f"reload-contention-{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "started": started,
                "burners": options.burners,
                "rate": options.rate,
                "totals": totals,
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {path}")
    return 1 if failed_runs else 0


if __name__ == "__main__":
    raise SystemExit(main())
