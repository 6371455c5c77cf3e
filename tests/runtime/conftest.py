"""Fixtures for the runtime tests: a clean environment and an app factory.

``Production`` reads ``os.environ``; every test here starts from an environment
without any variable it reads, then sets what it needs through ``monkeypatch``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from runtime_helpers import GOOD_KEY, HangingServer, MakeApp, add_views

from flaskprod import Production
from flaskprod.runtime import fork
from flaskprod.runtime.database import app_engines
from flaskprod.runtime.logging import StdoutHandler

_READ = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SENTRY_DSN", "SENTRY_RELEASE", "GIT_SHA")
_READ += ("MAX_CONTENT_LENGTH", "TRUSTED_PROXIES")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("FLASK_", "FLASKPROD_")) or name in _READ:
            monkeypatch.delenv(name)
    root = logging.getLogger()
    level = root.level
    yield
    # Close the pooled connections of the apps this test made (no ResourceWarning
    # for sockets left to the garbage collector).
    for app in list(fork._apps):
        for engine in app_engines(app):
            engine.dispose()
        health_engine = app.extensions.get("flaskprod.health_engine")
        if health_engine is not None:
            health_engine.dispose()
    # Production installs a process-wide handler: do not leak it into other tests.
    for handler in [h for h in root.handlers if isinstance(h, StdoutHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch) -> MakeApp:
    """``make_app(profile, env={...}, **overrides)``: a Flask app with a few views,
    ``Production`` applied under the given profile and environment."""

    def make(
        profile: str = "production", env: dict[str, str] | None = None, **overrides: Any
    ) -> Flask:
        base = {"FLASKPROD_ENV": profile}
        if profile == "production":
            base |= {"SECRET_KEY": GOOD_KEY, "DATABASE_URL": "sqlite://"}
        for name, value in (base | (env or {})).items():
            monkeypatch.setenv(name, value)
        app = Flask("testapp")
        Production(app, **overrides)
        add_views(app)
        return app

    return make


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()
