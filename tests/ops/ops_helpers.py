"""Helpers for the backup tests (a unique module name: test modules import it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ShopData:
    url: str
    media: Path
    dbname: str = ""


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, by primary key (independent of flaskprod.ops)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {
                name: [
                    tuple(row)
                    for row in conn.execute(
                        sa.select(table).order_by(*(table.primary_key.columns or table.columns))
                    )
                ]
                for name, table in sorted(meta.tables.items())
            }
    finally:
        engine.dispose()


def drop_all_tables(url: str) -> None:
    """Destroy the data: every table gone (as after a bad migration or a DROP)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        meta.drop_all(engine)
    finally:
        engine.dispose()
    assert table_rows(url) == {}
