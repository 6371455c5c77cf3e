"""Redis clients that can never hang a worker.

redis-py's defaults would: 5 s timeouts and, since redis-py 6, ten retries with
backoff on every timeout. Here: ~1 s connect and socket timeouts, no retries, and a
health check of idle connections every 30 s. One client per app, in
``app.extensions["flaskprod.redis"]``; ``redis`` is imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask

if TYPE_CHECKING:
    import redis as redis_lib

EXTENSION_KEY = "flaskprod.redis"


def make_client(
    url: str, *, timeout: float = 1.0, connect_timeout: float = 1.0
) -> redis_lib.Redis[bytes]:
    """A new client for ``url`` with flaskprod's bounded timeouts."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_lib.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        health_check_interval=30,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), 0),
    )


def redis_client(app_or_url: Flask | str) -> redis_lib.Redis[bytes]:
    """The app's Redis client (from ``REDIS_URL``), or a new one for a URL."""
    if isinstance(app_or_url, str):
        return make_client(app_or_url)
    app = app_or_url
    client: redis_lib.Redis[bytes] | None = app.extensions.get(EXTENSION_KEY)
    if client is None:
        url = app.config.get("REDIS_URL")
        if not url:
            raise RuntimeError("REDIS_URL is not set: put the Redis URL in the environment")
        client = make_client(
            url,
            timeout=float(app.config.get("REDIS_SOCKET_TIMEOUT", 1.0)),
            connect_timeout=float(app.config.get("REDIS_CONNECT_TIMEOUT", 1.0)),
        )
        app.extensions[EXTENSION_KEY] = client
    return client


def reset_pools(app: Flask) -> None:
    """Forget connections inherited from a parent process (after a fork)."""
    client: Any = app.extensions.get(EXTENSION_KEY)
    if client is not None:
        client.connection_pool.reset()
