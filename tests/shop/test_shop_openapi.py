"""The OpenAPI document matches what the API really does.

Real responses of every documented operation and status are validated with
``jsonschema`` against the document's own schemas, and the document lists exactly
the routes the app has under /api.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from shop_helpers import api_token, create_product, signup, sqlite_only
from werkzeug.test import TestResponse


def _validator(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    operation = document["paths"][path][method]
    response = operation["responses"][str(status)]
    schema = dict(response["content"]["application/json"]["schema"])
    schema["components"] = document["components"]  # so "#/components/..." resolves
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    assert body["openapi"].startswith("3.1")
    return body


def test_real_responses_match_the_documented_schemas(
    shop_app: Flask, client: FlaskClient, document: dict[str, Any]
) -> None:
    product = create_product(shop_app, name="Cup", price_cents=990)
    token = api_token(shop_app, signup(shop_app.test_client()))
    auth = {"Authorization": f"Bearer {token}"}
    order = {"items": [{"product_id": product, "quantity": 2}]}
    keyed = auth | {"Idempotency-Key": "k-1"}
    seen: list[tuple[str, str, int]] = []

    def check(path: str, method: str, response: TestResponse, status: int) -> None:
        assert response.status_code == status, (path, method, response.get_json())
        _validator(document, path, method, status).validate(response.get_json())
        seen.append((path, method, status))

    check("/api/products", "get", client.get("/api/products"), 200)
    check("/api/products/{product_id}", "get", client.get(f"/api/products/{product}"), 200)
    check("/api/products/{product_id}", "get", client.get("/api/products/999"), 404)
    check("/api/orders", "post", client.post("/api/orders", json=order, headers=keyed), 201)
    check("/api/orders", "post", client.post("/api/orders", json=order, headers=keyed), 200)
    other = {"items": [{"product_id": product, "quantity": 1}]}
    check("/api/orders", "post", client.post("/api/orders", json=other, headers=keyed), 409)
    check("/api/orders", "post", client.post("/api/orders", json={"items": []}, headers=auth), 400)
    bad_json = auth | {"Content-Type": "application/json"}
    check("/api/orders", "post", client.post("/api/orders", data=b"{", headers=bad_json), 400)
    unknown = {"items": [{"product_id": 999, "quantity": 1}]}
    check("/api/orders", "post", client.post("/api/orders", json=unknown, headers=auth), 404)
    check("/api/orders", "post", client.post("/api/orders", json=order), 401)
    huge = auth | {"Content-Type": "application/json"}
    oversized = b'{"items": []}' + b" " * shop_app.config["MAX_CONTENT_LENGTH"]
    check("/api/orders", "post", client.post("/api/orders", data=oversized, headers=huge), 413)
    check("/api/orders", "get", client.get("/api/orders", headers=auth), 200)
    check("/api/orders", "get", client.get("/api/orders"), 401)
    first = client.get("/api/orders", headers=auth).get_json()[0]["id"]
    check("/api/orders/{order_id}", "get", client.get(f"/api/orders/{first}", headers=auth), 200)
    check("/api/orders/{order_id}", "get", client.get("/api/orders/99999", headers=auth), 404)
    check("/api/orders/{order_id}", "get", client.get(f"/api/orders/{first}"), 401)

    # Every documented JSON response was exercised above.
    documented = {
        (path, method, int(status))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if "content" in response
    }
    assert documented == set(seen)


@sqlite_only
def test_document_lists_exactly_the_api_routes(shop_app: Flask, document: dict[str, Any]) -> None:
    routes = set()
    for rule in shop_app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
                routes.add((path, method.lower()))
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
