"""Readiness follows PostgreSQL: stop it and /health/ready says 503 within 2 s; start
it again and it says 200, without restarting the app. Meanwhile the shop degrades:
cached product reads keep answering, pages that need the database give a 503."""

from __future__ import annotations

import time

from flask import Flask
from shop_helpers import create_product, signup

from flaskprod.stack.postgres import PostgresCluster


def test_readiness_follows_postgres_stop_and_start(
    make_shop,  # type: ignore[no-untyped-def]
    postgres_cluster: PostgresCluster,
    shop_postgres_url: str,
    redis_url: str,
) -> None:
    app: Flask = make_shop(DATABASE_URL=shop_postgres_url, REDIS_URL=redis_url)
    create_product(app, name="Cached")
    client = app.test_client()
    email = signup(client)  # logged in: the layout looks the user up in the database
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"]["database"]["status"] == "ok"
    assert client.get("/api/products").status_code == 200  # now in the Redis cache

    postgres_cluster.stop()
    try:
        started = time.monotonic()
        down = client.get("/health/ready")
        elapsed = time.monotonic() - started
        assert down.status_code == 503
        assert down.get_json()["checks"]["database"]["status"] == "fail"
        assert elapsed < 2.0, f"readiness took {elapsed:.2f}s with PostgreSQL down"
        assert client.get("/health").status_code == 200  # liveness touches nothing

        cached = client.get("/api/products")
        assert cached.status_code == 200 and cached.headers["X-Cache"] == "HIT"
        page = client.get("/")
        assert page.status_code == 503 and page.headers["Retry-After"] == "5"
        html = page.get_data(as_text=True)
        assert "We are back in a moment" in html and "Traceback" not in html
        assert page.headers["X-Request-ID"] in html
        api = client.get("/api/products/1")
        assert api.status_code == 503
        assert api.get_json()["error"]["code"] == "service_unavailable"
    finally:
        postgres_cluster.start()

    # The same app (same pools) recovers by itself: pool_pre_ping drops dead connections.
    deadline = time.monotonic() + 10
    while (status := client.get("/health/ready").status_code) != 200:
        assert time.monotonic() < deadline, f"/health/ready still {status} after restart"
        time.sleep(0.05)
    home = client.get("/")
    assert home.status_code == 200 and email in home.get_data(as_text=True)  # still logged in
    assert client.get("/api/products/1").status_code == 200


def test_an_exhausted_connection_pool_is_a_503_not_a_500(make_shop, shop_postgres_url) -> None:  # type: ignore[no-untyped-def]
    """Stuck requests holding every pooled connection (a stalled database) make the
    next request wait pool_timeout and fail: that is "try again", not a bug."""
    from shop.extensions import db

    app = make_shop(
        DATABASE_URL=shop_postgres_url,
        FLASKPROD_SQLALCHEMY_POOL_SIZE="1",
        FLASKPROD_SQLALCHEMY_MAX_OVERFLOW="0",
        FLASKPROD_SQLALCHEMY_POOL_TIMEOUT="1",
    )
    client = app.test_client()
    assert client.get("/api/products/1").status_code in (200, 404)  # the pool works
    with app.app_context():
        held = db.engine.connect()  # the only connection, as a stuck request would hold it
        try:
            response = client.get("/api/products/1")
        finally:
            held.close()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["status"] == 503
    assert client.get("/api/products/1").status_code in (200, 404)  # and it recovers
