"""The product list cache in Redis, which must never turn into an error.

Redis is an optimisation here: when it is not configured, down or stalled, the list is
served from the database (and :mod:`shop.redis_guard` keeps a stalled Redis from
costing a timeout on every request).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import current_app
from redis.exceptions import RedisError

from flaskprod.runtime.redis import redis_client
from shop.redis_guard import redis_failed, redis_usable

PRODUCTS_KEY = "shop:products:v1"


def _client(*, backoff: bool = True) -> Any:
    if not current_app.config.get("REDIS_URL"):
        return None
    if backoff and not redis_usable(current_app):
        return None
    return redis_client(current_app)


def _failed(action: str, error: Exception) -> None:
    redis_failed(current_app, f"product cache {action}", error)


def cached_products(load: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], str]:
    """The product list and where it came from ("cache", "database")."""
    ttl = int(current_app.config["PRODUCTS_CACHE_SECONDS"])
    client = _client() if ttl > 0 else None
    if client is not None:
        try:
            raw = client.get(PRODUCTS_KEY)
        except RedisError as error:
            _failed("read", error)
            client = None
        else:
            if raw is not None:
                products: list[dict[str, Any]] = json.loads(raw)
                return products, "cache"
    products = load()
    if client is not None:
        try:
            client.set(PRODUCTS_KEY, json.dumps(products), ex=ttl)
        except RedisError as error:
            _failed("write", error)
    return products, "database"


def invalidate_products() -> None:
    """Called after a product is created. If Redis is unreachable the entry simply
    expires after PRODUCTS_CACHE_SECONDS (the documented staleness bound)."""
    client = _client(backoff=False)  # a recovered Redis must not keep a stale list
    if client is None:
        return
    try:
        client.delete(PRODUCTS_KEY)
    except RedisError as error:
        _failed("invalidation", error)
