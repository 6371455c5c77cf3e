"""Per-worker memory of the reference shop under gunicorn or granian.

Starts the shop with ``examples/shop/gunicorn_local.py`` (gthread, preload) -- or, with
``--server granian``, with the kit's granian command (``python -m flaskprod.serve``
and the flags :func:`flaskprod.spec.servers.granian_argv` computes from the shop's
flaskprod.toml) -- on a
throwaway SQLite database (migrated and seeded) -- or, with ``--backend postgres``, on
a throwaway PostgreSQL and Redis as in production --, sends a bounded number of
requests over loopback to every kind of page, then reads each worker's ``VmRSS``
(resident memory, shared pages included), ``Pss`` (its fair share of shared pages) and
its private (unshared) memory from /proc. Prints one line per process and a JSON
summary.

    .venv/bin/python bench/shop_memory.py [--workers 2] [--requests 400]
        [--backend sqlite|postgres] [--worker-class gthread|sync] [--env NAME=VALUE ...]
        [--concurrency 1] [--mappings] [--server gunicorn|granian] [--granian-flag=--FLAG=VALUE ...]
        [--throughput SECONDS]

``--throughput`` then runs wrk (bounded: that many seconds, 8 connections) on the DB
read (``/api/products/1``) against the same server and prints its requests/s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

from flaskprod.spec.load import load_spec
from flaskprod.spec.servers import Listen, granian_argv
from flaskprod.stack import process
from flaskprod.stack.ports import free_port, retry_on_port_in_use
from flaskprod.stack.postgres import PostgresCluster
from flaskprod.stack.redis import RedisServer
from flaskprod.stack.state import children_of

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
sys.path.insert(0, str(SHOP))
import run_local  # noqa: E402  (examples/shop is not a package)

PATHS = ["/", "/api/products", "/api/products/1", "/products/1", "/login", "/health/ready"]


def kib(pid: int, file: str, field: str) -> int:
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/{file}")


@contextmanager
def postgres_and_redis(base: Path) -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL (database ``shop``) and Redis: the production backends."""
    base.chmod(0o755)  # PostgreSQL runs as the postgres user under it
    postgres = PostgresCluster(base / "pg", fsync=False, die_with_parent=True)
    redis = RedisServer(base / "redis", die_with_parent=True)
    try:
        postgres.start()
        redis.start()
        with postgres.connect() as conn:
            conn.execute("CREATE ROLE shop LOGIN")
            conn.execute("CREATE DATABASE shop OWNER shop")
        yield {
            "DATABASE_URL": f"postgresql+psycopg://shop@127.0.0.1:{postgres.port}/shop",
            "REDIS_URL": redis.url(),
        }
    finally:
        redis.stop()
        postgres.stop()
        shutil.rmtree(base / "pg", ignore_errors=True)


def private_kib(pid: int) -> int:
    """Pages only this process holds (Private_Clean + Private_Dirty)."""
    return kib(pid, "smaps_rollup", "Private_Clean") + kib(pid, "smaps_rollup", "Private_Dirty")


def send(base_url: str, requests: int, concurrency: int) -> int:
    """``requests`` GETs over ``concurrency`` threads (each with 4 connections, so that
    both workers and their threads serve); returns how many did not answer 200."""

    def loop(share: int) -> int:
        clients = [httpx.Client(base_url=base_url, timeout=10) for _ in range(4)]
        failed = 0
        try:
            for number in range(share):
                response = clients[number % 4].get(PATHS[number % len(PATHS)])
                failed += response.status_code != 200
        finally:
            for client in clients:
                client.close()
        return failed

    shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(loop, shares))


def server_argv(args: argparse.Namespace, port: int) -> list[str]:
    """gunicorn as ``make run-local`` starts it, or granian as the kit starts it."""
    if args.server == "granian":
        spec = load_spec(SHOP / "flaskprod.toml")
        argv = granian_argv(
            spec,
            Listen(host="127.0.0.1", port=str(port)),
            launcher=[sys.executable, "-m", "flaskprod.serve"],
        )
        # Extra flags go before the target (the last word); --workers as asked.
        return [*argv[:-1], "--workers", str(args.workers), *args.granian_flag, argv[-1]]
    return [
        *run_local.gunicorn_argv(f"127.0.0.1:{port}", args.workers),
        *("--worker-class", args.worker_class),
        *(("--threads", "1") if args.worker_class == "sync" else ()),
    ]


