"""Fixtures for the reference shop: the app on SQLite and on real PostgreSQL + Redis.

- ``shop_app`` is parametrised: ``sqlite`` (the embedded default: a file in the test's
  instance folder, cookie sessions, no Redis) and ``postgres`` (the suite's throwaway
  PostgreSQL and Redis: server-side sessions and the product cache). The migrations
  run for real (``flask db upgrade``'s code) once per session into a template that
  each app gets a copy of, so readiness sees the schema at head.
- ``make_shop(**env)`` builds more apps with a given environment (e.g. a REDIS_URL
  that points at a closed port).
- ``client`` is a test client of ``shop_app``. Helpers (CSRF tokens, sign-up, PNGs)
  are in ``shop_helpers.py``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from shop_helpers import SECRET, SHOP_DIR, clean_environment, in_shop

from flaskprod.stack.postgres import PostgresCluster

if str(SHOP_DIR) not in sys.path:
    sys.path.insert(0, str(SHOP_DIR))

TEMPLATE_DB = "shop_template"
# Password hashing at full strength (scrypt) costs ~0.1 s per sign-up or log-in.
FAST_HASHES = {"PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"}
_databases = itertools.count(1)


def _migrate(database_url: str) -> None:
    """Run the shop's migrations (the code of ``flask db upgrade``) on ``database_url``."""
    from flask_migrate import upgrade

    in_shop(database_url, upgrade)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each app (migrating costs ~0.3 s, a copy ~0)."""
    path = tmp_path_factory.mktemp("shop-sqlite") / "shop.db"
    _migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster: PostgresCluster) -> str:
    """A migrated database on the suite's cluster, cloned for each test."""
    _running(postgres_cluster)
    postgres_cluster.drop_database(TEMPLATE_DB)
    _migrate(postgres_cluster.create_database(TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
def shop_postgres_url(postgres_cluster: PostgresCluster, postgres_template: str) -> Iterator[str]:
    """A fresh database at the migrations' head (``CREATE DATABASE ... TEMPLATE``)."""
    from psycopg import sql

    _running(postgres_cluster)
    name = f"shop_{os.getpid()}_{next(_databases)}"
    with postgres_cluster.connect() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(postgres_template)
            )
        )
    yield postgres_cluster.url(name)
    _running(postgres_cluster)
    postgres_cluster.drop_database(name)


def _running(cluster: PostgresCluster) -> None:
    # A test may have stopped or paused the shared cluster (see tests/conftest.py).
    cluster.resume()
    if not cluster.running:
        cluster.start()


@pytest.fixture
def make_shop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_template: Path
) -> Iterator[Callable[..., Flask]]:
    """``make_shop(config, DATABASE_URL=..., REDIS_URL=...)``: a shop at the migrations'
    head. Without DATABASE_URL it uses the embedded default (instance/shop.db)."""
    from shop import create_app
    from shop.extensions import db

    apps: list[Flask] = []
    numbers = itertools.count(1)

    def make(config: dict[str, Any] | None = None, **env: str) -> Flask:
        clean_environment(monkeypatch)
        monkeypatch.setenv("FLASKPROD_ENV", "testing")
        monkeypatch.setenv("SECRET_KEY", SECRET)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        instance = tmp_path / f"instance{next(numbers)}"
        if "DATABASE_URL" not in env:
            instance.mkdir()
            shutil.copyfile(sqlite_template, instance / "shop.db")
        app = create_app(FAST_HASHES | (config or {}), instance_path=str(instance))
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of one backend (PostgreSQL comes with Redis)."""
    if request.param == "sqlite":
        return {}
    return {
        "DATABASE_URL": request.getfixturevalue("shop_postgres_url"),
        "REDIS_URL": request.getfixturevalue("redis_url"),
    }


@pytest.fixture
def shop_app(make_shop: Callable[..., Flask], backend: dict[str, str]) -> Flask:
    return make_shop(**backend)


@pytest.fixture
def client(shop_app: Flask) -> FlaskClient:
    return shop_app.test_client()
