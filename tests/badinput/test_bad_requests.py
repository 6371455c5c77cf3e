"""Each kind of bad input is refused with the right status and no traceback — through
nginx and, where the app has its own guard, against the app directly (the app server's
socket). The autouse ``no_errors_logged`` also fails a test whose requests made the
app log a traceback or a 500."""

from __future__ import annotations

import json

import httpx
import pytest
from badinput_support import (
    assert_clean,
    csrf_token,
    png_bytes,
    raw_tls_request,
    referer,
    signed_up,
)

from bench.faults.stack import FaultStack

pytestmark = pytest.mark.services

ORDER_HEADERS = {"Content-Type": "application/json"}


def _auth(stack: FaultStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}", **ORDER_HEADERS}


# -- oversized bodies: the same limit in nginx and in the app ------------------------------


def test_a_body_over_the_limit_is_413_from_nginx_and_from_the_app(
    bad_stack: FaultStack, app_client: httpx.Client
) -> None:
    limit = bad_stack.spec().http.max_body_bytes
    over = b"x" * (limit + 1)
    with bad_stack.client("127.0.8.1") as client:
        by_nginx = client.post("/api/orders", content=over, headers=_auth(bad_stack))
    assert by_nginx.status_code == 413
    assert "nginx" in by_nginx.text  # refused by nginx itself, before the app
    assert_clean(by_nginx)
    by_app = app_client.post("/api/orders", content=over, headers=_auth(bad_stack))
    assert by_app.status_code == 413
    assert by_app.json()["error"]["status"] == 413  # the app's own JSON error
    assert_clean(by_app)


def test_a_body_of_exactly_the_limit_passes_both(
    bad_stack: FaultStack, app_client: httpx.Client
) -> None:
    # Same limit, not merely "both have one": the largest allowed body reaches the view
    # through nginx and directly (400: it is not JSON; never 413).
    body = b"x" * bad_stack.spec().http.max_body_bytes
    with bad_stack.client("127.0.8.2") as client:
        through = client.post("/api/orders", content=body, headers=_auth(bad_stack))
    direct = app_client.post("/api/orders", content=body, headers=_auth(bad_stack))
    assert (through.status_code, direct.status_code) == (400, 400)
    assert through.json()["error"]["code"] == direct.json()["error"]["code"] == "bad_request"


# -- malformed JSON and invalid UTF-8 --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": [',
        b"not json at all",
        b'{"items": [{"product_id": 1, "quantity": 1}]',
        b"\xff\xfe\x00{",
        b'{"items": [{"product_id": "\xff\xfe", "quantity": 1}]}',
        b'{"items": [{"product_id": 1, "quantity": 1}], "note": "\xc0\xaf"}',
    ],
    ids=["truncated", "text", "unclosed", "utf16-bom", "bad-utf8-value", "overlong-utf8"],
)
def test_malformed_or_non_utf8_json_is_400_json(
    bad_stack: FaultStack, app_client: httpx.Client, body: bytes
) -> None:
    with bad_stack.client("127.0.8.3") as client:
        through = client.post("/api/orders", content=body, headers=_auth(bad_stack))
    direct = app_client.post("/api/orders", content=body, headers=_auth(bad_stack))
    for response in (through, direct):
        assert response.status_code == 400, response.text[:300]
        assert response.json()["error"]["code"] in ("bad_request", "invalid_order")
        assert_clean(response)


def test_json_that_is_valid_but_the_wrong_shape_names_the_field(bad_stack: FaultStack) -> None:
    with bad_stack.client("127.0.8.4") as client:
        response = client.post(
            "/api/orders",
            content=json.dumps({"items": [{"product_id": "1", "quantity": -5}]}),
            headers=_auth(bad_stack),
        )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"items[0].product_id", "items[0].quantity"}


def test_invalid_utf8_in_form_fields_is_a_form_error_not_a_500(bad_stack: FaultStack) -> None:
    with bad_stack.client("127.0.8.5") as client:
        token = csrf_token(client, "/signup")
        response = client.post(
            "/signup",
            content=f"csrf_token={token}&email=%FF%FE%C0%AF@example.com&password=%FF"
            "&confirm=%FF".encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                **referer(bad_stack, "/signup"),
            },
        )
    # With a valid token, the form itself answers: its errors, never a 500.
    assert response.status_code in (200, 400, 422), response.status_code
    assert response.headers["content-type"].startswith("text/html")
    assert_clean(response)


@pytest.mark.parametrize(
    "path",
    ["/products/%FF%FE", "/api/products/%C0%AF", "/%FF", "/api/orders/%80", "/static/%FF.css"],
)
def test_invalid_utf8_in_the_url_is_a_4xx(
    bad_stack: FaultStack, app_client: httpx.Client, path: str
) -> None:
    with bad_stack.client("127.0.8.6") as client:
        through = client.get(path)
    assert 400 <= through.status_code < 500, (path, through.status_code)
    assert_clean(through)
    if not path.startswith("/static/"):  # nginx serves /static/ itself
        direct = app_client.get(path)
        assert 400 <= direct.status_code < 500, (path, direct.status_code)
        assert_clean(direct)


