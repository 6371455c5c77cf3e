"""The limit: Flask's "hello" with nothing around it, and the same with Production(app).

gunicorn bench.perf.hello:app          # bare Flask
gunicorn bench.perf.hello:production   # Flask + flaskprod.Production(app)
"""

from __future__ import annotations

import os

from flask import Flask

_KEY = "bench-" + "0123456789abcdef" * 3


def _build(production: bool) -> Flask:
    app = Flask("hello")
    app.secret_key = _KEY  # every real app has one (it opens the session)
    if production:
        from flaskprod import Production

        os.environ.setdefault("FLASKPROD_ENV", "production")
        os.environ.setdefault("SECRET_KEY", _KEY)
        os.environ.setdefault("DATABASE_URL", "sqlite://")
        Production(app)

    @app.get("/")
    def hello() -> str:
        return "Hello, World!"

    return app


app = _build(production=False)
production = _build(production=True) if os.environ.get("BENCH_PRODUCTION") else None
