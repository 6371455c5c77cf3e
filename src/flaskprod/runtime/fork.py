"""After a fork: never share the parent's connections with the child.

The kit's ``gunicorn.conf.py`` calls :func:`after_fork` from ``post_fork``. It matters
with ``preload_app``, where the master imported the app (and may have connected)
before forking the workers.
"""

from __future__ import annotations

import weakref

from flask import Flask

from flaskprod.runtime.database import dispose_engines
from flaskprod.runtime.redis import reset_pools

_apps: weakref.WeakSet[Flask] = weakref.WeakSet()


def register(app: Flask) -> None:
    """Remember ``app`` (done by ``Production``) so :func:`after_fork` can reach it."""
    _apps.add(app)


def after_fork() -> None:
    """Dispose SQLAlchemy engines and reset Redis pools of every Production app here."""
    for app in list(_apps):
        dispose_engines(app)
        reset_pools(app)