def test_raw_non_ascii_bytes_in_the_request_line_are_refused(bad_stack: FaultStack) -> None:
    answer = raw_tls_request(
        bad_stack,
        b"GET /products/\xff\xfe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
    assert b"Traceback" not in answer


# -- huge headers -------------------------------------------------------------------------


def test_a_huge_header_is_400_or_431_from_nginx(bad_stack: FaultStack) -> None:
    with bad_stack.client("127.0.8.7") as client:
        response = client.get("/api/products", headers={"X-Huge": "a" * 64 * 1024})
    assert response.status_code in (400, 431), response.status_code
    assert_clean(response)


def test_a_huge_cookie_is_400_or_431_from_nginx(bad_stack: FaultStack) -> None:
    with bad_stack.client("127.0.8.7") as client:
        response = client.get("/", headers={"Cookie": "session=" + "b" * 32 * 1024})
    assert response.status_code in (400, 431), response.status_code
    assert_clean(response)


def test_huge_or_many_headers_are_refused_by_the_app_server_too(
    bad_stack: FaultStack, app_client: httpx.Client
) -> None:
    # Behind nginx this never arrives; directly, the app server's own limits answer:
    # both refuse more than 100 headers. A 16 KiB header only gunicorn refuses (8190
    # bytes a field): granian's HTTP/1 buffer (--http1-buffer-size) is 408 KiB by
    # default and the kit does not lower it (nginx refuses any header over 8 KiB).
    many = app_client.get("/api/products", headers={f"X-H{i}": "v" for i in range(150)})
    huge = app_client.get("/api/products", headers={"X-Huge": "a" * 16 * 1024})
    refused = [many, huge] if bad_stack.server == "gunicorn" else [many]
    for response in refused:
        assert response.status_code in (400, 431), response.status_code
        assert_clean(response)
    if bad_stack.server == "granian":
        assert huge.status_code == 200, huge.status_code


def test_many_headers_through_nginx_are_a_4xx(bad_stack: FaultStack) -> None:
    with bad_stack.client("127.0.8.8") as client:
        response = client.get("/api/products", headers={f"X-H{i}": "v" for i in range(150)})
    assert 400 <= response.status_code < 500 or response.status_code == 200, response.status_code
    assert response.status_code != 502
    assert_clean(response)


# -- uploads: path traversal in the file name ---------------------------------------------


def test_a_traversal_file_name_is_stored_under_a_generated_name(bad_stack: FaultStack) -> None:
    before = {p.name for p in bad_stack.dirs.media.iterdir()}
    with signed_up(bad_stack, "127.0.8.9") as client:
        token = csrf_token(client, "/products/new")
        response = client.post(
            "/products/new",
            data={"csrf_token": token, "name": "Traversal", "price": "1.00"},
            files={"image": ("../../etc/passwd.png", png_bytes(), "image/png")},
            headers=referer(bad_stack, "/products/new"),
        )
        assert response.status_code == 302, response.text[:500]
        page = client.get(response.headers["location"])
    assert page.status_code == 200
    new = {p.name for p in bad_stack.dirs.media.iterdir()} - before
    assert len(new) == 1, new
    (stored,) = new
    assert stored.endswith(".png") and "passwd" not in stored and ".." not in stored
    assert len(stored.removesuffix(".png")) == 32  # a uuid4 hex, nothing from the client
    assert f"/media/{stored}" in page.text
    # Nothing landed beside or above the media folder.
    assert not (bad_stack.dirs.media.parent / "etc").exists()
    assert not (bad_stack.dirs.root.parent / "etc").exists()


# -- forms without their CSRF token ----------------------------------------------------------


def test_a_form_post_without_csrf_token_is_400(bad_stack: FaultStack) -> None:
    with bad_stack.client("127.0.8.10") as client:
        response = client.post(
            "/signup",
            data={"email": "nocsrf@example.com", "password": "pw-123456", "confirm": "pw-123456"},
            headers=referer(bad_stack, "/signup"),
        )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert_clean(response)


def test_a_logged_in_form_post_with_a_wrong_csrf_token_is_400(bad_stack: FaultStack) -> None:
    with signed_up(bad_stack, "127.0.8.11") as client:
        response = client.post(
            "/products/new",
            data={"csrf_token": "forged", "name": "X", "price": "1.00"},
            files={"image": ("x.png", png_bytes(), "image/png")},
            headers=referer(bad_stack, "/products/new"),
        )
    assert response.status_code == 400
    assert_clean(response)