def throughput(base_url: str, seconds: int) -> float:
    """Requests/s of the DB read over ``seconds`` of wrk (1 thread, 8 connections)."""
    output = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", f"{base_url}/api/products/1"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")


def print_mappings(pid: int, top: int = 12) -> None:
    """What fills a process: RSS, PSS and private KiB per mapped file ([anon], [heap]:
    Python's objects and malloc), largest first."""
    totals: dict[str, list[int]] = {}
    name = "?"
    fields = ("Rss:", "Pss:", "Private_Clean:", "Private_Dirty:")
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and not parts[0].endswith(":"):
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif parts[0] in fields:
            row = totals.setdefault(name, [0, 0, 0])
            row[min(fields.index(parts[0]), 2)] += int(parts[1])
    print(f"largest worker {pid}: {'RSS':>6} {'PSS':>6} {'private':>8} MiB per mapping")
    for mapping, (r, p, u) in sorted(totals.items(), key=lambda item: -item[1][0])[:top]:
        print(f"  {r / 1024:>6.1f} {p / 1024:>6.1f} {u / 1024:>8.1f}  {mapping}")
    threads = len(list(Path(f"/proc/{pid}/task").iterdir()))
    print(f"  [anon] by kind ({threads} threads):")
    for kind, (count, rss) in sorted(anon_kinds(pid).items(), key=lambda item: -item[1][1]):
        print(f"  {rss / 1024:>6.1f} MiB RSS in {count:>3}  {kind}")


#: glibc reserves each extra malloc arena (one per thread that mallocs, up to
#: MALLOC_ARENA_MAX) as a 64 MiB block aligned on 64 MiB: rw part + PROT_NONE rest.
ARENA_KIB = 64 * 1024


