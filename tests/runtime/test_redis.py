from __future__ import annotations

import time

import pytest
from flask import Flask
from runtime_helpers import HangingServer, MakeApp, in_child

from flaskprod.runtime.fork import after_fork
from flaskprod.runtime.redis import redis_client


def test_client_options(make_app: MakeApp) -> None:
    app = make_app(env={"REDIS_URL": "redis://127.0.0.1:1/3"})
    client = redis_client(app)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.0
    assert kwargs["socket_connect_timeout"] == 1.0
    assert kwargs["health_check_interval"] == 30
    assert kwargs["db"] == 3
    assert client.get_retry()._retries == 0
    assert redis_client(app) is client
    assert app.extensions["flaskprod.redis"] is client


def test_one_client_per_app(make_app: MakeApp) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0"}
    first, second = make_app(env=env), make_app(env=env)
    assert redis_client(first) is not redis_client(second)


def test_missing_url_is_explained(make_app: MakeApp) -> None:
    with pytest.raises(RuntimeError, match="REDIS_URL is not set"):
        redis_client(make_app())


def test_stalled_redis_cannot_hang(hanging_server: HangingServer) -> None:
    client = redis_client(f"redis://127.0.0.1:{hanging_server.port}/0")
    start = time.monotonic()
    with pytest.raises(Exception, match="Timeout"):
        client.ping()
    # One socket timeout, no retries (redis-py's default would retry ten times).
    assert 0.9 < time.monotonic() - start < 1.5


@pytest.mark.services
def test_real_redis_and_fork(make_app: MakeApp, redis_url: str) -> None:
    app: Flask = make_app(env={"REDIS_URL": redis_url})
    client = redis_client(app)
    client.set("k", "v")
    assert client.get("k") == b"v"
    parent = client.client_id()

    def child() -> int:
        after_fork()
        return int(redis_client(app).client_id())

    assert in_child(child) != parent
    assert client.client_id() == parent
