"""Figures of a deploy over several hosts (a balancer, two app hosts, a database host on
the lab's private bridge; docs/deploy.md "Several hosts", docs/reliability.md):

- provisioning the four fresh hosts one after the other, then (fresh again) in parallel;
- the time a rolling release takes per app host (out, release, ready, back in);
- throughput through the balancer with 1 and with 2 app hosts (web2 marked down);
- the latency the balancer hop adds (TLS at the balancer + one more proxy).

    .venv/bin/python -m bench.multihost [--doc]

Every host is a container on this one machine: the load generator, the balancer, both
app hosts and PostgreSQL share its cores, so throughput is bound by the cores, not by
the number of app hosts (said with the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.deploy_host import TOKEN, HostShop, commit_change, git, shop_repository  # noqa: E402
from bench.doc_block import markers, ran_on, write_block  # noqa: E402
from bench.faults.load import Load, LoadPlan, summarize, verify_orders  # noqa: E402
from flaskprod.deploy.provision import Kit, TlsFiles  # noqa: E402
from flaskprod.deploy.roles import Topology  # noqa: E402
from flaskprod.deploy.several import (  # noqa: E402
    balancer_for,
    connected,
    place,
    provision_all,
    release_all,
)
from flaskprod.lab import Lab, LabHost  # noqa: E402
from flaskprod.lab.pebble import Pebble  # noqa: E402
from flaskprod.spec.load import load_spec  # noqa: E402
from flaskprod.spec.model import Spec  # noqa: E402

DOCS = (REPO / "docs" / "deploy.md", REPO / "docs" / "reliability.md")
START, END = markers("multihost")
ADDRESSES = {"lb": "10.77.0.10", "web1": "10.77.0.11", "web2": "10.77.0.12", "db1": "10.77.0.13"}
ROLES = '\n[deploy.balancer]\nhost = "lb"\n\n[deploy.database]\nhost = "db1"\n'

#: Run on the balancer by python3: ``threads`` clients with keep-alive GET ``path`` for
#: ``seconds`` (or ``count`` requests each), either through the balancer's nginx (HTTPS
#: on its loopback) or straight to an app host's nginx (HTTP on its private address).
#: Prints JSON: requests, errors, seconds, requests/s, latency percentiles (ms).
CLIENT = r"""
import http.client, json, ssl, sys, threading, time
mode, target, path, threads, seconds, count = sys.argv[1:7]
threads, seconds, count = int(threads), float(seconds), int(count)
context = ssl._create_unverified_context()
latencies, errors, lock = [], [], threading.Lock()
def connect():
    if mode == "balancer":
        return http.client.HTTPSConnection(target, 443, context=context, timeout=10)
    return http.client.HTTPConnection(target, 80, timeout=10)
headers = {"Host": "localhost", "X-Forwarded-Proto": "https"}
end = time.monotonic() + seconds
def client():
    conn, mine, bad = connect(), [], []
    for _ in range(count):
        if time.monotonic() > end:
            break
        began = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse(); answer.read()
            (mine if answer.status == 200 else bad).append(time.perf_counter() - began)
        except OSError as error:
            bad.append(0.0); conn.close(); conn = connect()
    with lock:
        latencies.extend(mine); errors.extend(bad)
started = time.monotonic()
workers = [threading.Thread(target=client) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
took = time.monotonic() - started
latencies.sort()
def pick(q):
    if not latencies:
        return None
    return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)
print(json.dumps({"requests": len(latencies), "errors": len(errors), "seconds": round(took, 2),
                  "rps": round(len(latencies) / took, 1), "p50_ms": pick(0.5), "p90_ms": pick(0.9),
                  "p99_ms": pick(0.99)}))
