"""Retention: beyond the newest --keep AND older than --max-age days goes; the newest
verified backup always stays; files that are not verified backups are never touched."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from flaskprod.ops.backup import apply_retention, make_backup
from flaskprod.ops.database import parse_url
from flaskprod.ops.manifest import list_backups

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('hello')")
    return f"sqlite:///{path}"


def _backups_days_ago(database: str, folder: Path, *days: int) -> None:
    for age in days:
        make_backup(parse_url(database), app="shop", folder=folder, now=NOW - timedelta(days=age))


def _ages(folder: Path) -> list[int]:
    day = timedelta(days=1)
    return [round((NOW - b.manifest.created) / day) for b in list_backups(folder, "shop")]


def test_keep_is_a_floor_and_max_age_removes_the_rest(
    database: str, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    out = tmp_path / "b"
    _backups_days_ago(database, out, 40, 30, 20, 3)
    (tmp_path / "flaskprod.toml").write_text('[app]\ntarget = "app:app"\nname = "shop"\n')
    result = run_cli(
        *("backup", str(tmp_path), "--database-url", database, "--output", str(out)),
        *("--keep", "2", "--max-age", "7"),
    )
    assert result.exit_code == 0, result.stderr
    assert _ages(out) == [0, 3]  # the new one and the 3-day-old one
    removed = [line for line in result.stderr.splitlines() if "removed" in line]
    assert len(removed) == 3 and all("older than 7 days" in line for line in removed)
    # Every file of a removed backup is gone (dump, checksum, manifest).
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) == 2 * 3


def test_young_backups_beyond_keep_stay(database: str, tmp_path: Path) -> None:
    out = tmp_path / "b"
    _backups_days_ago(database, out, 6, 5, 4, 1)
    removed = apply_retention(out, "shop", keep=1, max_age_days=7, now=NOW)
    assert removed == []
    assert _ages(out) == [1, 4, 5, 6]


def test_the_newest_backup_stays_however_old(database: str, tmp_path: Path) -> None:
    out = tmp_path / "b"
    _backups_days_ago(database, out, 300, 200, 100)
    removed = apply_retention(out, "shop", keep=1, max_age_days=1, now=NOW)
    assert [(NOW - b.manifest.created).days for b in removed] == [200, 300]
    assert _ages(out) == [100]
    # Even asked to keep none, the newest verified backup is kept.
    assert apply_retention(out, "shop", keep=0, max_age_days=1, now=NOW) == []


def test_files_that_are_not_verified_backups_are_left_alone(database: str, tmp_path: Path) -> None:
    out = tmp_path / "b"
    _backups_days_ago(database, out, 100, 90)
    stray = out / "shop-20200101T000000Z.dump"  # e.g. a hand-made dump, no manifest
    stray.write_bytes(b"PGDMP")
    other_app = out / "blog-20200101T000000Z.json"
    other_app.write_text("{}")
    apply_retention(out, "shop", keep=1, max_age_days=1, now=NOW)
    assert stray.exists() and other_app.exists()
    assert _ages(out) == [90]


def test_two_backups_in_one_second_never_share_a_name(database: str, tmp_path: Path) -> None:
    out = tmp_path / "b"
    first = make_backup(parse_url(database), app="shop", folder=out)
    second = make_backup(parse_url(database), app="shop", folder=out)
    assert first.stem != second.stem
    assert [b.stem for b in list_backups(out, "shop")] == [second.stem, first.stem]
