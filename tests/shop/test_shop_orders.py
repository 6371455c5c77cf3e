"""Ordering from the product page's form (CSRF-protected, double submits are one order)."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from shop_helpers import create_product, signup, sqlite_only


def test_order_form_double_submit_creates_one_order(shop_app: Flask, client: FlaskClient) -> None:
    product = create_product(shop_app, name="Kettle", price_cents=4500)
    signup(client)
    page = client.get(f"/products/{product}").get_data(as_text=True)
    fields = dict(
        re.findall(r'name="(csrf_token|idempotency_key)" type="hidden" value="([^"]+)"', page)
    )
    assert set(fields) == {"csrf_token", "idempotency_key"}

    form = fields | {"quantity": "2"}
    first = client.post(f"/products/{product}/order", data=form)
    again = client.post(f"/products/{product}/order", data=form)  # the impatient click
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == "/orders"

    orders = client.get("/orders").get_data(as_text=True)
    assert orders.count("2 \u00d7 Kettle") == 1 and "€90.00" in orders
    assert len(client.get("/api/orders").get_json()) == 1


@sqlite_only
def test_order_form_refuses_bad_quantity_and_missing_csrf(
    shop_app: Flask, client: FlaskClient
) -> None:
    product = create_product(shop_app)
    signup(client)
    page = client.get(f"/products/{product}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    bad = client.post(
        f"/products/{product}/order", data={"csrf_token": token.group(1), "quantity": "0"}
    )
    assert bad.status_code == 400
    no_csrf = client.post(f"/products/{product}/order", data={"quantity": "1"})
    assert no_csrf.status_code == 400
    assert client.get("/api/orders").get_json() == []
    assert (
        client.post("/products/4242/order", data={"csrf_token": token.group(1)}).status_code == 404
    )
