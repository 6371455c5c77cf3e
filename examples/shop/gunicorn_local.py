"""gunicorn settings of ``make run-local`` (run_local.py), the tests and bench/shop_memory.py.

The deployment's own config is rendered into deploy/ from flaskprod.toml; this one
is for serving the shop from a checkout. The bind is given on the command line.
"""

from __future__ import annotations

from typing import Any

from flaskprod.runtime.fork import after_fork, before_fork

wsgi_app = "wsgi:app"
worker_class = "gthread"
workers = 2
threads = 4
timeout = 30
graceful_timeout = 30
# Import the app once in the master, then fork: faster starts, shared memory.
preload_app = True
# gunicorn >= 24 opens a control socket at one path per user ($HOME/.gunicorn/
# gunicorn.ctl): two servers of one user (tests, make run-local, up) would take it from each
# other, and a user without a writable home fails. Nothing here uses it.
control_socket_disable = True

# gunicorn's own lines as JSON too (the app's come from flaskprod.Production). Its
# access log stays off: the app writes one JSON line per request, with the request id.
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "flaskprod.runtime.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
    },
}


def pre_fork(server: Any, worker: Any) -> None:
    # The preloaded app's objects join gc's permanent generation: the workers'
    # collections never touch (copy) their pages.
    before_fork()


def post_fork(server: Any, worker: Any) -> None:
    # With preload_app the master imported the app: never share its connections.
    after_fork()
