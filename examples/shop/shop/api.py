"""The JSON API under /api: products (cached) and orders (idempotent).

CSRF-exempt (no cookies are needed: a bearer token works, and a session cookie is
SameSite=Lax, so a cross-site POST does not carry it). Every error is JSON, in the
runtime's error shape plus ``fields`` for input problems (unknown routes, 405 and
413 under /api are answered by the runtime's handlers, in the same shape).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from flaskprod.runtime.request_id import current_request_id
from shop.auth import current_user
from shop.cache import cached_products
from shop.extensions import db
from shop.jobs import thumbnail_url
from shop.media import media_url
from shop.models import Order, Product, User
from shop.openapi import openapi_document
from shop.ordering import (
    KeyReused,
    OrderInvalid,
    UnknownProduct,
    check_key,
    orders_of,
    parse_items,
    place_order,
)

bp = Blueprint("api", __name__, url_prefix="/api")

LIST_LIMIT = 100


def error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> Response:
    """An error in the runtime's JSON shape (``{"error": {status, code, message,
    request_id}}``), plus ``fields`` naming each bad input."""
    body: dict[str, Any] = {
        "status": status,
        "code": code,
        "message": message,
        "request_id": current_request_id() or "",
    }
    if fields:
        body["fields"] = fields
    response = jsonify(error=body)
    response.status_code = status
    return response


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "description": product.description,
        "price_cents": product.price_cents,
        "image_url": media_url(product.image_filename),
        # made by the worker (shop/jobs.py) within seconds of the upload; null until then
        "thumbnail_url": thumbnail_url(product.image_filename),
        "created_at": product.created_at.isoformat() + "Z",
    }


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "status": order.status,
        "total_cents": order.total_cents,
        "idempotency_key": order.idempotency_key,
        "created_at": order.created_at.isoformat() + "Z",
        "items": [
            {
                "product_id": item.product_id,
                "quantity": item.quantity,
                "unit_price_cents": item.unit_price_cents,
            }
            for item in order.items
        ],
    }


def _load_products() -> list[dict[str, Any]]:
    products = db.session.scalars(select(Product).order_by(Product.id).limit(LIST_LIMIT))
    return [product_json(p) for p in products]


def _authenticated() -> User | Response:
    user = current_user()
    if user is None:
        response = error(401, "unauthorized", "log in, or send 'Authorization: Bearer <token>'")
        response.headers["WWW-Authenticate"] = 'Bearer realm="shop"'
        return response
    return user


@bp.get("/products")
def products() -> Response:
    items, source = cached_products(_load_products)
    response = jsonify(items)
    response.headers["X-Cache"] = "HIT" if source == "cache" else "MISS"
    # The same list for everyone: nginx (and browsers) may keep it a few seconds. Bounded
    # by PRODUCTS_HTTP_CACHE_SECONDS (0: not cacheable), on top of the Redis copy.
    seconds = int(current_app.config["PRODUCTS_HTTP_CACHE_SECONDS"])
    if seconds > 0:
        response.cache_control.public = True
        response.cache_control.max_age = seconds
    return response


@bp.get("/products/<id:product_id>")
def product(product_id: int) -> Response:
    found = db.session.get(Product, product_id)
    if found is None:
        return error(404, "not_found", f"product {product_id} does not exist")
    return jsonify(product_json(found))


@bp.post("/orders")
def create_order() -> Response | tuple[Response, int]:
    user = _authenticated()
    if isinstance(user, Response):
        return user
    if not request.is_json:
        return error(400, "bad_request", "send a JSON body with 'Content-Type: application/json'")
    try:
        payload = request.get_json()
    except BadRequest:
        return error(400, "bad_request", "the request body is not valid JSON")
    try:
        pairs = parse_items(payload)
        key = check_key(request.headers.get("Idempotency-Key"))
        placed = place_order(user, pairs, key)
    except OrderInvalid as invalid:
        return error(400, "invalid_order", "the order is not valid", invalid.fields)
    except UnknownProduct as unknown:
        where = f"items[{_index(payload, unknown.product_id)}].product_id"
        return error(404, "unknown_product", str(unknown), {where: "no such product"})
    except KeyReused:
        return error(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different order",
        )
    response = jsonify(order_json(placed.order))
    response.status_code = 201 if placed.created else 200
    if placed.created:
        response.headers["Location"] = f"/api/orders/{placed.order.id}"
    return response


def _index(payload: Any, product_id: int) -> int:
    for index, item in enumerate(payload["items"]):
        if item.get("product_id") == product_id:
            return index
    return 0


@bp.get("/orders")
def list_orders() -> Response:
    user = _authenticated()
    if isinstance(user, Response):
        return user
    return jsonify([order_json(order) for order in orders_of(user)])


@bp.get("/orders/<id:order_id>")
def get_order(order_id: int) -> Response:
    user = _authenticated()
    if isinstance(user, Response):
        return user
    order = db.session.get(Order, order_id)
    if order is None or order.user_id != user.id:
        return error(404, "not_found", f"order {order_id} does not exist")
    return jsonify(order_json(order))


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
