"""Backups that survive the database host (storage.kind = "s3"): a verified backup is
copied to the bucket of a real SeaweedFS; the local backups and every table are then
destroyed, and ``restore --from-s3 latest`` gives every row back, identical to the
manifest's checksums. (The same across lab hosts, a database host destroyed and a
fresh one restored, is not proven yet: docs/scaling.md says so.)"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from ops_helpers import ShopData, drop_all_tables, table_rows

from flaskprod.runtime.storage import s3_client

pytestmark = pytest.mark.services


def test_a_backup_copied_to_the_bucket_restores_every_row_after_all_is_lost(
    shop_postgres: ShopData,
    project: Path,
    tmp_path: Path,
    run_cli: Callable[..., Result],
    s3_env: dict[str, str],
) -> None:
    spec = project / "flaskprod.toml"
    spec.write_text(spec.read_text().replace("\n[tls]\n", '\n[storage]\nkind = "s3"\n\n[tls]\n'))
    before = table_rows(shop_postgres.url)
    out = tmp_path / "backups"
    made = run_cli(
        "backup", str(project), "--database-url", shop_postgres.url, "--output", str(out),
        env=s3_env,
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    assert "backup: copied to s3://shop-media/backups/shop/ (3 files, sizes checked)" in (
        made.stderr
    )
    stem = Path(made.stdout.strip()).stem
    listed = s3_client(s3_env).list_objects_v2(Bucket="shop-media", Prefix="backups/shop/")
    keys = sorted(item["Key"] for item in listed["Contents"])
    assert keys == [f"backups/shop/{stem}{suffix}" for suffix in (".dump", ".json", ".sha256")]
    # the host's copy and the data are gone
    shutil.rmtree(out)
    drop_all_tables(shop_postgres.url)
    assert table_rows(shop_postgres.url) == {}
    restored = run_cli(
        "restore", "--from-s3", "latest", "--database-url", shop_postgres.url,
        "--project", str(project), "--yes", env=s3_env,
    )  # fmt: skip
    assert restored.exit_code == 0, restored.stderr
    assert f"restore: fetched {stem} from s3://shop-media/" in restored.stderr
    assert "identical to the manifest (row counts and checksums)" in restored.stderr
    assert table_rows(shop_postgres.url) == before
    missing = run_cli(
        "restore", "--from-s3", "shop-19990101T000000Z", "--database-url", shop_postgres.url,
        "--project", str(project), env=s3_env,
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "no such backup" in missing.stderr and f"the newest is {stem}" in missing.stderr
