"""The shop driven over HTTP as a browser drives it (httpx, through the stack's nginx):
the CSRF token of a form, a fresh seller's account, an image to upload. Shared by the
tests that run the shop under ``up`` or on a host (tests/ is on sys.path: its
conftest.py)."""

from __future__ import annotations

import io
import re
import uuid

import httpx
from PIL import Image

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: httpx.Client, path: str) -> str:
    """The CSRF token of the form on ``path``."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    match = _CSRF.search(page.text)
    assert match, path
    return match.group(1)


def sign_up(client: httpx.Client, origin: str, prefix: str, password: str) -> None:
    """A fresh account (``PREFIX-<random>@example.com``), logged in on ``client``.
    ``origin``: the site's, as the browser's Referer names it (the app checks it)."""
    signup = client.post(
        "/signup",
        data={
            "csrf_token": csrf_token(client, "/signup"),
            "email": f"{prefix}-{uuid.uuid4().hex[:10]}@example.com",
            "password": password,
            "confirm": password,
        },
        headers={"Referer": f"{origin}/signup"},
    )
    assert signup.status_code == 302, signup.text[:300]


def png(size: tuple[int, int], color: str) -> bytes:
    """A PNG of one ``color``, large enough that the worker's thumbnail is smaller."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def add_product(
    client: httpx.Client,
    origin: str,
    name: str,
    price: str,
    image: bytes,
    *,
    token: str | None = None,
) -> int:
    """A product with ``image`` (a PNG), through the seller's form; its id. ``token``:
    the form's CSRF token if already fetched (a test timing the POST alone)."""
    created = client.post(
        "/products/new",
        data={
            "csrf_token": token or csrf_token(client, "/products/new"),
            "name": name,
            "price": price,
        },
        files={"image": ("mug.png", image, "image/png")},
        headers={"Referer": f"{origin}/products/new"},
    )
    assert created.status_code == 302, created.text[:300]
    return int(created.headers["Location"].rstrip("/").rsplit("/", 1)[1])
