"""What ``Production(app)`` costs per request, in process (no network, no server).

Three figures, best (min) and median of R rounds of N requests each, through the
WSGI callable. CPU time of this process (``time.process_time``), not wall time, so
that other load on the machine (a shared 2-core box) does not count:
- plain Flask ``"ok"`` (with a SECRET_KEY, as every real app);
- the same app with ``Production(app)`` (request id, access line as JSON into
  /dev/null, security headers, error handlers, 413 guard);
- the JSON formatter alone, per access record.

With ``--postgres``, also what the database stall guard (``flaskprod.runtime.stall``)
costs per statement: ``SELECT 1`` through a pooled SQLAlchemy engine on a throwaway
local PostgreSQL, with and without the guard's listeners (CPU time of this process;
the server's work is not counted).

    .venv/bin/python bench/runtime_overhead.py [--requests 5000] [--rounds 5] [--postgres]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import time
from typing import Any

from flask import Flask

KEY = "b" * 8 + "f3c9a1b27d4e8f60c5b1a9e2d7f4c8b3"


def build(production: bool) -> Flask:
    app = Flask("bench")
    # Both have a secret key (any real app does): Flask then opens the signed-cookie
    # session on every request, which is not Production's cost.
    app.secret_key = KEY
    if production:
        from flaskprod import Production

        os.environ |= {
            "FLASKPROD_ENV": "production",
            "SECRET_KEY": KEY,
            "DATABASE_URL": "sqlite://",
        }
        Production(app)

    @app.get("/")
    def index() -> str:
        return "ok"

    return app


def per_request_us(app: Flask, requests: int) -> float:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_FORWARDED_FOR": "203.0.113.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    start = time.process_time()
    for _ in range(requests):
        for _chunk in app(dict(environ), start_response):
            pass
    return (time.process_time() - start) / requests * 1e6


def formatter_us(records: int) -> float:
    from flaskprod.runtime.logging import JsonFormatter

    formatter = JsonFormatter()
    record = logging.LogRecord(
        "flaskprod.access",
        logging.INFO,
        __file__,
        1,
        "%s %s %s %sms",
        ("GET", "/", 200, 0.42),
        None,
    )
    record.__dict__.update(
        request_id="0" * 32,
        method="GET",
        path="/",
        status=200,
        duration_ms=0.42,
        remote_addr="127.0.0.1",
    )
    start = time.process_time()
    for _ in range(records):
        formatter.format(record)
    return (time.process_time() - start) / records * 1e6


def statement_us(engine: Any, statements: int) -> float:
    from sqlalchemy import text

    query = text("SELECT 1")
    with engine.connect() as connection:
        start = time.process_time()
        for _ in range(statements):
            connection.execute(query)
        return (time.process_time() - start) / statements * 1e6


def wrapper_us(engine: Any, calls: int) -> float:
    """What the guard adds to one statement, without the database's noise: its cursor
    wrapper (the in-flight store and pop) around a cursor class that does nothing."""
    from flaskprod.runtime.stall import guard_engine

    class Idle:
        __slots__ = ()

        def execute(self, *args: Any, **kwargs: Any) -> None:
            return None

    guard = guard_engine(engine)
    assert guard is not None
    plain, wrapped = Idle(), guard._cursor_class(Idle)()
    start = time.process_time()
    for _ in range(calls):
        plain.execute("SELECT 1")
    base = time.process_time() - start
    start = time.process_time()
    for _ in range(calls):
        wrapped.execute("SELECT 1")
    return (time.process_time() - start - base) / calls * 1e6


def guard_cost(statements: int, rounds: int) -> None:
    """Per-statement CPU time with and without the stall guard, on a temp PostgreSQL."""
    import shutil

    from sqlalchemy import create_engine

    from flaskprod.runtime.stall import guard_engine
    from flaskprod.stack.postgres import PostgresCluster, temp_cluster_dir

    data = temp_cluster_dir(prefix="flaskprod-bench-pg-")
    cluster = PostgresCluster(data, fsync=False, die_with_parent=True)
    try:
        cluster.start()
        plain = create_engine(cluster.url(), pool_pre_ping=True)
        guarded = create_engine(cluster.url(), pool_pre_ping=True)
        guard_engine(guarded)
        results: dict[str, list[float]] = {"plain": [], "guarded": []}
        for _ in range(rounds):
            results["plain"].append(statement_us(plain, statements))
            results["guarded"].append(statement_us(guarded, statements))
        for name, label in (("plain", "SELECT 1, no guard"), ("guarded", "SELECT 1, stall guard")):
            values = results[name]
            print(f"{label:24s} {min(values):6.1f} {statistics.median(values):8.1f}")
        extra = min(results["guarded"]) - min(results["plain"])
        print(f"The stall guard's cost per statement (best rounds): {extra:.1f} us")
        own = [wrapper_us(guarded, statements * 20) for _ in range(rounds)]
        print(
            f"The guard's own work per statement (its cursor wrapper, no database): "
            f"{min(own):.2f} us best, {statistics.median(own):.2f} median"
        )
        plain.dispose()
        guarded.dispose()
    finally:
        cluster.stop()
        shutil.rmtree(data.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="Also the stall guard's cost.")
    args = parser.parse_args()
    plain = build(production=False)
    hardened = build(production=True)
    # The access lines go to /dev/null: measure formatting and writing, not a terminal.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    results: dict[str, list[float]] = {"plain": [], "production": [], "formatter": []}
    for _ in range(args.rounds):
        results["plain"].append(per_request_us(plain, args.requests))
        results["production"].append(per_request_us(hardened, args.requests))
        results["formatter"].append(formatter_us(args.requests))
    sys.stdout = sys.__stdout__
    print("                       best   median (us)")
    for name, label in (
        ("plain", "plain Flask, per request"),
        ("production", "with Production(app)"),
        ("formatter", "JsonFormatter.format"),
    ):
        values = results[name]
        print(f"{label:24s} {min(values):6.1f} {statistics.median(values):8.1f}")
    extra = min(results["production"]) - min(results["plain"])
    print(f"Production's cost per request (best rounds): {extra:.1f} us")
    if args.postgres:
        guard_cost(args.requests, args.rounds)


if __name__ == "__main__":
    main()
