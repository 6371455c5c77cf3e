"""Placing an order, shared by the HTML form and the JSON API.

Idempotency: with a key, the first request creates the order and every retry with the
same key (same user) gets that order back. The UNIQUE (user_id, idempotency_key)
constraint makes this hold for concurrent retries too: the loser of the race gets an
IntegrityError, rolls back and returns the winner's order.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shop.extensions import db
from shop.models import MAX_ID, Order, OrderItem, Product, User

MAX_QUANTITY = 100
MAX_ITEMS = 50
MAX_KEY_LENGTH = 255


class OrderInvalid(Exception):
    """Bad input; ``fields`` maps a field path (``items[0].quantity``) to its problem."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class UnknownProduct(Exception):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} does not exist")
        self.product_id = product_id


class KeyReused(Exception):
    """The idempotency key was already used for a different order (409 Conflict)."""


@dataclass(frozen=True)
class Placed:
    order: Order
    created: bool  # False: an earlier request with the same key created it


def parse_items(payload: object) -> list[tuple[int, int]]:
    """Validate ``{"items": [{"product_id": 1, "quantity": 2}, ...]}`` into pairs."""
    if not isinstance(payload, dict):
        raise OrderInvalid({"body": "must be a JSON object with an 'items' list"})
    items = payload.get("items")
    if not isinstance(items, list) or not items:
        raise OrderInvalid({"items": "must be a non-empty list"})
    if len(items) > MAX_ITEMS:
        raise OrderInvalid({"items": f"at most {MAX_ITEMS} items per order"})
    errors: dict[str, str] = {}
    pairs: list[tuple[int, int]] = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            errors[where] = "must be an object with product_id and quantity"
            continue
        before = len(errors)
        product_id, quantity = _as_int(item.get("product_id")), _as_int(item.get("quantity"))
        if product_id is None or not 1 <= product_id <= MAX_ID:
            errors[f"{where}.product_id"] = "must be a positive integer"
        if quantity is None or not 1 <= quantity <= MAX_QUANTITY:
            errors[f"{where}.quantity"] = f"must be an integer from 1 to {MAX_QUANTITY}"
        if len(errors) == before and product_id is not None and quantity is not None:
            pairs.append((product_id, quantity))
    if errors:
        raise OrderInvalid(errors)
    return pairs


def _as_int(value: object) -> int | None:
    """JSON's integers: 2 and 2.0 (JSON Schema counts both), never true or "2"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


#: An Idempotency-Key: visible ASCII and spaces, at least one visible character (HTTP
#: trims the spaces around a header value, so a key of spaces only would arrive empty).
#: The OpenAPI document publishes this same pattern.
KEY_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"
_KEY = re.compile(KEY_PATTERN)


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if len(key) > MAX_KEY_LENGTH or not _KEY.match(key):
        raise OrderInvalid(
            {"Idempotency-Key": f"must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"}
        )
    return key


def _digest(pairs: list[tuple[int, int]]) -> str:
    return hashlib.sha256(json.dumps(sorted(pairs)).encode()).hexdigest()


def _existing(user: User, key: str) -> Order | None:
    return db.session.scalars(
        select(Order).where(Order.user_id == user.id, Order.idempotency_key == key)
    ).first()


def _replay(order: Order, digest: str) -> Placed:
    if order.request_digest != digest:
        raise KeyReused
    return Placed(order, created=False)


def place_order(user: User, pairs: list[tuple[int, int]], key: str | None = None) -> Placed:
    """Create the order (or return the one an earlier request with ``key`` created)."""
    digest = _digest(pairs)
    if key is not None and (earlier := _existing(user, key)) is not None:
        return _replay(earlier, digest)

    ids = {product_id for product_id, _ in pairs}
    products = {p.id: p for p in db.session.scalars(select(Product).where(Product.id.in_(ids)))}
    for product_id, _ in pairs:
        if product_id not in products:
            raise UnknownProduct(product_id)

    order = Order(user=user, idempotency_key=key, request_digest=digest, total_cents=0)
    for product_id, quantity in pairs:
        price = products[product_id].price_cents
        order.items.append(
            OrderItem(product_id=product_id, quantity=quantity, unit_price_cents=price)
        )
        order.total_cents += price * quantity
    db.session.add(order)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if key is None or (winner := _existing(user, key)) is None:
            raise
        return _replay(winner, digest)
    return Placed(order, created=True)


def orders_of(user: User) -> list[Order]:
    return list(
        db.session.scalars(
            select(Order).where(Order.user_id == user.id).order_by(Order.id.desc()).limit(100)
        )
    )
