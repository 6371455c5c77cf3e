"""Back up the shop, destroy its database, restore, and compare every row.

Data is created through the shop's own web forms and JSON API; the comparison reads
every row independently of flaskprod (SQLAlchemy, by primary key) and also checks
flaskprod's per-table checksums against the manifest.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from ops_helpers import ShopData, drop_all_tables, table_rows

from flaskprod.ops.database import parse_url
from flaskprod.ops.manifest import read_backup


@pytest.fixture(params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest) -> ShopData:
    return request.getfixturevalue(f"shop_{request.param}")


def test_backup_destroy_restore_gives_back_every_row(
    shop: ShopData, project: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    before = table_rows(shop.url)
    assert {name: len(rows) for name, rows in before.items()} == {
        "alembic_version": 1,
        "order_items": 16,
        "orders": 8,
        "products": 3,
        "users": 3,
    }
    out = tmp_path / "backups"
    made = run_cli(
        "backup",
        str(project),
        "--database-url",
        shop.url,
        "--output",
        str(out),
        env={"MEDIA_ROOT": str(shop.media)},
    )
    assert made.exit_code == 0, made.stderr
    path = Path(made.stdout.strip())  # stdout: only the new backup's path
    assert path.parent == out and path.exists()
    suffix = ".dump" if shop.url.startswith("postgresql") else ".sqlite3"
    assert re.fullmatch(r"shop-\d{8}T\d{6}Z", path.stem) and path.suffix == suffix

    manifest = json.loads(path.with_suffix(".json").read_text())
    assert manifest["tables"]["orders"]["rows"] == 8
    assert manifest["schema_revision"]  # alembic's head
    assert manifest["database_name"] == parse_url(shop.url).name
    assert manifest["database_file"]["size"] == path.stat().st_size
    # sha256sum format, for checking by hand.
    digest, name = path.with_suffix(".sha256").read_text().split("\n")[0].split("  ")
    assert name == path.name and digest == manifest["database_file"]["sha256"]
    # The media folder (product images uploaded through the form) is archived too.
    with tarfile.open(out / f"{path.stem}.media.tar") as archive:
        images = sorted(Path(m.name).name for m in archive.getmembers() if m.isfile())
    # three uploads and their thumbnails (thumbs/, made in the request without Redis)
    stored = sorted(p.name for p in shop.media.rglob("*") if p.is_file())
    assert images == stored and len(images) == 6

    drop_all_tables(shop.url)

    restored = run_cli("restore", str(path), "--database-url", shop.url, "--project", str(project))
    assert restored.exit_code == 0, restored.stderr
    assert "identical to the manifest" in restored.stderr
    assert table_rows(shop.url) == before  # every row, every column

    # flaskprod's own checksums over the restored rows match the backup's.
    backup = read_backup(path)
    from flaskprod.ops.restore import restore_backup

    again = restore_backup(backup, parse_url(shop.url), yes=True)
    assert again.differences == []
    assert again.tables == backup.manifest.tables


def test_restore_refuses_a_database_with_data(
    shop: ShopData, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    made = run_cli("backup", "--database-url", shop.url, "--output", str(tmp_path))
    assert made.exit_code == 0, made.stderr
    path = Path(made.stdout.strip())
    # The app wrote more after the backup: a restore would lose that order.
    _delete_an_order(shop.url)
    changed = table_rows(shop.url)

    refused = run_cli("restore", str(path), "--database-url", shop.url)
    assert refused.exit_code == 5, refused.stderr
    assert "is not empty" in refused.stderr and "--yes" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert table_rows(shop.url) == changed  # nothing changed

    forced = run_cli("restore", str(path), "--database-url", shop.url, "--yes")
    assert forced.exit_code == 0, forced.stderr
    assert len(table_rows(shop.url)["orders"]) == 8


def test_restore_into_a_new_database_creates_it(
    shop_postgres: ShopData, tmp_path: Path, run_cli: Callable[..., Result], postgres_cluster
) -> None:  # type: ignore[no-untyped-def]
    made = run_cli("backup", "--database-url", shop_postgres.url, "--output", str(tmp_path))
    assert made.exit_code == 0, made.stderr
    name = f"{shop_postgres.dbname}_copy"
    try:
        restored = run_cli(
            "restore", made.stdout.strip(), "--database-url", shop_postgres.url, "--into", name
        )
        assert restored.exit_code == 0, restored.stderr
        assert table_rows(postgres_cluster.url(name)) == table_rows(shop_postgres.url)
    finally:
        postgres_cluster.drop_database(name)


def test_verify_restore_drill_end_to_end(
    shop: ShopData, tmp_path: Path, run_cli: Callable[..., Result], postgres_cluster
) -> None:  # type: ignore[no-untyped-def]
    databases = postgres_cluster.databases()
    result = run_cli(
        *("backup", "--database-url", shop.url, "--output", str(tmp_path)),
        *("--verify-restore", "--json"),
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["verify_restore"] == {"tables": 5, "identical": True}
    assert "restore drill passed" in result.stderr
    # The scratch copy is gone: no database, no file left behind.
    assert postgres_cluster.databases() == databases
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == [".cwd.lock"], hidden  # the app is named after the (empty) project


def _delete_an_order(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            order = conn.execute(sa.text("SELECT max(id) FROM orders")).scalar_one()
            conn.execute(sa.text("DELETE FROM order_items WHERE order_id = :o"), {"o": order})
            conn.execute(sa.text("DELETE FROM orders WHERE id = :o"), {"o": order})
    finally:
        engine.dispose()
