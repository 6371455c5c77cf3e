"""How long `flaskprod backup` takes, with and without the restore drill.

    .venv/bin/python bench/backup_bench.py [--rows 1000000]

A throwaway PostgreSQL (fsync off, free loopback port, temp folder; stopped by pid at
the end) gets one table of ``--rows`` rows (bigserial key, timestamptz, 96 chars of
text); a SQLite file gets the same number of rows (integer key, 96 hex chars). Then,
timed as a user runs the CLI (python start-up included):
- ``flaskprod backup`` (dump + row checksums in one snapshot + pg_restore checks);
- ``flaskprod backup --verify-restore`` (+ restore into a scratch database, compare);
- the same two on SQLite.
Progress lines (stderr) are counted to show that large databases print them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flaskprod.stack.postgres import PostgresCluster, temp_cluster_dir

FLASKPROD = str(Path(sys.executable).with_name("flaskprod"))


def _run(url: str, out: Path, *extra: str) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MEDIA_ROOT")}
    started = time.monotonic()
    result = subprocess.run(
        [FLASKPROD, "backup", "--database-url", url, "--output", str(out), "--no-media", *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=out.parent,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"backup failed ({result.returncode}): {result.stderr}")
    progress = sum(1 for line in result.stderr.splitlines() if line.startswith("backup "))
    return elapsed, progress, Path(result.stdout.strip()).name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flaskprod-backup-bench-"))
    data = temp_cluster_dir(prefix="flaskprod-backup-bench-pg-")
    cluster = PostgresCluster(data, fsync=False, die_with_parent=True)
    cluster.start()
    try:
        url = cluster.create_database("bench")
        with cluster.connect("bench") as conn:
            conn.execute(
                "CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(),"
                " body text)"
            )
            conn.execute(
                "INSERT INTO events (body) SELECT repeat(md5(i::text), 3)"
                " FROM generate_series(1, %s) i",
                (args.rows,),
            )
            size = conn.execute("SELECT pg_database_size('bench')").fetchone()[0]  # type: ignore[index]
        db = work / "bench.db"
        with sqlite3.connect(db) as lite:
            lite.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
            lite.executemany(
                "INSERT INTO events (body) VALUES (?)",
                ((os.urandom(48).hex(),) for _ in range(args.rows)),
            )
        print(
            f"{args.rows} rows: PostgreSQL database {size / 2**20:.0f} MB, "
            f"SQLite file {db.stat().st_size / 2**20:.0f} MB; {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'case':<42} {'seconds':>8} {'progress lines':>15}  file")
        for label, target in (("PostgreSQL", url), ("SQLite", f"sqlite:///{db}")):
            for extra in ((), ("--verify-restore",)):
                out = work / "out"
                elapsed, lines, name = _run(target, out, *extra)
                case = f"{label} backup {' '.join(extra)}".strip()
                print(f"{case:<42} {elapsed:>8.1f} {lines:>15}  {name}")
    finally:
        cluster.stop()
        shutil.rmtree(data.parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
