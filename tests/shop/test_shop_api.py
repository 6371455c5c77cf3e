"""The JSON API: orders with idempotency keys, validation, errors, the product cache."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from shop_helpers import api_token, create_product, signup, sqlite_only
from sqlalchemy import func, select

from flaskprod.stack.redis import RedisServer


def _auth(app: Flask, client: FlaskClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(app, signup(client))}"}


def _order_count(app: Flask) -> int:
    from shop.extensions import db
    from shop.models import Order

    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(Order)) or 0)


def test_retried_order_with_same_idempotency_key_creates_one(
    shop_app: Flask, client: FlaskClient
) -> None:
    product = create_product(shop_app, price_cents=300)
    headers = _auth(shop_app, client) | {"Idempotency-Key": "order-42"}
    body = {"items": [{"product_id": product, "quantity": 2}]}

    first = client.post("/api/orders", json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["total_cents"] == 600
    second = client.post("/api/orders", json=body, headers=headers)
    assert second.status_code == 200
    assert second.get_json() == first.get_json()
    assert _order_count(shop_app) == 1

    # Same key, different order: refused, nothing created.
    other = {"items": [{"product_id": product, "quantity": 3}]}
    reused = client.post("/api/orders", json=other, headers=headers)
    assert reused.status_code == 409
    assert reused.get_json()["error"]["code"] == "idempotency_key_reused"
    # Without a key every POST is a new order.
    no_key = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
    assert client.post("/api/orders", json=body, headers=no_key).status_code == 201
    assert _order_count(shop_app) == 2

    listed = client.get("/api/orders", headers=no_key).get_json()
    assert [o["total_cents"] for o in listed] == [600, 600]


def test_an_order_reads_nothing_back_after_its_commit(shop_app: Flask, client: FlaskClient) -> None:
    """The answer is built from what the order wrote: no SELECT after the COMMIT (with
    the default expire_on_commit the order and its items were read again, two more
    queries and a pool checkout per order)."""
    from shop.extensions import db
    from sqlalchemy import event

    first, second = create_product(shop_app, price_cents=250), create_product(shop_app)
    headers = _auth(shop_app, client) | {"Idempotency-Key": "no-reread"}
    body = {"items": [{"product_id": first, "quantity": 2}, {"product_id": second, "quantity": 1}]}
    seen: list[str] = []

    def statement(conn, cursor, sql, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        seen.append(sql.split(None, 1)[0].upper())

    def commit(conn) -> None:  # type: ignore[no-untyped-def]
        seen.append("COMMIT")

    with shop_app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        placed = client.post("/api/orders", json=body, headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    assert placed.status_code == 201, placed.get_json()
    answer = placed.get_json()
    assert answer["total_cents"] == 2 * 250 + 1250 and answer["status"] == "placed"
    assert [item["product_id"] for item in answer["items"]] == [first, second]
    assert answer["id"] > 0 and answer["created_at"].endswith("Z")
    # token -> user, the key's earlier order, the products; the INSERTs (the items in
    # one statement on PostgreSQL, one each on SQLite); COMMIT, and nothing after it.
    assert seen[:3] == ["SELECT"] * 3 and seen[-1] == "COMMIT", seen
    assert set(seen[3:-1]) == {"INSERT"}, seen
    # What it answered is what is stored.
    replay = client.post("/api/orders", json=body, headers=headers)
    assert replay.status_code == 200 and replay.get_json() == answer


def test_keys_are_per_user(shop_app: Flask, client: FlaskClient) -> None:
    product = create_product(shop_app)
    body = {"items": [{"product_id": product, "quantity": 1}]}
    alice = _auth(shop_app, client) | {"Idempotency-Key": "same"}
    bob = _auth(shop_app, shop_app.test_client()) | {"Idempotency-Key": "same"}
    assert client.post("/api/orders", json=body, headers=alice).status_code == 201
    assert client.post("/api/orders", json=body, headers=bob).status_code == 201
    assert _order_count(shop_app) == 2


def test_session_cookie_authenticates_api(shop_app: Flask, client: FlaskClient) -> None:
    product = create_product(shop_app)
    signup(client)  # the session cookie, no token
    response = client.post("/api/orders", json={"items": [{"product_id": product, "quantity": 1}]})
    assert response.status_code == 201
    assert len(client.get("/api/orders").get_json()) == 1


@sqlite_only
def test_orders_need_authentication(shop_app: Flask, client: FlaskClient) -> None:
    for response in (
        client.get("/api/orders"),
        client.post("/api/orders", json={"items": []}),
        client.get("/api/orders", headers={"Authorization": "Bearer not-a-token"}),
    ):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@sqlite_only
def test_malformed_json_is_400_json(shop_app: Flask, client: FlaskClient) -> None:
    headers = _auth(shop_app, client) | {"Content-Type": "application/json"}
    response = client.post("/api/orders", data=b'{"items": [', headers=headers)
    assert response.status_code == 400
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and "not valid JSON" in error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]


BAD_ORDERS = [
    ({"items": []}, "items"),
    ({"nope": 1}, "items"),
    ([1, 2], "body"),
    ({"items": [{"product_id": 1, "quantity": 0}]}, "items[0].quantity"),
    ({"items": [{"product_id": 1, "quantity": 101}]}, "items[0].quantity"),
    ({"items": [{"product_id": "1", "quantity": 1}]}, "items[0].product_id"),
    ({"items": [{"product_id": True, "quantity": 1}]}, "items[0].product_id"),
    ({"items": [{"product_id": 1, "quantity": 1}, "x"]}, "items[1]"),
    ({"items": [{"product_id": 1, "quantity": 1.5}]}, "items[0].quantity"),
    ({"items": [{"product_id": 1, "quantity": None}]}, "items[0].quantity"),
]


@sqlite_only
def test_bad_items_are_400_with_a_field_message(shop_app: Flask, client: FlaskClient) -> None:
    create_product(shop_app)
    headers = _auth(shop_app, client)
    for body, field in BAD_ORDERS:
        response = client.post("/api/orders", json=body, headers=headers)
        assert response.status_code == 400, body
        assert field in response.get_json()["error"]["fields"], body
    # 2.0 is an integer in JSON (and in the OpenAPI schema): accepted.
    whole = {"items": [{"product_id": 1.0, "quantity": 2.0}]}
    assert client.post("/api/orders", json=whole, headers=headers).status_code == 201
    too_long_key = headers | {"Idempotency-Key": "k" * 256}
    response = client.post(
        "/api/orders", json={"items": [{"product_id": 1, "quantity": 1}]}, headers=too_long_key
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.get_json()["error"]["fields"]
    assert _order_count(shop_app) == 1


@sqlite_only
def test_unknown_product_in_an_order_is_404(shop_app: Flask, client: FlaskClient) -> None:
    product = create_product(shop_app)
    body = {"items": [{"product_id": product, "quantity": 1}, {"product_id": 4242, "quantity": 1}]}
    response = client.post("/api/orders", json=body, headers=_auth(shop_app, client))
    assert response.status_code == 404
    assert response.get_json()["error"]["fields"] == {"items[1].product_id": "no such product"}
    assert _order_count(shop_app) == 0


@sqlite_only
def test_unknown_api_route_and_product_are_404_json(client: FlaskClient) -> None:
    for path in ("/api/nope", "/api/products/4242", "/api/orders/abc"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "application/json"
        assert response.get_json()["error"]["code"] == "not_found"
    wrong_method = client.delete("/api/products")
    assert wrong_method.status_code == 405 and wrong_method.mimetype == "application/json"


def test_product_list_is_cached_and_invalidated(shop_app: Flask, client: FlaskClient) -> None:
    create_product(shop_app, name="First")
    first = client.get("/api/products")
    assert first.headers["X-Cache"] == "MISS"
    second = client.get("/api/products")
    if shop_app.config.get("REDIS_URL"):
        assert second.headers["X-Cache"] == "HIT"
    else:
        assert second.headers["X-Cache"] == "MISS"  # no Redis: always the database
    assert second.get_json() == first.get_json()

    # A product created through the app invalidates the cached list.
    from shop.cache import invalidate_products

    create_product(shop_app, name="Second")
    with shop_app.app_context():
        invalidate_products()
    assert [p["name"] for p in client.get("/api/products").get_json()] == ["First", "Second"]


def test_product_list_comes_from_the_database_when_redis_is_unreachable(
    make_shop,  # type: ignore[no-untyped-def]
) -> None:
    from flaskprod.stack.ports import free_port

    # Nothing listens there: every Redis call fails at once with "connection refused".
    app = make_shop(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    create_product(app, name="Still here")
    client = app.test_client()
    for _ in range(3):
        response = client.get("/api/products")
        assert response.status_code == 200
        assert [p["name"] for p in response.get_json()] == ["Still here"]
        assert response.headers["X-Cache"] == "MISS"
    assert client.get("/").status_code == 200  # the HTML list needs no session store
    assert client.get("/health").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.get_json()["checks"]["redis"]["status"] == "fail"


def test_session_pages_give_a_clear_503_when_redis_is_down(make_shop) -> None:  # type: ignore[no-untyped-def]
    from flaskprod.stack.ports import free_port

    app = make_shop(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()
    for method, path in (
        ("get", "/login"),
        ("get", "/signup"),
        ("post", "/login"),
        ("get", "/orders"),
    ):
        response = getattr(client, method)(path)
        assert response.status_code == 503, (method, path)
        page = response.get_data(as_text=True)
        assert "temporarily unavailable" in page and "Traceback" not in page
        assert response.headers["Retry-After"] == "5"
    # With a session cookie, reading the session fails too: still a 503, not a 500.
    client.set_cookie("session", "some-session-id")
    assert client.get("/orders").status_code == 503
    assert client.get("/api/products").status_code == 200


def test_huge_ids_are_not_found_not_errors(shop_app: Flask, client: FlaskClient) -> None:
    huge = 2**70
    for path in (f"/api/products/{huge}", f"/api/orders/{huge}", f"/products/{huge}"):
        response = client.get(path, headers=_auth(shop_app, client))
        assert response.status_code == 404, (path, response.status_code)
    body = {"items": [{"product_id": 2**40, "quantity": 1}]}
    response = client.post("/api/orders", json=body, headers=_auth(shop_app, client))
    assert response.status_code == 400
    assert "items[0].product_id" in response.get_json()["error"]["fields"]


def test_a_stalled_redis_costs_one_timeout_not_one_per_request(
    make_shop,  # type: ignore[no-untyped-def]
    redis_server: RedisServer,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_shop(REDIS_URL=redis_url)
    create_product(app, name="Frozen")
    client = app.test_client()
    redis_server.pause()  # SIGSTOP: connections hang, as with a frozen host
    try:
        with caplog.at_level(logging.WARNING, logger="shop.redis_guard"):
            statuses = [client.get("/api/products").status_code for _ in range(5)]
            statuses += [client.get("/login").status_code for _ in range(5)]
    finally:
        redis_server.resume()
    assert statuses == [200] * 5 + [503] * 5
    # Ten requests, one attempt that waited for the socket timeout: afterwards the
    # circuit kept the requests away from the stalled Redis.
    failures = [r for r in caplog.records if r.name == "shop.redis_guard"]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "imeout" in failures[0].getMessage() or "timed out" in failures[0].getMessage()
