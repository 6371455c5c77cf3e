"""Fixtures for backup/restore: the reference shop filled through its own web API.

- ``shop_sqlite`` (function): a SQLite file at the migrations' head holding users,
  products (uploaded through the form, so the media folder has images) and orders
  (placed through the JSON API with idempotency keys); ``.url``, ``.media``.
- ``shop_postgres`` (function): the same data in a fresh database on the suite's
  PostgreSQL (cloned from a template filled once per session).
- ``ops_helpers.table_rows(url)``: every row of every table, read independently of flaskprod's
  own code (SQLAlchemy reflection, ordered by primary key) — what the tests compare.
- ``run_cli(*args)``: ``flaskprod ...`` in-process, with stdout and stderr apart and
  none of the caller's DATABASE_URL / FLASKPROD_* environment, from an empty folder.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flaskprod.cli import cli
from flaskprod.stack.postgres import PostgresCluster

SHOP_TESTS = Path(__file__).resolve().parents[1] / "shop"
if str(SHOP_TESTS) not in sys.path:
    sys.path.insert(0, str(SHOP_TESTS))

from ops_helpers import ShopData  # noqa: E402
from shop_helpers import (  # noqa: E402
    SECRET,
    SHOP_DIR,
    api_token,
    clean_environment,
    csrf_token,
    png_bytes,
    signup,
)

if str(SHOP_DIR) not in sys.path:
    sys.path.insert(0, str(SHOP_DIR))

TEMPLATE = "ops_shop_template"
FAST_HASHES = {"PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"}
_numbers = itertools.count(1)


def _fill(database_url: str, media: Path) -> None:
    """Migrate, then create data the way users do: sign-ups, product uploads, orders."""
    from flask_migrate import upgrade
    from shop import create_app
    from shop.extensions import db

    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as instance:
        clean_environment(mp)
        mp.setenv("FLASKPROD_ENV", "testing")
        mp.setenv("SECRET_KEY", SECRET)
        mp.setenv("DATABASE_URL", database_url)
        app = create_app(FAST_HASHES | {"MEDIA_ROOT": str(media)}, instance_path=instance)
        try:
            with app.app_context():
                upgrade()
            _place_orders(app)
        finally:
            with app.app_context():
                db.engine.dispose()


def _place_orders(app: Any) -> None:
    seller = app.test_client()
    signup(seller, "seller@example.com")
    product_ids = []
    products = [("Teal mug", "12.50", "teal"), ("Ünïcode tée ☕", "7.05", "red")]
    products.append(("O'Brien's pot", "30", "navy"))
    for number, (name, price, colour) in enumerate(products):
        response = seller.post(
            "/products/new",
            data={
                "csrf_token": csrf_token(seller, "/products/new"),
                "name": name,
                "description": f"Line one\nline two, tab\there, number {number}",
                "price": price,
                "image": (BytesIO(png_bytes(color=colour)), f"p{number}.png"),
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        product_ids.append(int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    for buyer in ("ann@example.com", "bob@example.com"):
        client = app.test_client()
        signup(client, buyer)
        headers = {"Authorization": f"Bearer {api_token(app, buyer)}"}
        for number in range(4):
            body = {
                "items": [
                    {"product_id": product_ids[number % 3], "quantity": number + 1},
                    {"product_id": product_ids[(number + 1) % 3], "quantity": 1},
                ]
            }
            key = {"Idempotency-Key": f"{buyer}-{number}"}
            response = client.post("/api/orders", json=body, headers=headers | key)
            assert response.status_code == 201, response.get_json()


@pytest.fixture(scope="session")
def _sqlite_filled(tmp_path_factory: pytest.TempPathFactory) -> ShopData:
    folder = tmp_path_factory.mktemp("ops-shop-sqlite")
    data = ShopData(f"sqlite:///{folder / 'shop.db'}", folder / "media")
    _fill(data.url, data.media)
    return data


@pytest.fixture
def shop_sqlite(_sqlite_filled: ShopData, tmp_path: Path) -> ShopData:
    source = Path(_sqlite_filled.url.removeprefix("sqlite:///"))
    shutil.copyfile(source, tmp_path / "shop.db")
    shutil.copytree(_sqlite_filled.media, tmp_path / "media")
    return ShopData(f"sqlite:///{tmp_path / 'shop.db'}", tmp_path / "media")


@pytest.fixture(scope="session")
def _postgres_filled(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> ShopData:
    _running(postgres_cluster)
    postgres_cluster.drop_database(TEMPLATE)
    url = postgres_cluster.create_database(TEMPLATE)
    media = tmp_path_factory.mktemp("ops-shop-pg") / "media"
    _fill(url, media)
    return ShopData(url, media, TEMPLATE)


@pytest.fixture
def shop_postgres(
    postgres_cluster: PostgresCluster, _postgres_filled: ShopData, tmp_path: Path
) -> Iterator[ShopData]:
    from psycopg import sql

    _running(postgres_cluster)
    name = f"ops_{os.getpid()}_{next(_numbers)}"
    with postgres_cluster.connect() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    shutil.copytree(_postgres_filled.media, tmp_path / "media")
    yield ShopData(postgres_cluster.url(name), tmp_path / "media", name)
    _running(postgres_cluster)
    postgres_cluster.drop_database(name)


def _running(cluster: PostgresCluster) -> None:
    cluster.resume()
    if not cluster.running:
        cluster.start()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the shop's spec (app name 'shop')."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copyfile(SHOP_DIR / "flaskprod.toml", folder / "flaskprod.toml")
    return folder


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    # An empty current folder: no flaskprod.toml or .flaskprod/ of the checkout leaks in.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        clean = {
            "DATABASE_URL": None,
            "FLASKPROD_STATE_DIR": None,
            "FLASKPROD_PG_BIN": None,
            "MEDIA_ROOT": None,
            **(env or {}),
        }
        return CliRunner().invoke(cli, list(args), env=clean, catch_exceptions=False)

    return run
