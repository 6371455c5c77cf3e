"""Backups without a manifest (the kit's backup.sh writes the file and its .sha256
only; the old script named SQLite copies ``.dump``): ``flaskprod restore`` restores
them, checks the checksum when there is one, says it could not compare row counts,
and refuses what is damaged or not a database. The kit's own tests
(tests/kit/test_validate_backup.py) run the real script against both engines."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from flaskprod.errors import VerificationFailed
from flaskprod.ops.backup import make_backup
from flaskprod.ops.database import parse_url
from flaskprod.ops.manifest import list_backups, read_backup
from flaskprod.ops.restore import verify_restore


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [("a",), ("b",), (None,)])
    conn.close()
    return path


def _rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT * FROM notes ORDER BY id").fetchall()
    conn.close()
    return rows


def test_a_backup_whose_manifest_is_gone_restores_with_its_checksum(
    database: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    made = make_backup(parse_url(f"sqlite:///{database}"), app="shop", folder=tmp_path / "b")
    made.manifest_path.unlink()
    # still a backup for retention and HST012: its .sha256 and database file exist
    (listed,) = list_backups(tmp_path / "b", "shop")
    assert not listed.has_manifest and listed.manifest.created == made.manifest.created
    target = tmp_path / "restored.db"
    result = run_cli("restore", str(made.database_path), "--into", str(target))
    assert result.exit_code == 0, result.stderr
    assert "row counts could not be compared" in result.stderr
    assert "sha256 matched" in result.stderr
    assert _rows(target) == _rows(database)
    # a flipped byte is caught by the .sha256 before anything is written
    data = bytearray(made.database_path.read_bytes())
    data[-100] ^= 0xFF
    made.database_path.write_bytes(bytes(data))
    other = tmp_path / "other.db"
    damaged = run_cli("restore", str(made.database_path), "--into", str(other))
    assert damaged.exit_code == 6 and "checksum mismatch" in damaged.stderr
    assert not other.exists()


def test_an_old_script_sqlite_copy_named_dump_is_read_as_sqlite(
    database: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    old = tmp_path / "shop-20260101T000000Z.dump"  # what backup.sh wrote before .sqlite3
    old.write_bytes(database.read_bytes())
    assert read_backup(old).manifest.database_kind == "sqlite"
    target = tmp_path / "restored.db"
    result = run_cli("restore", str(old), "--into", str(target))
    assert result.exit_code == 0, result.stderr
    assert "checksum was NOT verified" in result.stderr
    assert _rows(target) == _rows(database)


def test_a_file_that_is_no_database_is_refused(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    junk = tmp_path / "shop-20260101T000000Z.sqlite3"
    junk.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)  # the header, nothing sound
    target = tmp_path / "restored.db"
    result = run_cli("restore", str(junk), "--into", str(target))
    assert result.exit_code == 6 and "not a sound SQLite database" in result.stderr
    assert not target.exists()
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    result = run_cli("restore", str(text), "--into", str(target))
    assert result.exit_code == 6 and "neither a pg_dump" in result.stderr


def test_no_restore_drill_without_a_manifest(database: Path, tmp_path: Path) -> None:
    made = make_backup(parse_url(f"sqlite:///{database}"), app="shop", folder=tmp_path / "b")
    made.manifest_path.unlink()
    derived = read_backup(made.database_path)
    with pytest.raises(VerificationFailed, match="nothing to compare"):
        verify_restore(derived, parse_url(f"sqlite:///{database}"))
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if p.name[0] != ".") == [
        made.checksum_path.name,
        made.database_path.name,
    ]
