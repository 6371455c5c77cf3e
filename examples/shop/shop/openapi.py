"""The OpenAPI 3.1 description of /api, kept next to the code it describes.

tests/shop/test_openapi.py validates real responses against these schemas, so a
change to the API that is not reflected here fails the suite.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from shop.models import MAX_ID
from shop.ordering import KEY_PATTERN, MAX_ITEMS, MAX_KEY_LENGTH, MAX_QUANTITY


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
_TIME = {"type": "string", "format": "date-time"}
_CENTS = {"type": "integer", "minimum": 0}
_SECURED: list[dict[str, list[str]]] = [{"bearerToken": []}, {"sessionCookie": []}]
_PATH_ID = {
    "in": "path",
    "required": True,
    "schema": _ID,
}

_SCHEMAS: dict[str, Any] = {
    "Product": {
        "type": "object",
        "required": [
            "id",
            "name",
            "description",
            "price_cents",
            "image_url",
            "thumbnail_url",
            "created_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "name": {"type": "string", "maxLength": 120},
            "description": {"type": "string"},
            "price_cents": _CENTS,
            "image_url": {"type": ["string", "null"]},
            "thumbnail_url": {
                "type": ["string", "null"],
                "description": "Made by the background worker within seconds of the "
                "upload; null until then.",
            },
            "created_at": _TIME,
        },
    },
    "OrderItem": {
        "type": "object",
        "required": ["product_id", "quantity", "unit_price_cents"],
        "additionalProperties": False,
        "properties": {
            "product_id": _ID,
            "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
            "unit_price_cents": _CENTS,
        },
    },
    "Order": {
        "type": "object",
        "required": ["id", "status", "total_cents", "idempotency_key", "created_at", "items"],
        "additionalProperties": False,
        "properties": {
            "id": _ID,
            "status": {"type": "string", "enum": ["placed"]},
            "total_cents": _CENTS,
            "idempotency_key": {"type": ["string", "null"]},
            "created_at": _TIME,
            "items": {"type": "array", "minItems": 1, "items": _ref("OrderItem")},
        },
    },
    "NewOrder": {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ITEMS,
                "items": {
                    "type": "object",
                    "required": ["product_id", "quantity"],
                    "properties": {
                        "product_id": _ID,
                        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
                    },
                },
            }
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "code", "message", "request_id"],
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "code": {"type": "string", "description": "A stable machine name."},
                    "message": {"type": "string", "description": "What went wrong, for people."},
                    "request_id": {"type": "string", "description": "Also in X-Request-ID."},
                    "fields": {
                        "type": "object",
                        "description": "Input problems by field path, e.g. items[0].quantity.",
                        "additionalProperties": {"type": "string"},
                    },
                },
            }
        },
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flaskprod shop API",
            "version": "1.0.0",
            "description": "The reference shop of flaskprod. Amounts are integer cents.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A per-user API token (account page, or `flask seed`).",
                },
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
        },
        "paths": {
            "/api/products": {
                "get": {
                    "operationId": "listProducts",
                    "summary": "Products, cached in Redis for PRODUCTS_CACHE_SECONDS.",
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Product")}, "The products."),
                    },
                }
            },
            "/api/products/{product_id}": {
                "get": {
                    "operationId": "getProduct",
                    "parameters": [{"name": "product_id", **_PATH_ID}],
                    "responses": {
                        "200": _json(_ref("Product"), "The product."),
                        "404": _error("No such product."),
                    },
                }
            },
            "/api/orders": {
                "get": {
                    "operationId": "listOrders",
                    "summary": "My orders, newest first (at most 100).",
                    "security": _SECURED,
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Order")}, "My orders."),
                        "401": _error("Not authenticated."),
                    },
                },
                "post": {
                    "operationId": "createOrder",
                    "security": _SECURED,
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Retries with the same key return the same order "
                            "(200) instead of creating another (201).",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_KEY_LENGTH,
                                "pattern": KEY_PATTERN,
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("NewOrder")}},
                    },
                    "responses": {
                        "201": _json(_ref("Order"), "Created."),
                        "200": _json(_ref("Order"), "Already created by a request with this key."),
                        "400": _error("Malformed JSON or invalid items (see fields)."),
                        "401": _error("Not authenticated."),
                        "404": _error("An item names an unknown product."),
                        "413": _error("The body is larger than the limit."),
                        "409": _error("The key was already used for a different order."),
                    },
                },
            },
            "/api/orders/{order_id}": {
                "get": {
                    "operationId": "getOrder",
                    "security": _SECURED,
                    "parameters": [{"name": "order_id", **_PATH_ID}],
                    "responses": {
                        "200": _json(_ref("Order"), "The order."),
                        "401": _error("Not authenticated."),
                        "404": _error("No such order of mine."),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {"200": {"description": "This document."}},
                }
            },
        },
    }
