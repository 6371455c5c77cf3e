"""SQLite for backups: the online backup API, integrity checks, per-table stats.

``sqlite3.Connection.backup`` copies a live database page by page under SQLite's own
locking, so the copy is consistent even while the app writes (a plain file copy of
a database in WAL mode is not). Backup files are opened read-only and ``immutable``
afterwards: opening them must never change a byte their checksum covers.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from flaskprod.errors import EnvironmentProblem, VerificationFailed
from flaskprod.ops.files import Progress, no_space, no_space_message
from flaskprod.ops.manifest import TableStats

# Pages per step of the online backup (4 KB pages: 16 MB), between progress lines.
_STEP_PAGES = 4096


@contextlib.contextmanager
def open_readonly(path: Path, *, immutable: bool = False) -> Iterator[sqlite3.Connection]:
    """A read-only connection (never creates ``path``)."""
    uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.OperationalError as error:
        raise EnvironmentProblem(f"cannot open the SQLite database {path}: {error}") from None
    try:
        yield conn
    finally:
        conn.close()


def copy(source: Path, target: Path, progress: Progress) -> None:
    """A consistent copy of the live database ``source`` into the new file ``target``,
    as a self-contained file (rollback journal, no -wal beside it)."""
    if not source.is_file():
        raise EnvironmentProblem(f"the SQLite database {source} does not exist")

    def report(_status: int, remaining: int, total: int) -> None:
        progress.update(total - remaining, total, unit="pages")

    with open_readonly(source) as src, no_space_message(target.parent):
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=_STEP_PAGES, progress=report)
            dst.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.OperationalError as error:
            if "full" in str(error).lower():
                raise no_space(target.parent) from None
            raise EnvironmentProblem(f"SQLite backup of {source} failed: {error}") from None
        finally:
            dst.close()


def integrity_check(path: Path) -> None:
    try:
        with open_readonly(path, immutable=True) as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
    except (sqlite3.DatabaseError, EnvironmentProblem) as error:
        raise VerificationFailed(f"{path.name} is not a sound SQLite database: {error}") from None
    if [tuple(row) for row in rows] != [("ok",)]:
        raise VerificationFailed(
            f"{path.name} is not a sound SQLite database: {rows[0][0]} (integrity_check)"
        )


def tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
        "ESCAPE '\\' ORDER BY name"
    ).fetchall()
    return [str(row[0]) for row in rows]


def is_empty(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    with open_readonly(path) as conn:
        count = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        ).fetchone()[0]
    return int(count) == 0


def _order(conn: sqlite3.Connection, quoted: str) -> str:
    """ORDER BY the primary key (unique: cheap and total), else every column."""
    info = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
    key = sorted((row[5], row[0]) for row in info if row[5])  # (pk position, cid)
    positions = [cid + 1 for _, cid in key] or [row[0] + 1 for row in info]
    return " ORDER BY " + ", ".join(str(p) for p in positions) if positions else ""


def stats_of(conn: sqlite3.Connection, progress: Progress | None = None) -> dict[str, TableStats]:
    """Rows and a sha256 over each table's rows in a fixed order. ``repr`` of the row
    keeps the types apart: 1, 1.0, '1' and b'1' hash differently."""
    result: dict[str, TableStats] = {}
    seen = 0
    for name in tables(conn):
        quoted = '"' + name.replace('"', '""') + '"'
        query = f"SELECT * FROM {quoted}{_order(conn, quoted)}"  # noqa: S608
        digest = hashlib.sha256()
        rows = 0
        for row in conn.execute(query):
            digest.update(repr(row).encode("utf-8", "surrogatepass"))
            digest.update(b"\n")
            rows += 1
            if progress is not None and rows % 5000 == 0:
                progress.update(seen + rows, unit="rows")
        seen += rows
        result[name] = TableStats(rows=rows, sha256=digest.hexdigest())
    return result


def stats(
    path: Path, *, immutable: bool = False, progress: Progress | None = None
) -> dict[str, TableStats]:
    with open_readonly(path, immutable=immutable) as conn:
        return stats_of(conn, progress)


def schema_revision(path: Path, *, immutable: bool = False) -> str | None:
    with open_readonly(path, immutable=immutable) as conn:
        if "alembic_version" not in tables(conn):
            return None
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return ",".join(sorted(str(row[0]) for row in rows)) or None


def restore(backup: Path, target: Path, progress: Progress) -> None:
    """Replace the content of ``target`` (created if absent) with the backup's, through
    the backup API: one transaction on the target, safe with the app's connections
    open (they see the old or the new database, never a mix)."""
    target.parent.mkdir(parents=True, exist_ok=True)

    def report(_status: int, remaining: int, total: int) -> None:
        progress.update(total - remaining, total, unit="pages")

    with open_readonly(backup, immutable=True) as src, no_space_message(target.parent):
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst, pages=_STEP_PAGES, progress=report)
        except sqlite3.OperationalError as error:
            raise VerificationFailed(
                f"restoring into {target} failed (nothing was changed): {error}"
            ) from None
        finally:
            dst.close()


def sqlite_version() -> str:
    return sqlite3.sqlite_version
