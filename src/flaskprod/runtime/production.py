"""``Production(app)``: one call that makes a Flask app production-ready.

Use it first in the app factory, before other extensions::

    def create_app():
        app = Flask(__name__)
        Production(app)          # config, logging, checks, headers, errors, health
        db.init_app(app)         # gets the production engine options
        return app

What it does, in order: reads the configuration from the environment for the
profile (:mod:`flaskprod.runtime.config`) and refuses to start when it is unsafe
(exit status 3, one line per problem); configures logging; trusts
``TRUSTED_PROXIES`` proxies; adds request ids, one access log line per request,
security headers and the health endpoints (:mod:`flaskprod.runtime.middleware`);
installs the error pages; sets SQLAlchemy engine options and, for PostgreSQL
(psycopg) and MariaDB (PyMySQL), the stall guard (:mod:`flaskprod.runtime.stall`);
starts Sentry when ``SENTRY_DSN`` is set. Keyword ``overrides`` are config keys that the app sets in
code (the environment still wins over them), e.g. ``Production(app, HEALTH_PATH="/hz")``.

Validation happens here, once, at app creation. The middleware's settings (health
paths, security headers, body limit, access log) are read at the first request, so
the factory may still adjust ``app.config`` after this call. The reference of every
setting is ``docs/runtime.md``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from flaskprod.runtime import fork
from flaskprod.runtime.config import build_config
from flaskprod.runtime.database import apply_engine_options
from flaskprod.runtime.errors import register_error_handlers
from flaskprod.runtime.logging import configure_logging
from flaskprod.runtime.middleware import FlaskprodMiddleware
from flaskprod.runtime.proxy import apply_proxy_fix
from flaskprod.runtime.sentry import init_sentry
from flaskprod.runtime.sessions import init_sessions

log = logging.getLogger("flaskprod.config")


class Production:
    """Flask extension that hardens an app for production.

    ``Production(app, **overrides)`` or ``Production(**overrides).init_app(app)``.
    Stored in ``app.extensions["flaskprod"]``; ``profile`` is the active profile.
    """

    def __init__(self, app: Flask | None = None, **overrides: Any) -> None:
        self.overrides = overrides
        self.profile: str | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Apply everything to ``app``; raises :class:`~flaskprod.runtime.config.StartupRefused`."""
        if "flaskprod" in app.extensions:
            raise RuntimeError("Production(app) was already applied to this app")
        profile = build_config(app, self.overrides)
        self.profile = profile
        config = app.config
        configure_logging(app, str(config["LOG_FORMAT"]), config["LOG_LEVEL"])
        uri = str(config.get("SQLALCHEMY_DATABASE_URI") or "")
        if profile == "production" and uri.startswith("sqlite"):
            log.warning(
                "SQLite in production: one writer at a time and no network access; "
                "set DATABASE_URL to PostgreSQL for more than a single small box"
            )
        apply_engine_options(app)
        guarded = uri.startswith(("postgresql+psycopg", "mysql+pymysql"))
        if guarded and config["DATABASE_STALL_SECONDS"]:
            # Imported here: it needs SQLAlchemy, which apps without a database lack.
            from flaskprod.runtime import stall

            stall.install(app)
        register_error_handlers(app)
        app.wsgi_app = FlaskprodMiddleware(app.wsgi_app, app)  # type: ignore[method-assign]
        apply_proxy_fix(app, int(config["TRUSTED_PROXIES"]))
        init_sentry(app, profile)
        init_sessions(app)
        fork.register(app)
        app.extensions["flaskprod"] = self