"""


def several_hosts(project: Path) -> None:
    """The shop's spec as a user edits it for several hosts (addresses discovered),
    committed."""
    spec = project / "flaskprod.toml"
    text = spec.read_text().replace("\nhosts = []\n", '\nhosts = ["web1", "web2"]\n')
    section = text.index("\n[container]\n")
    spec.write_text(text[:section] + "\n" + ROLES + text[section:])
    git(project, "commit", "-qam", "several hosts")


def boot(lab: Lab) -> dict[str, LabHost]:
    # web2 on a disk of its own: it loses power and boots again
    return {
        name: lab.boot(name, private_address=a, persistent=name == "web2")
        for name, a in ADDRESSES.items()
    }


def under_load(shop: HostShop, prefix: str, action: Any) -> dict[str, Any]:
    """``action`` while the bounded load of the fault suite runs through the balancer;
    what the clients saw and the orders checked in PostgreSQL."""
    plan = LoadPlan(
        rate=12, duration=90, max_requests=1090, post_every=3,
        get_paths=("/", "/api/products"), threads=4,
    )  # fmt: skip
    load = Load(shop, plan, prefix=f"{prefix}-{time.time_ns()}-").start()  # type: ignore[arg-type]
    try:
        load.wait_sent(20, timeout=20)
        load.mark("fault")
        outcome = action()
        load.mark("done")
        load.wait_sent(load.sent() + 40, timeout=20)
    finally:
        record = load.stop()
    orders = verify_orders(shop, record)  # type: ignore[arg-type]
    return {"load": summarize(record), "orders": orders, "outcome": outcome}


def power_cut_and_back(shop: HostShop, web2: LabHost) -> dict[str, Any]:
    web2.power_cut()
    time.sleep(5)  # under load without it
    began = time.monotonic()
    web2.power_on()
    log = "/var/log/shop/nginx.access.log"
    seen = int(web2.run(f"wc -l < {log}").stdout.strip() or 0)
    with shop.client() as client:
        while time.monotonic() - began < 60:
            client.get("/")
            if int(web2.run(f"wc -l < {log}").stdout.strip() or 0) > seen:
                return {"serving_again_after_power_on_s": round(time.monotonic() - began, 1)}
            time.sleep(0.2)
    return {"serving_again_after_power_on_s": None}


def provisioned(lab: Lab, spec: Spec, project: Path, *, parallel: bool, echo: Any) -> float:
    topology = Topology.of(spec)
    assert topology is not None
    began = time.monotonic()
    with connected(topology, lab.ssh_config, False) as remotes:
        placement = place(topology, remotes, echo)
        provision_all(
            placement,
            remotes,
            spec=spec,
            kit=Kit.read(spec, project),
            tls_files=TlsFiles(),
            dry_run=False,
            echo=echo,
            parallel=parallel,
        )
    return round(time.monotonic() - began, 1)


def client(lb: LabHost, mode: str, target: str, threads: int, seconds: float, count: int) -> Any:
    argv = ["python3", "-c", CLIENT, mode, target, "/", str(threads), str(seconds), str(count)]
    done = lb.run(argv, timeout=seconds + 120)
    return json.loads(done.stdout)


def measure(echo: Any = print) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="flaskprod-multihost-bench-"))
    lab = Lab.start(work / "lab")
    figures: dict[str, Any] = {}
    try:
        hosts = boot(lab)
        pebble = Pebble.start(hosts["lb"], work / "pebble")
        project = shop_repository(
            work, acme_directory=pebble.directory, acme_ca=str(pebble.ca_file)
        )
        several_hosts(project)
        spec = load_spec(project / "flaskprod.toml")
        figures["provision_serial_s"] = provisioned(lab, spec, project, parallel=False, echo=echo)
        for host in hosts.values():
            host.kill()
        hosts = boot(lab)  # fresh again, the same names and addresses
        pebble = Pebble.start(hosts["lb"], work / "pebble")  # its CA again: the spec names it
        figures["provision_parallel_s"] = provisioned(lab, spec, project, parallel=True, echo=echo)
        topology = Topology.of(spec)
        assert topology is not None
        with connected(topology, lab.ssh_config, False) as remotes:
            placement = place(topology, remotes, echo)
            seed = (f"flask seed --token {TOKEN}",)
            figures["first_roll_s"] = release_all(
                placement, remotes, spec=spec, project=project, echo=echo,
                allow_dirty=False, release_commands=seed,
            )  # fmt: skip
            commit_change(project, "shop/static/version.txt", "v2\n", "v2")
            figures["roll_s"] = release_all(
                placement, remotes, spec=spec, project=project, echo=echo,
                allow_dirty=False, release_commands=(),
            )  # fmt: skip
            lb = hosts["lb"]
            client(lb, "balancer", "localhost", 4, 5, 100)  # warm: caches, keep-alive
            hop: dict[str, Any] = {}
            hop["direct"] = client(lb, "direct", ADDRESSES["web1"], 1, 60, 300)
            hop["balancer"] = client(lb, "balancer", "localhost", 1, 60, 300)
            figures["hop"] = hop
            balancer = balancer_for(placement, remotes, spec, echo)
            throughput: dict[str, Any] = {}
            throughput["2 app hosts"] = client(lb, "balancer", "localhost", 8, 15, 100000)
            balancer.out((ADDRESSES["web2"],), "bench: web2 out")
            throughput["1 app host"] = client(lb, "balancer", "localhost", 8, 15, 100000)
            balancer.out((), "bench: web2 back")
            figures["throughput"] = throughput
            roots = work / "roots.pem"
            roots.write_text(pebble.issuing_roots())
            shop = HostShop(remotes["db1"], spec, hosts["lb"].forward(443), roots)
            commit_change(project, "shop/static/version.txt", "v3\n", "v3")
            figures["rolling release under load"] = under_load(
                shop,
                "roll",
                lambda: release_all(
                    placement, remotes, spec=spec, project=project, echo=echo,
                    allow_dirty=False, release_commands=(),
                ),
            )  # fmt: skip
            figures["web2 powered off under load"] = under_load(
                shop, "poweroff", lambda: power_cut_and_back(shop, hosts["web2"])
            )
            workers = spec.server.workers
            figures["app_server"] = f"{spec.server.kind}, {workers or 'auto'} workers per host"
    finally:
        lab.stop()
    return {**ran_on(load_before), "figures": figures}


def section(result: dict[str, Any]) -> str:
    f = result["figures"]
    hop = f["hop"]
    added = round(hop["balancer"]["p50_ms"] - hop["direct"]["p50_ms"], 2)
    rows = [
        "| figure | value |",
        "|---|---|",
        f"| provisioning 4 fresh hosts, one after the other | {f['provision_serial_s']} s |",
        f"| provisioning 4 fresh hosts, in parallel (threads) | {f['provision_parallel_s']} s |",
        *[
            f"| rolling release of a new revision, {host} (out, release, ready, back in) | {s} s |"
            for host, s in f["roll_s"].items()
        ],
        *[
            f"| first release, {host} (venv built from nothing, migrations + seed on web1) "
            f"| {s} s |"
            for host, s in f["first_roll_s"].items()
        ],
    ]
    for label, run in f["throughput"].items():
        rows.append(
            f"| GET / through the balancer, 8 clients, {label} | {run['rps']} req/s "
            f"(p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, {run['errors']} errors) |"
        )
    rows.append(
        f"| GET /, one client, keep-alive: straight to web1's nginx / through the balancer "
        f"(HTTPS) | p50 {hop['direct']['p50_ms']} / {hop['balancer']['p50_ms']} ms: "
        f"the hop adds {added} ms |"
    )
    for name in ("rolling release under load", "web2 powered off under load"):
        run = f[name]
        load, orders = run["load"], run["orders"]
        rows.append(
            f"| {name}: {load['sent']} requests ({load['load']}) | failed "
            f"{load['failed_total_first_attempt']} first / {load['failed_total_final']} final, "
            f"orders {orders['acknowledged']} acknowledged, {orders['lost']} lost, "
            f"{orders['duplicated']} duplicated; "
            f"{json.dumps(run['outcome'])} |"
        )
    return "\n".join(
        [
            START,
            "### Several hosts: measured",
            "",
            f"`python -m bench.multihost --doc` on {result['machine']}, {result['when']} "
            f"(load average {result['load']}, shared with other work): four lab hosts "
            "(lb, web1, web2, db1) on one private bridge, the shop "
            f"({f['app_server']}); clients run on the balancer host itself.",
            "",
            *rows,
            "",
            "All four hosts, the clients and PostgreSQL share this machine's 2 cores: the "
            "throughput is bound by the cores, so a second app host cannot double it here "
            "(on separate machines each app host brings its own cores). Provisioning in "
            "parallel overlaps the hosts' apt and SSH round trips; the database host's "
            "secrets are the one wait (the app hosts' env files need them).",
            END,
        ]
    )


def write_doc(result: dict[str, Any], doc: Path) -> None:
    write_block(doc, section(result), START, END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", action="store_true", help="write the figures into the docs")
    options = parser.parse_args(argv)
    result = measure()
    print(json.dumps(result, indent=2))
    print(section(result))
    if options.doc:
        for doc in DOCS:
            write_doc(result, doc)
            print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
