"""``database.pgbouncer = true`` under ``flaskprod up``: the shop (granian, its RQ worker)
runs through a real PgBouncer in transaction mode — pages, orders and the readiness
check work, prepared statements are off — and PostgreSQL sees at most PgBouncer's pool
while many more app connections are busy at once."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench.shop_stack import RunningShop, copy_shop, running_shop  # noqa: E402

pytestmark = pytest.mark.services

POOL = 3
CLIENTS = 12
TOKEN = "pgbouncer-token-0123456789abcdef0123456789"


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningShop]:
    project = copy_shop("flaskprod-pgb-")
    spec = project / "flaskprod.toml"
    text = spec.read_text()
    assert text.count("\nlocal = true\n") == 2  # [database]'s comes first
    spec.write_text(
        text.replace(
            "\nlocal = true\n",
            f"\nlocal = true\npgbouncer = true\npgbouncer_pool_size = {POOL}\n",
            1,
        )
    )
    with running_shop(RunningShop.on_free_ports(project, token=TOKEN)) as stack:
        yield stack
    assert not stack.leftovers, f"flaskprod down left {stack.leftovers} running"


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def server_connections(direct: str) -> int:
    """The shop database's client backends PostgreSQL has, besides this one."""
    with psycopg.connect(direct, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_shop_works_through_pgbouncer(shop: RunningShop) -> None:
    env = shop.env
    assert env["DATABASE_URL"] != env["DIRECT_DATABASE_URL"]
    bouncer = shop.record("pgbouncer")
    assert env["DATABASE_URL"].endswith(f"@{bouncer.address}/shop")
    assert ":" in env["DATABASE_URL"].split("//", 1)[1].split("@", 1)[0]  # a password
    with shop.client() as client:
        assert client.get("/health/ready").status_code == 200
        assert client.get("/").status_code == 200
        products = client.get("/api/products").json()
        assert products
        # The same query many times: psycopg would prepare it from the 5th on, and a
        # prepared statement on one server connection is unknown on the next one.
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for n in range(8):
            one = client.get(f"/api/products/{products[0]['id']}", headers=headers)
            assert one.status_code == 200, one.text
            placed = client.post(
                "/api/orders",
                json={"items": [{"product_id": products[0]["id"], "quantity": 1}]},
                headers={**headers, "Idempotency-Key": f"pgb-order-{n}"},
            )
            assert placed.status_code == 201, placed.text
        listed = client.get("/api/orders", headers=headers).json()
    assert len(listed) >= 8
    with psycopg.connect(dsn(env["DIRECT_DATABASE_URL"])) as conn:
        row = conn.execute("SELECT rolconfig FROM pg_roles WHERE rolname = 'shop'").fetchone()
    assert row is not None and "statement_timeout=30s" in row[0]


def test_postgresql_sees_at_most_the_pool_while_many_app_connections_are_busy(
    shop: RunningShop,
) -> None:
    through = dsn(shop.env["DATABASE_URL"])
    direct = dsn(shop.env["DIRECT_DATABASE_URL"])
    connections = [
        psycopg.connect(through, autocommit=True, prepare_threshold=None, connect_timeout=5)
        for _ in range(CLIENTS)
    ]
    seen: list[int] = []
    done = threading.Event()

    def busy(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        conn.execute("SELECT pg_sleep(0.4)")

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            seen.append(server_connections(direct))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        threads = [threading.Thread(target=busy, args=(c,)) for c in connections]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        done.set()
        watcher.join()
        for conn in connections:
            conn.close()
    print(f"{CLIENTS} busy app connections, PostgreSQL saw at most {max(seen)} (pool {POOL})")
    # 12 sleeps of 0.4 s on 3 server connections: at least 4 rounds, so they queued
    assert elapsed >= 4 * 0.4 - 0.1, elapsed
    assert seen and max(seen) <= POOL, seen
    assert max(seen) == POOL, seen  # the pool was in use, not idle
