"""The numbers behind docs/scaling.md: what more app hosts cost the tiers they share.

    .venv/bin/python -m bench.scaling [--seconds 5] [--json PATH]

Three measurements, side by side in one run, on loopback, every server started here and
stopped by pid:

1. **The balancer hop**: nginx answering directly vs the same nginx behind a second
   nginx proxying to it with upstream keepalive (how a balancer runs). Reports req/s,
   p50/p99 and the CPU the proxying nginx spends per request: the balancer's cores per
   thousand requests per second.
2. **PostgreSQL per connection**: the memory an idle backend holds (PSS, shared pages
   counted once) with 200 connections open, and pgbench's read-only throughput with 10,
   100 and 400 clients each holding its own server connection.
3. **PgBouncer in transaction mode** in front of the same PostgreSQL: 400 clients
   sharing 20 server connections, against 400 direct connections. It is the PgBouncer
   ``up`` runs (:class:`flaskprod.stack.pgbouncer.PgBouncer`: SCRAM logins, the
   settings of every target); its CPU per transaction includes the 400 logins.

Every load is bounded (``--seconds`` per run); the figures are one machine's, the
ratios are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.perf.workloads import Target
from bench.perf.wrk import run_wrk
from flaskprod.stack import process
from flaskprod.stack.ca import ensure_ca
from flaskprod.stack.nginx import find_nginx
from flaskprod.stack.pgbouncer import PgBouncer
from flaskprod.stack.ports import free_port
from flaskprod.stack.postgres import PG_USER, PostgresCluster, temp_cluster_dir

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Room for 400 clients' SCRAM logins to PgBouncer (libpq derives the key, 4096 rounds,
#: per connection): 5.4 s on this 2-core machine at load 4.
SCRAM_LOGINS_SECONDS = 10


@dataclass(frozen=True)
class HopResult:
    path: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float | None  # of the nginx the client talks to


@dataclass(frozen=True)
class PgbenchResult:
    setup: str
    clients: int
    server_connections: int  # the most PostgreSQL backends seen during the run
    tps: float
    pooler_cpu_us_per_tx: float | None = None  # PgBouncer's own CPU per transaction


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in ticks
    return total / CLK_TCK


def pss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


# -- 1. the balancer hop ---------------------------------------------------------------


def _nginx_conf(folder: Path, server_block: str) -> Path:
    conf = folder / "nginx.conf"
    conf.write_text(
        "worker_processes 1;\n"
        f"pid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log warn;\n"
        "daemon off;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "  access_log off;\n"
        f"  client_body_temp_path {folder}/body;\n"
        f"  proxy_temp_path {folder}/proxy;\n"
        f"{server_block}\n"
        "}\n"
    )
    return conf


def _start_nginx(folder: Path, server_block: str, port: int) -> process.Process:
    folder.mkdir(parents=True, exist_ok=True)
    conf = _nginx_conf(folder, server_block)
    started = process.start(
        [find_nginx(), "-c", str(conf), "-p", str(folder)],
        name=f"nginx on {port}",
        log_path=folder / "stdout.log",
        die_with_parent=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return started
        except OSError:
            time.sleep(0.05)
    started.stop()
    raise RuntimeError(f"nginx on {port} did not start: {started.log_tail()}")


def balancer_hop(folder: Path, seconds: float) -> list[HopResult]:
    backend_port, proxy_port = free_port(), free_port()
    backend = _start_nginx(
        folder / "backend",
        f"  server {{ listen 127.0.0.1:{backend_port}; keepalive_requests 100000;\n"
        '    location / { return 200 "ok\\n"; } }',
        backend_port,
    )
    proxy_location = (
        "    location / { proxy_pass http://app_hosts; proxy_http_version 1.1;\n"
        '      proxy_set_header Connection ""; proxy_set_header Host $host;\n'
        "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } }"
    )
    upstream = (
        f"  upstream app_hosts {{ server 127.0.0.1:{backend_port} max_fails=3 fail_timeout=5s;"
        " keepalive 32; }\n"
    )
    proxy = _start_nginx(
        folder / "proxy",
        upstream + f"  server {{ listen 127.0.0.1:{proxy_port};\n" + proxy_location,
        proxy_port,
    )
    ca = ensure_ca(folder / "ca")
    tls_port = free_port()
    tls_proxy = _start_nginx(
        folder / "tls",
        upstream + f"  server {{ listen 127.0.0.1:{tls_port} ssl;\n"
        f"    ssl_certificate {ca.server_cert}; ssl_certificate_key {ca.server_key};\n"
        + proxy_location,
        tls_port,
    )
    target = Target(host="localhost", product_ids=(), token="")
    results = []
    try:
        backend_workers = process.descendants(backend.pid)
        before = cpu_seconds(backend_workers)
        direct = run_wrk(
            f"http://127.0.0.1:{backend_port}", "hello", target, seconds=seconds, connections=32
        )
        spent = cpu_seconds(backend_workers) - before
        results.append(
            HopResult(
                "direct to the answering nginx",
                direct.rps,
                direct.p50_ms,
                direct.p99_ms,
                spent / direct.requests * 1e6 if direct.requests else None,
            )
        )
        for label, url, server, workload in (
            ("through a proxying nginx (upstream keepalive)", f"http://127.0.0.1:{proxy_port}",
             proxy, "hello"),
            ("through a proxying nginx terminating TLS (keep-alive clients)",
             f"https://127.0.0.1:{tls_port}", tls_proxy, "hello"),
            ("through a proxying nginx terminating TLS (a new connection per request)",
             f"https://127.0.0.1:{tls_port}", tls_proxy, "hello-close"),
        ):  # fmt: skip
            workers = process.descendants(server.pid)
            before = cpu_seconds(workers)
            hop = run_wrk(url, workload, target, seconds=seconds, connections=32)
            spent = cpu_seconds(workers) - before
            results.append(
                HopResult(
                    label,
                    hop.rps,
                    hop.p50_ms,
                    hop.p99_ms,
                    spent / hop.requests * 1e6 if hop.requests else None,
                )
            )
    finally:
        tls_proxy.stop()
        proxy.stop()
        backend.stop()
    return results


# -- 2. and 3. PostgreSQL connections, PgBouncer ------------------------------------------


def _pgbench(
    cluster: PostgresCluster,
    port: int,
    clients: int,
    seconds: float,
    *,
    password: str = "",
    connecting: int = 0,
) -> tuple[float, int, int]:
    """pgbench's read-only tps through ``port``, the most backends PostgreSQL had open
    for the bench database meanwhile (sampled every 0.2 s), and the transactions it ran.
    ``password``: for PgBouncer's SCRAM (PostgreSQL itself trusts loopback);
    ``connecting``: seconds added to the run for the clients to log in (pgbench's
    duration includes that time, its tps leaves it out)."""
    argv = [
        str(cluster.bin_dir / "pgbench"),
        "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER,
        "-n", "-S", "-M", "simple",
        # At least 3 s: 400 clients take about a second to connect on a busy machine.
        "-c", str(clients), "-j", "2", "-T", str(max(3, round(seconds)) + connecting),
        "bench",
    ]  # fmt: skip
    env = {**os.environ, "PGPASSWORD": password} if password else None
    most = 0
    with (
        cluster.connect() as watcher,
        subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        ) as run,
    ):
        deadline = time.monotonic() + seconds + connecting + 60
        while run.poll() is None and time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'bench'"
            ).fetchone()
            most = max(most, int(row[0]) if row else 0)
            time.sleep(0.2)
        if run.poll() is None:
            run.kill()
        out = run.stdout.read() if run.stdout else ""
    match = re.search(r"tps = ([\d.]+)", out)
    processed = re.search(r"transactions actually processed: (\d+)", out)
    if run.returncode != 0 or match is None or processed is None:
        raise RuntimeError(f"pgbench failed (status {run.returncode}):\n{out[-2000:]}")
    return float(match.group(1)), most, int(processed.group(1))


def idle_backend_pss(cluster: PostgresCluster, connections: int) -> float:
    """Mean PSS (KiB) of a backend while ``connections`` idle ones are open."""
    import psycopg

    opened = [psycopg.connect(cluster.dsn("bench"), autocommit=True) for _ in range(connections)]
    try:
        for conn in opened:  # a backend that ran a query holds its catalog caches
            conn.execute("SELECT count(*) FROM pgbench_branches")
        pids = [int(conn.info.backend_pid) for conn in opened]
        return sum(pss_kib(pid) for pid in pids) / len(pids)
    finally:
        for conn in opened:
            conn.close()


def postgres_tier(seconds: float) -> tuple[float, list[PgbenchResult]]:
    cluster = PostgresCluster(
        temp_cluster_dir(prefix="flaskprod-bench-scaling-"),
        fsync=False,
        max_connections=450,
        die_with_parent=True,
    )
    cluster.start()
    results = []
    try:
        cluster.create_database("bench")
        subprocess.run(
            [str(cluster.bin_dir / "pgbench"), "-h", "127.0.0.1", "-p", str(cluster.port),
             "-U", PG_USER, "-i", "-q", "-s", "5", "bench"],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        pss = idle_backend_pss(cluster, 200)
        for clients in (10, 100, 400):
            # A fork per client: 400 took over 3 s to connect at load 13 here (pgbench's
            # tps leaves connecting out; a run shorter than it measured nothing)
            tps, backends, _ = _pgbench(
                cluster, cluster.port, clients, seconds, connecting=clients // 40
            )
            results.append(PgbenchResult("direct", clients, backends, tps))
        # The PgBouncer `up` runs (flaskprod.stack.pgbouncer), with the settings of every
        # target. As root it runs as postgres: a folder that user can reach.
        bouncer_dir = temp_cluster_dir(prefix="flaskprod-bench-pgbouncer-")
        bouncer = PgBouncer(
            bouncer_dir,
            server_port=cluster.port,
            database="bench",
            user=PG_USER,
            password=secrets.token_urlsafe(16),
            pool_size=20,
            max_clients=2000,
            log_path=bouncer_dir.parent / "pgbouncer.log",
            die_with_parent=True,
        )
        bouncer.start()
        try:
            assert bouncer.pid is not None
            pids = [bouncer.pid]
            cpu_before = cpu_seconds(pids)
            tps, backends, transactions = _pgbench(
                cluster, bouncer.port, 400, seconds, password=bouncer.password,
                connecting=SCRAM_LOGINS_SECONDS,
            )  # fmt: skip
            # The CPU covers the whole run, logins included, per transaction it served.
            cpu_us = (cpu_seconds(pids) - cpu_before) / transactions * 1e6
            setup = "PgBouncer (pool 20), transaction mode"
            results.append(PgbenchResult(setup, 400, backends, tps, cpu_us))
        finally:
            bouncer.stop()
            shutil.rmtree(bouncer_dir.parent, ignore_errors=True)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    return pss, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = time.time()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="flaskprod-bench-scaling-") as tmp:
        hop = balancer_hop(Path(tmp) / "hop", args.seconds)
        pss, pgbench = postgres_tier(args.seconds)
    print(f"load average at start: {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}; 2-core machine")
    print("\n## The balancer hop (nginx, 1 worker each, wrk 32 connections)\n")
    print("| path | req/s | p50 ms | p99 ms | CPU µs/request of the nginx wrk talks to |")
    print("|---|---:|---:|---:|---:|")
    for row in hop:
        cpu = f"{row.cpu_us_per_request:.0f}" if row.cpu_us_per_request else "-"
        print(f"| {row.path} | {row.rps:,.0f} | {row.p50_ms:.2f} | {row.p99_ms:.2f} | {cpu} |")
    print(
        f"\n## PostgreSQL\n\nidle backend after a query, with 200 open: {pss / 1024:.1f} MiB PSS\n"
    )
    print("| setup | clients | most server connections | tps (pgbench -S) | pooler CPU µs/tx |")
    print("|---|---:|---:|---:|---:|")
    for result in pgbench:
        pooler = f"{result.pooler_cpu_us_per_tx:.0f}" if result.pooler_cpu_us_per_tx else "-"
        print(
            f"| {result.setup} | {result.clients} | {result.server_connections} "
            f"| {result.tps:,.0f} | {pooler} |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "started": started,
                    "load": load,
                    "hop": [asdict(r) for r in hop],
                    "idle_backend_pss_kib": pss,
                    "pgbench": [asdict(r) for r in pgbench],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
