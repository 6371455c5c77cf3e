"""Every ``server.worker_class``, and granian (``server.kind``), really serves the shop.

For sync, gthread and gevent: the shop's kit rendered by ``flaskprod render`` from its
own flaskprod.toml (only ``worker_class`` changed, one worker), and a real gunicorn
started exactly as ``up`` starts it (the rendered ``deploy/gunicorn.conf.py`` with
``preload_app``, ``up``'s overlay flags, the app's environment) on the suite's
PostgreSQL and Redis. Each must answer readiness (database, Redis, migrations) and a
concurrent burst of requests.

granian runs the command the kit renders (``flaskprod.serve`` + the flags of
``spec/servers.py``, bound to a socket here), as ``up`` starts it.

gevent once hung here: its worker patches the standard library only after the fork,
and with ``preload_app`` the app (psycopg's C wait, the readiness thread pool's queue)
was imported unpatched in the master. The rendered config now patches first; the
cooperation test proves a request blocked in PostgreSQL does not block the others
in the same worker (and, as a control, that a sync worker does exactly that).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from flaskprod.spec.load import load_spec
from flaskprod.stack import granian as stack_granian
from flaskprod.stack import gunicorn as stack_gunicorn
from flaskprod.stack import process
from flaskprod.stack.postgres import PostgresCluster
from flaskprod.stack.redis import RedisServer

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
BIN = Path(sys.executable).parent
TOKEN = "worker-models-token-" + "5" * 24
SECRET = "worker-models-secret-" + "s" * 40
#: What nginx sends on every proxied request (the app trusts the socket's peer).
PROXIED = {"Host": "localhost", "X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1"}


@dataclass
class Served:
    kind: str
    socket: Path
    server: process.Process
    dsn: str

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url="http://localhost",
            headers=PROXIED,
            timeout=timeout,
        )


def _copy_shop(folder: Path, worker_class: str) -> Path:
    """The shop with ``worker_class`` (gunicorn, server.kind = "gunicorn") or as it is
    ("granian": its default server), and one worker."""
    project = folder / "shop"
    shutil.copytree(
        SHOP,
        project,
        ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__", "*.pyc"),
    )
    spec = project / "flaskprod.toml"
    text = spec.read_text()
    assert re.search(r'(?m)^kind = "granian"$', text), "examples/shop/flaskprod.toml: kind?"
    if worker_class != "granian":
        text = text.replace('kind = "granian"', 'kind = "gunicorn"')
        text, count = re.subn(
            r'(?m)^# worker_class = ".*"$', f'worker_class = "{worker_class}"', text
        )
        assert count == 1, "examples/shop/flaskprod.toml has no '# worker_class' line"
    # One worker: the cooperation test needs every request to reach the same process.
    text, count = re.subn(r"(?m)^# workers = \d+$", "workers = 1", text)
    assert count == 1, "examples/shop/flaskprod.toml has no '# workers = N' line"
    spec.write_text(text)
    return project


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def shop_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A database for the shop, created fresh for this module (migrated per model)."""
    name = f"worker_models_{os.getpid()}"
    postgres_cluster.resume()
    postgres_cluster.drop_database(name)
    yield postgres_cluster.create_database(name)
    postgres_cluster.drop_database(name)


@pytest.fixture(scope="module", params=["sync", "gthread", "gevent", "granian"])
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_cluster: PostgresCluster,
    redis_server: RedisServer,
    shop_database: str,
) -> Iterator[Served]:
    kind: str = request.param
    folder = tmp_path_factory.mktemp(f"workers-{kind}")
    project = _copy_shop(folder, kind)
    _run([str(BIN / "flaskprod"), "render", str(project)], project, dict(os.environ))
    spec = load_spec(project / "flaskprod.toml")
    conf = project / "deploy" / "gunicorn.conf.py"
    if kind == "granian":
        assert spec.server.kind == "granian" and not conf.exists()
    else:
        assert spec.server.worker_class == kind and spec.server.preload_app
        assert f'worker_class = "{kind}"' in conf.read_text()

    postgres_cluster.resume()
    redis_server.resume()
    env = stack_gunicorn.app_environment(
        spec,
        os.environ,
        secret_key=SECRET,
        database_url=shop_database,
        redis_url=redis_server.url(),
        media_root=folder / "media",
    )
    flask = [str(BIN / "flask"), "--app", spec.app.target]
    _run([*flask, "db", "upgrade"], project, env)  # idempotent: the 2nd model finds it at head
    _run([*flask, "seed", "--token", TOKEN], project, env)

    sock = folder / "server.sock"
    if kind == "granian":
        argv = stack_granian.command(spec, socket_path=sock)
    else:
        argv = stack_gunicorn.command(
            spec, conf=conf, socket_path=sock, project=project, pid_file=folder / "gunicorn.pid"
        )
    server = process.start(
        argv,
        name=kind if kind == "granian" else f"gunicorn ({kind})",
        log_path=folder / "server.log",
        cwd=project,
        env=env,
        die_with_parent=True,
    )
    served = Served(kind, sock, server, postgres_cluster.dsn(shop_database.rpartition("/")[2]))

    def ready() -> bool:
        if not stack_gunicorn.socket_accepts(sock):
            return False
        try:
            with served.client(timeout=3) as client:
                return client.get("/health/ready").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        server.wait_ready(ready, timeout=60)
        yield served
    finally:
        server.stop()


