"""How long the throwaway services take to come up (and go down).

    .venv/bin/python bench/services_startup.py [--runs 5]

Measures, each ``--runs`` times, with the median and the range:
- PostgreSQL fresh: initdb (``--no-sync``) + start until ready, in a new folder
  (and initdb alone);
- PostgreSQL existing: start until ready on a folder already initialised;
- PostgreSQL stop (fast shutdown);
- Redis: start until it answers, and stop (a SIGTERM is acted on in Redis's
  100 ms cron, hence the stop figure).
Everything runs on free loopback ports in temp folders and is stopped by pid.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flaskprod.stack.postgres import PostgresCluster, temp_cluster_dir
from flaskprod.stack.redis import RedisServer


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    results: dict[str, list[float]] = {
        "postgres: fresh (initdb + start)": [],
        "postgres: of which initdb --no-sync": [],
        "postgres: existing data (start)": [],
        "postgres: stop (fast shutdown)": [],
        "redis: start": [],
        "redis: stop": [],
    }
    for _ in range(runs):
        data_dir = temp_cluster_dir(prefix="flaskprod-bench-pg-")
        cluster = PostgresCluster(data_dir, fsync=False, die_with_parent=True)
        try:
            initdb = timed(functools.partial(cluster.init, no_sync=True))
            first_start = timed(cluster.start)
            results["postgres: fresh (initdb + start)"].append(initdb + first_start)
            results["postgres: of which initdb --no-sync"].append(initdb)
            results["postgres: stop (fast shutdown)"].append(timed(cluster.stop))
            results["postgres: existing data (start)"].append(timed(cluster.start))
        finally:
            cluster.stop()
            shutil.rmtree(data_dir.parent, ignore_errors=True)

        folder = Path(tempfile.mkdtemp(prefix="flaskprod-bench-redis-"))
        server = RedisServer(folder, die_with_parent=True)
        try:
            results["redis: start"].append(timed(server.start))
            results["redis: stop"].append(timed(server.stop))
        finally:
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)

    width = max(len(name) for name in results)
    print(f"{'what':<{width}}  {'median ms':>9}  {'min':>7}  {'max':>7}   (runs: {runs})")
    for name, values in results.items():
        print(
            f"{name:<{width}}  {statistics.median(values):>9.1f}  "
            f"{min(values):>7.1f}  {max(values):>7.1f}"
        )


if __name__ == "__main__":
    main()
