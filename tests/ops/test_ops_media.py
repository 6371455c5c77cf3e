"""The media folder: archived with the database, restored with --media by a swap."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from ops_helpers import ShopData, drop_all_tables, table_rows

from flaskprod.errors import VerificationFailed
from flaskprod.ops import media


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_restore_with_media_brings_back_the_uploads(
    shop_sqlite: ShopData, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    env = {"MEDIA_ROOT": str(shop_sqlite.media)}
    images = _files(shop_sqlite.media)
    # three uploads and their thumbnails (shop/jobs.py: made in the request without Redis)
    assert len(images) == 6 and len([name for name in images if name.startswith("thumbs/")]) == 3
    out = str(tmp_path / "b")
    made = run_cli("backup", "--database-url", shop_sqlite.url, "--output", out, env=env)
    assert made.exit_code == 0, made.stderr
    path = made.stdout.strip()

    # Both the database and the uploads are lost.
    rows = table_rows(shop_sqlite.url)
    drop_all_tables(shop_sqlite.url)
    shutil.rmtree(shop_sqlite.media)

    plain = run_cli("restore", path, "--database-url", shop_sqlite.url, env=env)
    assert plain.exit_code == 0, plain.stderr
    assert "--media restores it" in plain.stderr and not shop_sqlite.media.exists()

    # The media folder got a stray file meanwhile: --media without --yes refuses
    # before the database is touched.
    shop_sqlite.media.mkdir()
    (shop_sqlite.media / "stray.txt").write_text("x")
    drop_all_tables(shop_sqlite.url)
    refused = run_cli("restore", path, "--database-url", shop_sqlite.url, "--media", env=env)
    assert refused.exit_code == 5, refused.stderr
    assert "media folder" in refused.stderr and table_rows(shop_sqlite.url) == {}

    done = run_cli("restore", path, "--database-url", shop_sqlite.url, "--media", "--yes", env=env)
    assert done.exit_code == 0, done.stderr
    assert _files(shop_sqlite.media) == images  # the stray file is gone with the swap
    assert table_rows(shop_sqlite.url) == rows
    assert [p.name for p in shop_sqlite.media.parent.iterdir() if p.name.startswith(".")] == []


def test_an_archive_reaching_outside_media_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        data = b"owned"
        info = tarfile.TarInfo("../outside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    root = tmp_path / "site" / "media"
    with pytest.raises(VerificationFailed, match="outside media/"):
        media.restore(evil, root, yes=True)
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "site" / "outside.txt").exists()
    assert not root.exists()
