"""Helpers of the bad-input tests: raw requests, a signed-up browser session through
nginx (CSRF token as a browser gets it), and the no-traceback check of a body."""

from __future__ import annotations

import contextlib
import io
import re
import socket
import uuid
from collections.abc import Iterator

import httpx
from PIL import Image

from bench.faults.stack import FaultStack

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "werkzeug.exceptions")
PASSWORD = "bad-input-password-1"


def assert_clean(response: httpx.Response) -> None:
    """No traceback, no stack frame, no exception class name in what the client sees."""
    text = response.text
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"{response.status_code} body shows {marker!r}: {text[:500]}"


def csrf_token(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code, page.text[:300])
    match = _CSRF.search(page.text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@contextlib.contextmanager
def signed_up(stack: FaultStack, source: str) -> Iterator[httpx.Client]:
    """A browser-like client with a fresh account, logged in (session cookie)."""
    with stack.client(source) as client:
        yield _sign_up(stack, client)


def _sign_up(stack: FaultStack, client: httpx.Client) -> httpx.Client:
    email = f"bad-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(
        "/signup",
        data={
            "csrf_token": csrf_token(client, "/signup"),
            "email": email,
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
        headers=referer(stack, "/signup"),
    )
    assert response.status_code == 302, response.text[:500]
    return client


def referer(stack: FaultStack, path: str) -> dict[str, str]:
    """Flask-WTF checks the Referer of HTTPS form posts (as browsers send it)."""
    return {"Referer": f"{stack.url}{path}"}


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(out, format="PNG")
    return out.getvalue()


def raw_tls_request(stack: FaultStack, data: bytes) -> bytes:
    """Send ``data`` as is over TLS to nginx and return the start of the answer (for
    requests no HTTP client would send: raw bytes in the request line)."""
    context = stack.ssl_context()
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(data)
        chunks = b""
        while len(chunks) < 4096:
            part = tls.recv(4096)
            if not part:
                break
            chunks += part
        return chunks
