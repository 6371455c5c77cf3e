"""``flask seed``: demo data, idempotent, with a usable API token."""

from __future__ import annotations

from flask import Flask
from shop_helpers import sqlite_only
from sqlalchemy import func, select


def _count(app: Flask, model: type) -> int:
    from shop.extensions import db

    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_seed_is_idempotent_and_prints_a_working_token(shop_app: Flask) -> None:
    from shop.models import Product, User
    from shop.seed import PRODUCTS

    runner = shop_app.test_cli_runner()
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    assert f"{len(PRODUCTS)} product(s) created" in first.output
    token = first.output.split("API token: ")[1].split()[0]

    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0, second.output
    assert "0 product(s) created" in second.output and "API token unchanged" in second.output
    assert _count(shop_app, Product) == len(PRODUCTS)
    assert _count(shop_app, User) == 1

    client = shop_app.test_client()
    products = client.get("/api/products").get_json()
    assert len(products) == len(PRODUCTS)
    assert all(p["image_url"] and client.get(p["image_url"]).status_code == 200 for p in products)
    order = {"items": [{"product_id": products[0]["id"], "quantity": 1}]}
    response = client.post("/api/orders", json=order, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201


@sqlite_only
def test_seed_token_option_sets_a_known_token(shop_app: Flask) -> None:
    runner = shop_app.test_cli_runner()
    runner.invoke(args=["seed"])
    result = runner.invoke(args=["seed"], env={"SHOP_DEMO_TOKEN": "bench-token-123"})
    assert "API token: bench-token-123" in result.output
    response = shop_app.test_client().get(
        "/api/orders", headers={"Authorization": "Bearer bench-token-123"}
    )
    assert response.status_code == 200
