"""Through the whole stack `flaskprod up` runs: nginx (TLS) -> gunicorn -> the shop,
PostgreSQL and Redis, all real (see conftest.py's ``shop_stack``)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from e2e_support import ShopStack, flaskprod

from flaskprod.stack.state import children_of

pytestmark = pytest.mark.services

SECURITY_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
)


def test_http_redirects_to_https(shop_stack: ShopStack) -> None:
    response = httpx.get(f"http://localhost:{shop_stack.http_port}/orders?page=2", timeout=5)
    assert response.status_code == 301
    assert (
        response.headers["location"] == f"https://localhost:{shop_stack.https_port}/orders?page=2"
    )


@pytest.mark.parametrize("path", ["/", "/static/style.css", "/api/products", "/no-such-page"])
def test_security_headers_are_sent_exactly_once(shop_stack: ShopStack, path: str) -> None:
    with shop_stack.client() as client:
        response = client.get(path)
    assert response.status_code in (200, 404)
    for name in SECURITY_HEADERS:
        values = response.headers.get_list(name)
        assert len(values) == 1, f"{path}: {name} sent {len(values)} times: {values}"
    assert "max-age=" in response.headers["strict-transport-security"]


def test_request_id_header_is_sent_exactly_once(shop_stack: ShopStack) -> None:
    # Both nginx (add_header) and the app may set it; the client must get one value.
    with shop_stack.client() as client:
        response = client.get("/api/products", headers={"X-Request-ID": "once-1"})
    assert response.headers.get_list("x-request-id") == ["once-1"]


def _handshake(stack: ShopStack, version: ssl.TLSVersion) -> str:
    context = stack.ssl_context()
    context.minimum_version = version
    context.maximum_version = version
    # Let this client offer old protocols at all: the server must be the one refusing.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with (
        socket.create_connection(("127.0.0.1", stack.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


def test_tls_1_2_and_1_3_only(shop_stack: ShopStack) -> None:
    assert _handshake(shop_stack, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(shop_stack, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    for old in (ssl.TLSVersion["TLSv1"], ssl.TLSVersion["TLSv1_1"]):
        with pytest.raises(ssl.SSLError):
            _handshake(shop_stack, old)


def test_static_files_are_served_by_nginx_and_revalidated(shop_stack: ShopStack) -> None:
    marker = f"static-{uuid.uuid4().hex}"
    with shop_stack.client() as client:
        response = client.get("/static/style.css", headers={"X-Request-ID": marker})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/css")
        cache = response.headers["cache-control"]
        # style.css has no content hash in its name: revalidated, never immutable
        assert cache == "public, max-age=3600, must-revalidate"
        # Control: a request that does reach the app shows up in gunicorn's log.
        control = f"app-{uuid.uuid4().hex}"
        # (Not /api/products: nginx may answer that one from its cache.)
        assert client.get("/api/openapi.json", headers={"X-Request-ID": control}).status_code == 200
    log = _wait_for_log(shop_stack, control)
    assert marker not in log
    assert '"path": "/static/' not in log and '"path":"/static/' not in log


def _wait_for_log(stack: ShopStack, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = stack.gunicorn_log()
        if needle in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_upload_over_the_limit_is_refused_by_nginx(shop_stack: ShopStack) -> None:
    limit = 10 * 1024 * 1024  # the shop's spec: http.max_body = "10m"
    big, small = f"big-{uuid.uuid4().hex}", f"small-{uuid.uuid4().hex}"
    with shop_stack.client() as client:
        refused = client.post(
            "/api/orders",
            content=b"x" * (limit + 1024),
            headers={"X-Request-ID": big, "Content-Type": "application/json"},
        )
        assert refused.status_code == 413
        assert "nginx" in refused.text  # nginx's own error page, not the app's JSON
        under = client.post(
            "/api/orders",
            content=b"x" * 1024,
            headers={"X-Request-ID": small, "Content-Type": "application/json"},
        )
    assert under.status_code == 401  # reached the app: it wants a login first
    assert under.headers["content-type"].startswith("application/json")
    log = _wait_for_log(shop_stack, small)
    assert small in log and big not in log


def test_request_id_passes_through_nginx_to_the_app_log_and_back(shop_stack: ShopStack) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    with shop_stack.client() as client:
        response = client.get("/api/openapi.json", headers={"X-Request-ID": request_id})
    assert response.status_code == 200
    assert set(response.headers.get_list("x-request-id")) == {request_id}
    _wait_for_log(shop_stack, request_id)
    app_lines = [
        line for line in shop_stack.app_log_lines() if line.get("request_id") == request_id
    ]
    assert any(line.get("logger") == "flaskprod.access" for line in app_lines), app_lines


def _remote_seen_by_app(stack: ShopStack, source: str, forwarded: str | None) -> object:
    request_id = f"xff-{uuid.uuid4().hex}"
    headers = {"X-Request-ID": request_id}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    # Another loopback address as the client's source: nginx sees it as $remote_addr,
    # so the app must report it rather than nginx's own 127.0.0.1.
    transport = httpx.HTTPTransport(verify=stack.ssl_context(), local_address=source)
    with httpx.Client(transport=transport, base_url=stack.url, timeout=10) as client:
        response = client.get("/api/openapi.json", headers=headers)  # never cached by nginx
    assert response.status_code == 200
    _wait_for_log(stack, request_id)
    lines = [
        line
        for line in stack.app_log_lines()
        if line.get("request_id") == request_id and line.get("logger") == "flaskprod.access"
    ]
    assert lines, f"no access line of the app for {request_id}"
    return lines[0].get("remote_addr")


def test_forwarded_for_gives_the_app_the_client_address(shop_stack: ShopStack) -> None:
    assert _remote_seen_by_app(shop_stack, "127.0.0.7", None) == "127.0.0.7"


def test_forged_forwarded_for_cannot_spoof_the_client_address(shop_stack: ShopStack) -> None:
    assert _remote_seen_by_app(shop_stack, "127.0.0.8", "6.6.6.6") == "127.0.0.8"
    assert _remote_seen_by_app(shop_stack, "127.0.0.9", "6.6.6.6, 5.5.5.5") == "127.0.0.9"


# -- under load ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    failures: list[str] = field(default_factory=list)
    retried: int = 0
    gets: int = 0
    acknowledged: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _load(
    stack: ShopStack,
    stop: threading.Event,
    result: LoadResult,
    *,
    getters: int,
    posters: int,
    max_requests: int,
    deadline: float,
) -> ThreadPoolExecutor:
    """Start bounded concurrent GETs and idempotent-keyed order POSTs (no blind retries:
    a retry would hide a failure); returns the running pool.

    GETs load the HTML product list (outside nginx's /api/ rate limit). Each POST
    thread comes from its own loopback address and stays under the API's rate limit
    (20 r/s per address): a 429 would be the limit working, not the stack failing.

    One retry is allowed, and counted, in exactly one case: the server closed an idle
    keep-alive connection just as the client reused it, before any byte of a response
    (nginx's old workers close idle connections when it reloads). RFC 9112 9.3.1 lets
    clients retry then, browsers do; the POST is retried with the same Idempotency-Key,
    so it cannot create a second order. Anything else is a failure.
    """
    budget = {"left": max_requests}

    def take() -> bool:
        with result.lock:
            budget["left"] -= 1
            return budget["left"] >= 0 and not stop.is_set() and time.monotonic() < deadline

    def getter() -> None:
        with stack.client() as client:
            while take():
                try:
                    response = _send(client, result, "GET", "/")
                except httpx.HTTPError as error:
                    result.failures.append(f"GET: {type(error).__name__}: {error}")
                    continue
                with result.lock:
                    result.gets += 1
                    result.statuses[response.status_code] += 1
                if response.status_code != 200:
                    result.failures.append(f"GET: {response.status_code}")

    def poster(source: str) -> None:
        headers = {"Authorization": f"Bearer {stack.token}"}
        transport = httpx.HTTPTransport(verify=stack.ssl_context(), local_address=source)
        with httpx.Client(
            transport=transport, base_url=stack.url, headers=headers, timeout=10
        ) as client:
            while take():
                time.sleep(0.07)  # about 12 r/s from this address
                key = uuid.uuid4().hex
                try:
                    response = _send(
                        client,
                        result,
                        "POST",
                        "/api/orders",
                        json={"items": [{"product_id": 1, "quantity": 1}]},
                        headers={"Idempotency-Key": key},
                    )
                except httpx.HTTPError as error:
                    result.failures.append(f"POST {key}: {type(error).__name__}: {error}")
                    continue
                with result.lock:
                    result.statuses[response.status_code] += 1
                if response.status_code in (200, 201):  # 200: the retry found it
                    with result.lock:
                        result.acknowledged.append(key)
                else:
                    result.failures.append(
                        f"POST {key}: {response.status_code} {response.text[:100]}"
                    )

    pool = ThreadPoolExecutor(max_workers=getters + posters)
    for _ in range(getters):
        pool.submit(getter)
    for number in range(posters):
        pool.submit(poster, f"127.0.2.{number + 1}")
    return pool


def _send(
    client: httpx.Client, result: LoadResult, method: str, url: str, **kwargs: object
) -> httpx.Response:
    """One request; retried once only when a reused keep-alive connection was closed
    before any response (see _load)."""
    try:
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.RemoteProtocolError as error:
        if "without sending a response" not in str(error):
            raise
        with result.lock:
            result.retried += 1
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]


def _orders_by_key(stack: ShopStack, keys: list[str]) -> Counter[str]:
    with psycopg.connect(stack.database_dsn(), connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT idempotency_key FROM orders WHERE idempotency_key = ANY(%s)", (keys,)
        ).fetchall()
    return Counter(str(row[0]) for row in rows)


def _wait_requests(result: LoadResult, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while result.gets + len(result.acknowledged) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_reload_under_load_loses_nothing(shop_stack: ShopStack) -> None:
    stop = threading.Event()
    result = LoadResult()
    workers_before = set(children_of(shop_stack.pid("gunicorn")))
    pool = _load(
        shop_stack, stop, result, getters=4, posters=3, max_requests=3000,
        deadline=time.monotonic() + 40,
    )  # fmt: skip
    try:
        _wait_requests(result, 50)  # the load runs before the reload starts
        reload = flaskprod("reload", str(shop_stack.project), timeout=60)
        assert "reloaded" in reload.stdout
        served_during = result.gets + len(result.acknowledged)
        _wait_requests(result, served_during + 50)  # and keeps running after it
    finally:
        stop.set()
        pool.shutdown(wait=True)
    assert not result.failures, f"{len(result.failures)} failed: {result.failures[:5]}"
    assert result.gets > 50 and len(result.acknowledged) > 20, result.statuses
    # The workers really were replaced while the load ran.
    assert not workers_before & set(children_of(shop_stack.pid("gunicorn")))
    stored = _orders_by_key(shop_stack, result.acknowledged)
    assert sorted(stored) == sorted(result.acknowledged), "an acknowledged order is missing"
    assert all(count == 1 for count in stored.values()), "an order was stored twice"


def _interrupted_upstream_requests(stack: ShopStack) -> int:
    """Requests nginx saw cut off by the app server (then retried, if idempotent)."""
    log = stack.dirs.logs / "nginx-error.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count("upstream prematurely closed") + text.count("reset by peer")


def test_a_killed_worker_is_replaced_and_gets_do_not_fail(shop_stack: ShopStack) -> None:
    master = shop_stack.pid("gunicorn")
    stop = threading.Event()
    result = LoadResult()
    interrupted_before = _interrupted_upstream_requests(shop_stack)
    pool = _load(
        shop_stack, stop, result, getters=6, posters=0, max_requests=4000,
        deadline=time.monotonic() + 40,
    )  # fmt: skip
    try:
        # Kill until a kill cuts requests in flight (nginx logs it), at most 3 times:
        # a worker killed while idle would prove nothing about retries.
        for _ in range(3):
            _wait_requests(result, result.gets + 100)
            victim = children_of(master)[0]
            os.kill(victim, signal.SIGKILL)  # a worker of the stack this session started
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                workers = children_of(master)
                if victim not in workers and len(workers) >= 2:
                    break
                time.sleep(0.05)
            assert victim not in children_of(master), "the master did not replace the worker"
            _wait_requests(result, result.gets + 50)
            if _interrupted_upstream_requests(shop_stack) > interrupted_before:
                break
    finally:
        stop.set()
        pool.shutdown(wait=True)
    assert _interrupted_upstream_requests(shop_stack) > interrupted_before, (
        "no kill interrupted a request in flight"
    )
    assert not result.failures, f"{len(result.failures)} failed: {result.failures[:5]}"
    assert result.gets > 50
