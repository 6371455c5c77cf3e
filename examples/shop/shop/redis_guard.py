"""After a Redis error, leave Redis alone for a few seconds (per app, per worker).

Redis is optional for the shop (a cache and the session store): when it is down or
stalled, each request that tries it costs up to the runtime's socket timeout (1 s).
One failure opens this circuit, so a stalled Redis costs one timeout per worker every
BACKOFF_SECONDS instead of one per request; afterwards the next request tries again.
"""

from __future__ import annotations

import logging
import time

from flask import Flask

log = logging.getLogger(__name__)

BACKOFF_SECONDS = 5.0
_KEY = "shop.redis_down_until"


def redis_usable(app: Flask) -> bool:
    return time.monotonic() >= app.extensions.get(_KEY, 0.0)


def redis_failed(app: Flask, action: str, error: Exception) -> None:
    app.extensions[_KEY] = time.monotonic() + BACKOFF_SECONDS
    log.warning("Redis %s failed, not using Redis for %g s: %s", action, BACKOFF_SECONDS, error)