def test_readiness_checks_the_database_and_redis(served: Served) -> None:
    with served.client() as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.text
    checks = response.json()["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "database": "ok",
        "redis": "ok",
        "migrations": "ok",
    }
    log = served.server.log_path.read_text(errors="replace")
    if served.kind == "granian":
        # granian, with the spec's one worker.
        assert "Spawning worker-1 with PID" in log and "worker-2" not in log, log[-2000:]
        assert "granian" in Path(f"/proc/{served.server.pid}/cmdline").read_text()
        return
    # gunicorn runs a sync worker with threads > 1 as gthread: the kit must not.
    assert f"Using worker: {served.kind}\n" in log, log[-2000:]


def test_a_concurrent_burst_is_served(served: Served) -> None:
    """64 requests at once (cached list, DB reads, an order, readiness), 16 in flight."""
    with served.client() as client:
        ids = [item["id"] for item in client.get("/api/products").json()]
    assert ids, "the seed created no products"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def one(number: int) -> int:
        with served.client() as client:
            kind = number % 4
            if kind == 0:
                return client.get("/api/products").status_code
            if kind == 1:
                return client.get(f"/api/products/{ids[number % len(ids)]}").status_code
            if kind == 2:
                return client.get("/health/ready").status_code
            order = {"items": [{"product_id": ids[0], "quantity": 1}]}
            headers = auth | {"Idempotency-Key": f"{served.kind}-burst-{number}"}
            return client.post("/api/orders", json=order, headers=headers).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(64)))
    assert statuses.count(201) == 16, statuses  # every order created
    assert all(status in (200, 201) for status in statuses), statuses
    assert served.server.alive()


def test_a_request_waiting_on_postgres_does_not_block_the_worker(served: Served) -> None:
    """One worker. The test locks the products table; a product read then waits in
    PostgreSQL. A gthread or gevent worker answers /health meanwhile (a thread or a
    greenlet waits, not the process); a sync worker cannot, which is the control
    showing that this probe tells the two apart."""
    import psycopg

    answered = threading.Event()
    outcome: dict[str, int] = {}

    def read_product() -> None:
        with served.client(timeout=20) as client:
            outcome["product"] = client.get("/api/products/1").status_code

    def health() -> None:
        with served.client(timeout=20) as client:
            outcome["health"] = client.get("/health").status_code
        answered.set()

    with psycopg.connect(served.dsn, connect_timeout=5) as lock:
        lock.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        reader = threading.Thread(target=read_product)
        reader.start()
        _wait_until_blocked(lock)  # the read now waits for our lock in PostgreSQL
        checker = threading.Thread(target=health)
        checker.start()
        # Bounded: a cooperative worker answers at once; a blocked one never does
        # while the lock is held (2 s is the control's cost for sync).
        answered_while_locked = answered.wait(10 if served.kind != "sync" else 2)
        lock.rollback()  # releases the lock: the read completes
    reader.join(20)
    checker.join(20)
    assert outcome == {"product": 200, "health": 200}, outcome
    if served.kind == "sync":
        assert not answered_while_locked, "a sync worker answered while its request waited?"
    else:
        assert answered_while_locked, (
            f"{served.kind}: /health was not answered while another request of the same "
            "worker waited in PostgreSQL (the worker blocked)"
        )


def _wait_until_blocked(lock: object) -> None:
    """Until a backend waits for a lock on our table (bounded: 10 s)."""
    import time

    import psycopg

    assert isinstance(lock, psycopg.Connection)
    deadline = time.monotonic() + 10
    with psycopg.connect(lock.info.dsn, autocommit=True, connect_timeout=5) as probe:
        while time.monotonic() < deadline:
            row = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    pytest.fail("the product read never waited for the table lock")


def test_a_reload_replaces_the_worker_and_it_serves(served: Served) -> None:
    """HUP (what `flaskprod reload` and systemd's reload send): the master forks a
    new worker from its preloaded app. With gevent the master itself runs patched.
    granian spawns a new worker (a fresh import of the app), then stops the old one."""
    if served.kind == "granian":
        new, old = stack_granian.replace_workers(served.server.pid, timeout=60)
    else:
        new, old = stack_gunicorn.start_new_workers(served.server.pid, expected=1, timeout=30)
        assert stack_gunicorn.wait_gone(served.server.pid, old, timeout=30)
    assert new and not set(new) & old
    with served.client() as client:
        response = client.get("/health/ready")
    assert response.status_code == 200, response.text