def anon_kinds(pid: int) -> dict[str, list[int]]:
    """[anon] RSS split into glibc malloc arenas, thread stacks (a rw mapping right
    above a 4 KiB PROT_NONE guard; by size) and the rest (Python's object arenas,
    large mallocs): kind -> [mappings, RSS KiB]."""
    maps: list[tuple[int, int, str, int]] = []  # start, end, perms, rss (anonymous only)
    anonymous = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and not parts[0].endswith(":"):
            anonymous = len(parts) <= 5
            if anonymous:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                maps.append((start, end, parts[1], 0))
        elif anonymous and parts[0] == "Rss:":
            start, end, perms, _ = maps[-1]
            maps[-1] = (start, end, perms, int(parts[1]))
    kinds: dict[str, list[int]] = {}
    for index, (start, end, perms, rss) in enumerate(maps):
        if perms.startswith("---"):
            continue
        size = (end - start) // 1024
        after = maps[index + 1] if index + 1 < len(maps) else None
        before = maps[index - 1] if index else None
        reserve = after[1] - after[0] if after and after[0] == end and after[2][0] == "-" else 0
        guard = before is not None and before[1] == start and before[2][0] == "-"
        guard = guard and before is not None and before[1] - before[0] == 4096
        if start % (ARENA_KIB * 1024) == 0 and size + reserve // 1024 == ARENA_KIB:
            kind = "glibc malloc arena (64 MiB reserved each)"
        elif guard:
            kind = f"thread stack ({size / 1024:g} MiB)"
        else:
            kind = "other (Python object arenas, large mallocs)"
        row = kinds.setdefault(kind, [0, 0])
        row[0] += 1
        row[1] += rss
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=400, help="total, bounded")
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite (make run-local) or postgres: PostgreSQL + Redis, as in production",
    )
    parser.add_argument("--worker-class", choices=("gthread", "sync"), default="gthread")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment"
    )
    parser.add_argument("--concurrency", type=int, default=1, help="client threads sending at once")
    parser.add_argument(
        "--mappings", action="store_true", help="the largest worker's memory per mapping"
    )
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn")
    parser.add_argument(
        "--granian-flag", action="append", default=[], metavar="FLAG", help="extra granian flag"
    )
    parser.add_argument(
        "--throughput", type=int, default=0, metavar="SECONDS", help="wrk on the DB read after"
    )
    args = parser.parse_args()
    if args.granian_flag and args.server != "granian":
        parser.error("--granian-flag needs --server granian")
    extra = dict(item.split("=", 1) for item in args.env)

    with (
        tempfile.TemporaryDirectory(prefix="shop-memory-") as folder,
        postgres_and_redis(Path(folder)) if args.backend == "postgres" else _nothing() as backends,
    ):
        instance = Path(folder)
        env = run_local.environment(instance, "m" * 64) | backends | extra
        for command in (["db", "upgrade"], ["seed"]):
            subprocess.run(
                [sys.executable, "-m", "flask", "--app", "wsgi", *command],
                cwd=SHOP, env=env, check=True, capture_output=True,
            )  # fmt: skip

        def start(port: int) -> tuple[process.Process, int]:
            server = process.start(
                server_argv(args, port),
                name=f"{args.server} (shop)", log_path=instance / "server.log", cwd=SHOP, env=env,
                die_with_parent=True,
            )  # fmt: skip

            def up() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
                except httpx.HTTPError:
                    return False

            server.wait_ready(up, timeout=60, port=port)
            return server, port

        server, port = retry_on_port_in_use(start, port=free_port(), name=f"{args.server} (shop)")
        try:
            started = time.monotonic()
            failures = send(f"http://127.0.0.1:{port}", args.requests, args.concurrency)
            elapsed = time.monotonic() - started
            workers = children_of(server.pid)
            rows = [("master", server.pid)] + [("worker", pid) for pid in workers]
            print(f"{'process':8} {'pid':>7} {'VmRSS MiB':>10} {'Pss MiB':>8} {'private MiB':>12}")
            rss: list[int] = []
            pss: list[int] = []
            private: list[int] = []
            for role, pid in rows:
                r, p = kib(pid, "status", "VmRSS"), kib(pid, "smaps_rollup", "Pss")
                u = private_kib(pid)
                if role == "worker":
                    rss.append(r)
                    pss.append(p)
                    private.append(u)
                print(f"{role:8} {pid:>7} {r / 1024:>10.1f} {p / 1024:>8.1f} {u / 1024:>12.1f}")
            if args.mappings and workers:
                print_mappings(max(workers, key=lambda pid: kib(pid, "status", "VmRSS")))
            url = f"http://127.0.0.1:{port}"
            rate = throughput(url, args.throughput) if args.throughput else None
        finally:
            server.stop()

    summary = {
        "server": args.server,
        "backend": args.backend,
        "worker_class": args.worker_class if args.server == "gunicorn" else None,
        "granian_flags": args.granian_flag,
        "env": extra,
        "workers": len(rss),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "failed": failures,
        "seconds": round(elapsed, 2),
        "worker_rss_mib_each": [round(r / 1024, 1) for r in rss],
        "worker_rss_mib_sum": round(sum(rss) / 1024, 1),
        "worker_rss_mib_mean": round(sum(rss) / 1024 / max(1, len(rss)), 1),
        "worker_rss_mib_max": round(max(rss, default=0) / 1024, 1),
        "worker_pss_mib_mean": round(sum(pss) / 1024 / max(1, len(pss)), 1),
        "worker_private_mib_mean": round(sum(private) / 1024 / max(1, len(private)), 1),
        "db_read_req_per_s": rate,
        "python": sys.version.split()[0],
    }
    print(json.dumps(summary))
    return 1 if failures else 0


@contextmanager
def _nothing() -> Iterator[dict[str, str]]:
    yield {}


if __name__ == "__main__":
    sys.exit(main())
