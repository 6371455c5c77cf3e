"""nginx's response cache in the stack `up` runs: it keeps only what the app marks
cacheable, never for a request that carries a cookie or credentials."""

from __future__ import annotations

import time
import uuid

from e2e_support import ShopStack


def _reached_app(stack: ShopStack, request_id: str, control: str) -> bool:
    """Whether gunicorn logged ``request_id``; ``control`` (sent last, to an uncached
    route) proves the log is written up to that point."""
    deadline = time.monotonic() + 5.0
    while control not in stack.gunicorn_log():
        assert time.monotonic() < deadline, f"control request {control} never logged"
        time.sleep(0.05)
    return request_id in stack.gunicorn_log()


def _ids(count: int) -> list[str]:
    return [f"cache-{uuid.uuid4().hex}" for _ in range(count)]


def test_public_product_list_is_answered_from_the_cache(shop_stack: ShopStack) -> None:
    first, second, control = _ids(3)
    with shop_stack.client() as client:
        filled = client.get("/api/products", headers={"X-Request-ID": first})
        cached = client.get("/api/products", headers={"X-Request-ID": second})
        client.get("/api/openapi.json", headers={"X-Request-ID": control})
    assert filled.status_code == cached.status_code == 200
    assert "public" in cached.headers["cache-control"]
    assert cached.content == filled.content
    # nginx's own id for the request, never the one that filled the cache.
    assert cached.headers.get_list("x-request-id") == [second]
    # Within max-age the second one never reached the app (unless the first one's
    # entry had just expired: 2 s, far longer than two requests take).
    assert not _reached_app(shop_stack, second, control)


def test_requests_with_a_cookie_or_credentials_always_reach_the_app(
    shop_stack: ShopStack,
) -> None:
    warm, with_cookie, with_token, control = _ids(4)
    with shop_stack.client() as client:
        client.get("/api/products", headers={"X-Request-ID": warm})
        client.get("/api/products", headers={"X-Request-ID": with_cookie, "Cookie": "session=x"})
        client.get(
            "/api/products",
            headers={"X-Request-ID": with_token, "Authorization": "Bearer nope"},
        )
        client.get("/api/openapi.json", headers={"X-Request-ID": control})
    assert _reached_app(shop_stack, with_cookie, control)
    assert _reached_app(shop_stack, with_token, control)


def test_responses_without_cache_control_are_not_kept(shop_stack: ShopStack) -> None:
    first, second, control = _ids(3)
    with shop_stack.client() as client:
        for request_id in (first, second):
            response = client.get("/api/openapi.json", headers={"X-Request-ID": request_id})
            assert response.status_code == 200
            assert "public" not in response.headers.get("cache-control", "")
        client.get("/health", headers={"X-Request-ID": control})
    assert _reached_app(shop_stack, first, control)
    assert _reached_app(shop_stack, second, control)
