"""The committed migrations build exactly the models' schema, on SQLite and PostgreSQL,
and go down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_migrations_match_the_models(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from flask_migrate import downgrade, upgrade
    from shop import create_app
    from shop.extensions import db
    from shop_helpers import SECRET, clean_environment

    url = (
        f"sqlite:///{tmp_path / 'fresh.db'}"
        if engine == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    clean_environment(monkeypatch)
    monkeypatch.setenv("FLASKPROD_ENV", "testing")
    monkeypatch.setenv("SECRET_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", url)
    app = create_app(instance_path=str(tmp_path / "instance"))
    with app.app_context():
        try:
            upgrade()
            with db.engine.connect() as connection:
                differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
            assert differences == [], "models and migrations differ: run flask db migrate"
            tables = set(inspect(db.engine).get_table_names())
            assert {"users", "products", "orders", "order_items"} <= tables

            downgrade(revision="base")
            assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
            upgrade()
            assert app.test_client().get("/health/ready").status_code == 200
        finally:
            db.engine.dispose()
