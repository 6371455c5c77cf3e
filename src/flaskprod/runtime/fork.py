"""Around a fork: keep the preloaded app's memory shared, never share its connections.

The kit's ``gunicorn.conf.py`` calls :func:`before_fork` from ``pre_fork`` (in the
master) and :func:`after_fork` from ``post_fork`` (in each new worker). Both matter
with ``preload_app``, where the master imported the app (and may have connected)
before forking the workers.
"""

from __future__ import annotations

import gc
import weakref

from flask import Flask

from flaskprod.runtime.database import dispose_engines
from flaskprod.runtime.redis import reset_pools

_apps: weakref.WeakSet[Flask] = weakref.WeakSet()


def register(app: Flask) -> None:
    """Remember ``app`` (done by ``Production``) so :func:`after_fork` can reach it."""
    _apps.add(app)


def before_fork() -> None:
    """Move every object the master holds (the preloaded app) to the garbage
    collector's permanent generation: a worker's collections then never walk them, so
    never write their pages, which stay shared with the master instead of being copied
    into every worker (gc.freeze(), as the gc docs advise before fork()). Objects are
    still freed when their last reference goes; only cycles among them are never
    collected, and at fork time they are the app's long-lived modules and objects.
    Measured on the shop (bench/shop_memory.py, PostgreSQL + Redis, 2,000 requests):
    sync workers' PSS 47.6 -> 36.3 MiB each; their RSS does not change."""
    gc.freeze()


def after_fork() -> None:
    """Dispose SQLAlchemy engines and reset Redis pools of every Production app here."""
    for app in list(_apps):
        dispose_engines(app)
        reset_pools(app)
