"""Server-side sessions in Redis, opt-in: ``SESSION_BACKEND=redis`` (the environment's
FLASKPROD_SESSION_BACKEND, or ``Production(app, SESSION_BACKEND="redis")``).

Flask's default session is a signed cookie: stateless, but a logout cannot revoke a
copied cookie, and what the session holds travels with every request. In Redis, every
app server behind the balancer sees the same sessions (a login on one host is honoured
by the next), and a logout deletes the session for all of them.

Flask-Session does the work (well kept, in the Pallets ecosystem, the shop's choice
since its first version): its RedisSessionInterface with the runtime's Redis client —
bounded timeouts, no retries (runtime/redis.py) — so a stalled Redis fails a request
in about a second instead of hanging a worker. A small SessionInterface of our own
would repeat what it already gets right (session ids from ``secrets``, fixation-safe
regeneration, signed ids optional, expiry with the cookie).
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Flask

#: The config key (FLASKPROD_SESSION_BACKEND in the environment).
BACKEND_KEY = "SESSION_BACKEND"
DEFAULT_PREFIX = "session:"

Interface = TypeVar("Interface")


def wants_redis(config: Any) -> bool:
    return str(config.get(BACKEND_KEY) or "").strip().lower() == "redis"


def redis_session_interface(app: Flask, cls: type[Interface] | None = None) -> Interface:
    """Flask-Session's Redis interface (or the subclass ``cls``) on the app's bounded
    Redis client, keys under SESSION_KEY_PREFIX."""
    from flask_session.redis import RedisSessionInterface

    from flaskprod.runtime.redis import redis_client

    kind: Any = cls or RedisSessionInterface
    app.config.setdefault("SESSION_TYPE", "redis")
    interface: Interface = kind(
        app,
        client=redis_client(app),
        key_prefix=app.config.get("SESSION_KEY_PREFIX", DEFAULT_PREFIX),
        permanent=app.config.get("SESSION_PERMANENT", True),
    )
    return interface


def init_sessions(app: Flask) -> None:
    """Put the sessions in Redis when SESSION_BACKEND=redis (the app may install its
    own interface afterwards, as the shop does with its Redis-outage handling)."""
    if wants_redis(app.config):
        app.session_interface = redis_session_interface(app)
