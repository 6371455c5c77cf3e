"""The flaskprod reference shop: a small real Flask app built on ``Production(app)``.

``create_app()`` is the factory; ``wsgi.py`` next to this package exposes
``app = create_app()`` for gunicorn (``gunicorn wsgi:app`` from examples/shop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from flaskprod import Production

#: The shop's own settings; each can be overridden from the environment with the
#: FLASK_ / FLASKPROD_ prefix (e.g. FLASKPROD_PRODUCTS_CACHE_SECONDS=5).
SHOP_DEFAULTS: dict[str, Any] = {
    "PRODUCTS_CACHE_SECONDS": 30,
    "PRODUCTS_HTTP_CACHE_SECONDS": 2,
    "MEDIA_URL": "/media/",
    "SESSION_KEY_PREFIX": "shop:session:",
    "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
}


def create_app(config: dict[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    """Build the shop. ``config`` holds overrides (tests); the environment wins over it."""
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    production = Production(app, **(SHOP_DEFAULTS | (config or {})))
    _embedded_defaults(app, production.profile or "production")

    from shop import api, auth, orders, products
    from shop.errors import init_errors
    from shop.extensions import csrf, db
    from shop.lazy_migrate import init_migrate
    from shop.seed import init_seed
    from shop.sessions import init_sessions

    app.url_map.converters["id"] = IdConverter
    db.init_app(app)
    migrations = str(Path(app.root_path).parent / "migrations")
    init_migrate(app, db, directory=migrations, render_as_batch=True)
    # Sessions before CSRF: their before_request answers 503 when Redis is down,
    # before CSRFProtect would complain about a token it could not read.
    init_sessions(app)
    csrf.init_app(app)
    csrf.exempt(api.bp)

    app.register_blueprint(products.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(api.bp)
    if app.config["SERVE_MEDIA"]:
        app.add_url_rule(
            app.config["MEDIA_URL"].rstrip("/") + "/<path:name>",
            "media",
            products.serve_media,
        )
    init_seed(app)
    init_errors(app)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        from shop.jobs import thumbnail_url
        from shop.media import media_url

        return {
            "current_user": auth.current_user_for_page(),
            "media_url": media_url,
            "thumbnail_url": thumbnail_url,
            "price": lambda cents: f"€{cents // 100}.{cents % 100:02d}",
        }

    return app


class IdConverter(IntegerConverter):
    """``<id:name>``: a positive id that fits the INTEGER primary keys; anything else
    does not match the route (404), so the database never sees it."""

    def __init__(self, url_map: Map) -> None:
        from shop.models import MAX_ID

        super().__init__(url_map, min=1, max=MAX_ID)


def _embedded_defaults(app: Flask, profile: str) -> None:
    """Zero-setup defaults outside production: SQLite and a secret key in the instance
    folder, media under it, served by the app. Production must configure them (the
    runtime refuses to start without SECRET_KEY and DATABASE_URL)."""
    instance = Path(app.instance_path)
    app.config.setdefault("MEDIA_ROOT", str(instance / "media"))
    if profile == "production":
        app.config.setdefault("SERVE_MEDIA", False)
        return
    app.config.setdefault("SERVE_MEDIA", True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        instance.mkdir(parents=True, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'shop.db'}"
    if not app.config.get("SECRET_KEY"):
        from shop.secret import instance_secret

        app.config["SECRET_KEY"] = instance_secret(instance)
