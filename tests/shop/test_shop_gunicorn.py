"""The shop under a real gunicorn, as ``make run-local`` starts it and on PostgreSQL + Redis.

- ``run_local.py`` (what ``make run-local`` runs): production profile on SQLite, secret
  created once with mode 0600, migrations and seed first, the URL printed when ready;
  /health, /health/ready with a database check, /api/products; every response has
  X-Request-ID; every line gunicorn and the app print is JSON.
- Two concurrent POSTs with the same Idempotency-Key against gunicorn workers on
  PostgreSQL create exactly one order.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from shop_helpers import SECRET, SHOP_DIR, in_shop

from flaskprod.stack import process
from flaskprod.stack.ports import free_port, retry_on_port_in_use
from flaskprod.stack.redis import RedisServer

sys.path.insert(0, str(SHOP_DIR))
import run_local


def _log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def _start_make_run(instance: Path, out: Path, err: Path) -> tuple[subprocess.Popen[bytes], int]:
    """run_local.py on a free port (a few tries: the port may be taken meanwhile)."""
    for _ in range(3):
        port = free_port()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            server = subprocess.Popen(
                [sys.executable, str(SHOP_DIR / "run_local.py"), "--port", str(port),
                 "--instance", str(instance)],
                stdout=stdout, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while server.poll() is None and time.monotonic() < deadline:
            if '"url"' in out.read_text():
                return server, port
            time.sleep(0.05)
        process.stop_pid(server.pid, popen=server)
        if "in use" not in err.read_text():
            break
    pytest.fail(f"make run-local did not become ready:\n{err.read_text()[-3000:]}")


def test_make_run_local_serves_the_shop_with_json_logs(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    server, port = _start_make_run(instance, out, err)
    try:
        base = f"http://127.0.0.1:{port}"
        assert f'"url": "{base}/"' in out.read_text()  # the URL, printed once ready
        with httpx.Client(base_url=base, timeout=5) as client:
            responses = [
                client.get("/health"),
                client.get("/health/ready"),
                client.get("/api/products"),
                client.get("/api/nope"),
                client.get("/"),
                client.post("/api/orders", json={"items": []}),
            ]
        assert [r.status_code for r in responses] == [200, 200, 200, 404, 200, 401]
        assert all(r.headers.get("X-Request-ID") for r in responses)
        ready = responses[1].json()
        assert ready["checks"]["database"]["status"] == "ok"
        assert ready["checks"]["migrations"]["status"] == "ok"
        assert len(responses[2].json()) == 6  # the seed
    finally:
        process.stop_pid(server.pid, popen=server)

    secret = instance / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (instance / "shop.db").is_file() and any((instance / "media").iterdir())
    assert "seed: 6 product(s) created" in err.read_text()  # people's output: stderr

    # stdout: JSON lines only, gunicorn's included; one access line per request.
    parsed = [json.loads(line) for line in _log_lines(out)]
    assert any(p.get("logger") == "gunicorn.error" for p in parsed)
    access = [p for p in parsed if p.get("logger") == "flaskprod.access"]
    assert {p["path"] for p in access} >= {"/health", "/api/products", "/api/nope"}
    assert all(p["request_id"] and "duration_ms" in p for p in access)
    ids = {r.headers["X-Request-ID"] for r in responses}
    assert ids <= {p["request_id"] for p in access}


@pytest.fixture(scope="module")
def pg_gunicorn(
    postgres_cluster, postgres_template: str, redis_server: RedisServer, tmp_path_factory
) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(base URL, API token) of the shop under gunicorn on PostgreSQL and Redis."""
    from psycopg import sql

    name = "shop_gunicorn"
    postgres_cluster.drop_database(name)
    with postgres_cluster.connect() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(postgres_template)
            )
        )
    folder = tmp_path_factory.mktemp("gunicorn")
    token = "e2e-token-0123456789"
    url = postgres_cluster.url(name)
    media = folder / "media"

    def seed() -> None:
        from shop.seed import seed_demo

        seed_demo(token)

    in_shop(url, seed, FLASKPROD_MEDIA_ROOT=str(media))
    env = run_local.environment(folder, SECRET)
    env.update(DATABASE_URL=url, REDIS_URL=redis_server.url())

    def start(port: int) -> tuple[process.Process, int]:
        server = process.start(
            run_local.gunicorn_argv(f"127.0.0.1:{port}", workers=2),
            name="gunicorn (shop)", log_path=folder / "gunicorn.log", cwd=SHOP_DIR, env=env,
            die_with_parent=True,
        )  # fmt: skip
        server.wait_ready(lambda: _answers(port), timeout=60, port=port)
        return server, port

    server, port = retry_on_port_in_use(start, port=free_port(), name="gunicorn (shop)")
    yield f"http://127.0.0.1:{port}", token
    server.stop()
    postgres_cluster.drop_database(name)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_concurrent_retries_with_one_idempotency_key_create_one_order(
    pg_gunicorn: tuple[str, str],
) -> None:
    base, token = pg_gunicorn
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "concurrent-1"}
    body = {"items": [{"product_id": 1, "quantity": 1}]}
    barrier = threading.Barrier(8)
    results: list[httpx.Response] = []

    def post() -> None:
        with httpx.Client(timeout=10) as client:
            barrier.wait()
            results.append(client.post(f"{base}/api/orders", json=body, headers=headers))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 7 + [201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    mine = httpx.get(f"{base}/api/orders", headers={"Authorization": f"Bearer {token}"}).json()
    assert [o["idempotency_key"] for o in mine].count("concurrent-1") == 1


def test_gunicorn_on_postgres_is_ready_with_every_check(pg_gunicorn: tuple[str, str]) -> None:
    base, _ = pg_gunicorn
    ready = httpx.get(f"{base}/health/ready", timeout=5)
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"database", "redis", "migrations"}
    first = httpx.get(f"{base}/api/products", timeout=5)
    second = httpx.get(f"{base}/api/products", timeout=5)
    assert first.json() == second.json() and second.headers["X-Cache"] == "HIT"
