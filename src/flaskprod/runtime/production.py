"""``Production(app)``: one call that makes a Flask app production-ready (work in progress)."""

from __future__ import annotations

from typing import Any

from flask import Flask


class Production:
    """Flask extension that hardens an app for production."""

    def __init__(self, app: Flask | None = None, **overrides: Any) -> None:
        self.overrides = overrides
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions["flaskprod"] = self
