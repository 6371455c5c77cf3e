"""Helpers for the shop tests: CSRF tokens as a browser gets them, sign-up, images."""

from __future__ import annotations

import io
import itertools
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

SHOP_DIR = Path(__file__).resolve().parents[2] / "examples" / "shop"
_emails = itertools.count(1)

#: For tests whose subject does not depend on the database: run them on SQLite only.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PASSWORD = "s3cret-pass"
SECRET = "k" * 16 + "test-only-secret-key-0123456789"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on ``path`` (as a browser would get it)."""
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token in {path}"
    return match.group(1)


def signup(client: FlaskClient, email: str | None = None, password: str = PASSWORD) -> str:
    email = email or f"user{next(_emails)}@example.com"
    response = client.post(
        "/signup",
        data={
            "csrf_token": csrf_token(client, "/signup"),
            "email": email,
            "password": password,
            "confirm": password,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return email


def png_bytes(size: tuple[int, int] = (32, 24), color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def api_token(app: Flask, email: str) -> str:
    """Issue an API token for ``email`` (as the account page does)."""
    from shop.extensions import db
    from shop.models import User
    from sqlalchemy import select

    with app.app_context():
        user = db.session.scalars(select(User).where(User.email == email)).one()
        token = user.issue_api_token()
        db.session.commit()
    return token


def create_product(app: Flask, name: str = "Mug", price_cents: int = 1250) -> int:
    from shop.extensions import db
    from shop.models import Product

    with app.app_context():
        product = Product(name=name, description="", price_cents=price_cents)
        db.session.add(product)
        db.session.commit()
        return product.id


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the caller's environment reaches the app under test."""
    for name in list(os.environ):
        if name.startswith(("FLASK_", "FLASKPROD_")) or name in {
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "SENTRY_DSN",
        }:
            monkeypatch.delenv(name)


def in_shop(database_url: str, work: Callable[[], object], **env: str) -> None:
    """Run ``work()`` in an app context of a shop on ``database_url`` (testing profile)."""
    from shop import create_app
    from shop.extensions import db

    with pytest.MonkeyPatch.context() as monkeypatch, tempfile.TemporaryDirectory() as instance:
        clean_environment(monkeypatch)
        monkeypatch.setenv("FLASKPROD_ENV", "testing")
        monkeypatch.setenv("SECRET_KEY", SECRET)
        monkeypatch.setenv("DATABASE_URL", database_url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app = create_app(instance_path=instance)
        with app.app_context():
            try:
                work()
            finally:
                db.engine.dispose()
