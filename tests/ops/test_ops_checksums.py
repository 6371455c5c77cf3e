"""The per-table checksum: the same rows give the same digest whatever their physical
order; any changed value, type or row gives another."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flaskprod.ops import postgres, sqlite
from flaskprod.ops.database import parse_url

ROWS = [(1, "a", 1.5, b"\x00"), (2, "b", None, b"\x01"), (2, "b", None, b"\x01")]
ROWS.append((3, "c", 0.1, b""))


def _sqlite_stats(path: Path, rows: list[tuple[object, ...]], pk: bool) -> str:
    with sqlite3.connect(path) as conn:
        key = "id INTEGER PRIMARY KEY" if pk else "id INTEGER"
        conn.execute(f"CREATE TABLE t ({key}, name TEXT, x REAL, b BLOB)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    return sqlite.stats(path)["t"].sha256


def test_sqlite_checksum_ignores_order_and_sees_every_change(tmp_path: Path) -> None:
    same = [
        _sqlite_stats(tmp_path / "1.db", ROWS, pk=False),
        _sqlite_stats(tmp_path / "2.db", ROWS[::-1], pk=False),
    ]
    assert same[0] == same[1]
    changed = [(1, "a", 1.5, b"\x00"), (2, "b", None, b"\x01"), (3, "c", 0.1, b"")]
    assert _sqlite_stats(tmp_path / "3.db", changed, pk=False) != same[0]  # a duplicate less
    typed = [(1, "a", 1.5, b"\x00"), (2, "b", None, b"\x01"), (2, "b", None, b"\x01")]
    typed.append((3, "c", 0.1, ""))  # '' instead of x''
    assert _sqlite_stats(tmp_path / "4.db", typed, pk=False) != same[0]
    unique = ROWS[:1] + ROWS[3:]
    assert _sqlite_stats(tmp_path / "5.db", unique, pk=True) == _sqlite_stats(
        tmp_path / "6.db", unique[::-1], pk=True
    )


def test_postgres_checksum_with_and_without_primary_key(postgres_url: str) -> None:
    db = parse_url(postgres_url)
    with postgres.connect(db) as conn:
        conn.execute("CREATE TABLE keyed (code text PRIMARY KEY, n int)")
        conn.execute("CREATE TABLE loose (n int, at timestamptz)")
        conn.execute("INSERT INTO keyed VALUES ('b', 2), ('a', 1), ('B', 3)")
        conn.execute(
            "INSERT INTO loose VALUES (2, '2026-01-01 10:00+02'), (1, NULL),"
            " (2, '2026-01-01 08:00Z')"
        )

    def digests() -> dict[str, str]:
        with postgres.connect(db, autocommit=False) as conn:
            found = postgres.stats(conn)
            conn.rollback()
        return {name: stats.sha256 for name, stats in found.items()}

    first = digests()
    with postgres.connect(db) as conn:
        # Same rows, other physical order; sessions now default to another time zone
        # (timestamptz prints differently unless the checksum pins the zone).
        conn.execute("CREATE TABLE loose2 AS SELECT * FROM loose ORDER BY n DESC")
        conn.execute("DROP TABLE loose")
        conn.execute("ALTER TABLE loose2 RENAME TO loose")
        conn.execute(f"ALTER DATABASE {db.dbname} SET TimeZone = 'Asia/Tokyo'")
    assert digests() == first
    with postgres.connect(db) as conn:
        conn.execute("UPDATE keyed SET n = 4 WHERE code = 'B'")
    changed = digests()
    assert changed["keyed"] != first["keyed"] and changed["loose"] == first["loose"]
