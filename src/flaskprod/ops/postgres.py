"""PostgreSQL for backups: connections, snapshots, per-table stats, pg_dump, pg_restore.

The manifest's row counts and checksums must describe exactly what the dump holds,
even while the app keeps writing: the stats are read in a REPEATABLE READ transaction
whose snapshot ``pg_dump --snapshot`` then uses too, so both see the same instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flaskprod.errors import EnvironmentProblem, ServiceFailed, VerificationFailed
from flaskprod.ops.database import Database
from flaskprod.ops.files import Progress, human_size, no_space
from flaskprod.ops.manifest import TableStats
from flaskprod.ops.pgtools import PgTools
from flaskprod.stack.postgres import import_psycopg

if TYPE_CHECKING:
    import psycopg

# Text forms of values that do not depend on the session's locale or time zone, so
# that a checksum taken at backup time matches one taken after a restore.
_STABLE_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)
_USER_TABLES = """
SELECT n.nspname, c.relname, c.oid, greatest(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
ORDER BY 1, 2
"""
_USER_RELATION_COUNT = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""
_ROW_ALIAS = "flaskprod_row_"


def first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def connect(db: Database, *, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    """A connection to ``db``; an unreachable server is a one-line error."""
    psycopg = import_psycopg()
    try:
        conn = psycopg.connect(
            db.conninfo_string(),
            password=db.password or None,
            autocommit=autocommit,
            connect_timeout=5,
        )
    except psycopg.OperationalError as error:
        raise EnvironmentProblem(
            f"cannot connect to PostgreSQL at {db.where} (database {db.dbname}): "
            f"{first_line(error)}"
        ) from None
    with conn:
        yield conn


def _scalar(
    conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] | None = None
) -> Any:
    """The first column of the first row (None without rows)."""
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def server_version(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    """(major, "15.10") of the server."""
    number = int(_scalar(conn, "SHOW server_version_num"))
    major, minor = (number // 10000, number % 10000) if number >= 100000 else divmod(number, 100)
    return major, f"{major}.{minor}"


_PRIMARY_KEY = """
SELECT a.attname, t.typcollation <> 0 FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
JOIN pg_type t ON t.oid = a.atttypid
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


def tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str, int, int]]:
    """(schema, table, oid, estimated rows) of every ordinary table outside the
    system schemas."""
    rows = conn.execute(_USER_TABLES).fetchall()
    return [(str(schema), str(name), int(oid), int(rows)) for schema, name, oid, rows in rows]


def _order(conn: psycopg.Connection[Any], oid: int) -> Any:
    """ORDER BY the primary key (cheap, and unique), else by the whole row's text.
    Text is compared byte-wise (COLLATE "C") so that servers with another locale
    still agree on the order."""
    sql = import_psycopg().sql
    key = conn.execute(_PRIMARY_KEY, (oid,)).fetchall()
    if not key:
        return sql.SQL('{}::text COLLATE "C"').format(sql.Identifier(_ROW_ALIAS))
    return sql.SQL(", ").join(
        sql.SQL('{}.{} COLLATE "C"' if collatable else "{}.{}").format(
            sql.Identifier(_ROW_ALIAS), sql.Identifier(str(column))
        )
        for column, collatable in key
    )


def relation_count(conn: psycopg.Connection[Any]) -> int:
    """Tables, views, sequences... in user schemas: 0 means an empty database."""
    return int(_scalar(conn, _USER_RELATION_COUNT))


def table_key(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def stats(conn: psycopg.Connection[Any], progress: Progress | None = None) -> dict[str, TableStats]:
    """Rows and a sha256 over each table's rows (their text form, in a fixed order).

    Must run inside a transaction (the server-side cursor needs one); in REPEATABLE
    READ every table is read at the same instant.
    """
    sql = import_psycopg().sql
    for statement in _STABLE_SETTINGS:
        conn.execute(statement)
    found = tables(conn)
    estimate = sum(table[3] for table in found)
    seen = 0
    result: dict[str, TableStats] = {}
    for number, (schema, name, oid, _) in enumerate(found):
        digest = hashlib.sha256()
        rows = 0
        query = sql.SQL("SELECT {alias}::text FROM {table} AS {alias} ORDER BY {order}").format(
            alias=sql.Identifier(_ROW_ALIAS),
            table=sql.Identifier(schema, name),
            order=_order(conn, oid),
        )
        with conn.cursor(name=f"flaskprod_stats_{number}") as cursor:
            cursor.itersize = 5000
            cursor.execute(query)
            for (text,) in cursor:
                digest.update(text.encode("utf-8"))
                digest.update(b"\n")
                rows += 1
                if progress is not None and rows % 5000 == 0:
                    # reltuples is an estimate (0 before the first ANALYZE)
                    total = estimate if estimate > seen + rows else None
                    progress.update(seen + rows, total, unit="rows")
        seen += rows
        result[table_key(schema, name)] = TableStats(rows=rows, sha256=digest.hexdigest())
    return result


def schema_revision(conn: psycopg.Connection[Any]) -> str | None:
    """Alembic's revision (``alembic_version``), if the database has that table."""
    if _scalar(conn, "SELECT to_regclass('alembic_version')") is None:
        return None
    rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return ",".join(sorted(str(row[0]) for row in rows)) or None


@contextlib.contextmanager
def snapshot(db: Database) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A REPEATABLE READ, read-only transaction and its exported snapshot id."""
    with connect(db, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot_id = str(_scalar(conn, "SELECT pg_export_snapshot()"))
        try:
            yield conn, snapshot_id
        finally:
            conn.rollback()


def _tool_error(result_stderr: str) -> str:
    lines = [line for line in result_stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["no output"])[0].strip()


class DumpProcess:
    """``pg_dump`` running into ``out``; :meth:`wait` shows progress and checks it."""

    def __init__(
        self,
        db: Database,
        tools: PgTools,
        out: Path,
        snapshot_id: str | None,
        progress: Progress,
    ) -> None:
        argv = [
            str(tools.pg_dump),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={out}",
            f"--dbname={db.conninfo_string()}",
        ]
        if snapshot_id:
            argv.append(f"--snapshot={snapshot_id}")
        self.out = out
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **db.environ()},
            text=True,
        )
        self.progress = progress
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        # The compressed dump's size is all we can see of pg_dump's progress.
        while not self._stop.wait(0.5):
            with contextlib.suppress(FileNotFoundError):
                self.progress.update(self.out.stat().st_size)

    def wait(self) -> None:
        progress = self.progress
        try:
            _, stderr = self.proc.communicate()
        finally:
            self._stop.set()
            self._watcher.join()
        if self.proc.returncode != 0:
            if "No space left on device" in stderr:
                raise no_space(self.out.parent)
            raise ServiceFailed(f"pg_dump failed: {_tool_error(stderr)}")
        if progress.printed:
            progress.line(f"dump written, {human_size(self.out.stat().st_size)}")

    def kill(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def verify_archive(tools: PgTools, path: Path) -> None:
    """The table of contents reads and every data block decompresses."""
    for argv in (
        [str(tools.pg_restore), "--list", str(path)],
        [str(tools.pg_restore), "--file=/dev/null", str(path)],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise VerificationFailed(
                f"{path.name} is not a readable pg_dump archive: {_tool_error(result.stderr)}"
            )


def restore_archive(
    db: Database, tools: PgTools, path: Path, *, clean: bool, progress: Progress
) -> None:
    """pg_restore in one transaction: the database gets all of it or none of it."""
    argv = [
        str(tools.pg_restore),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={db.conninfo_string()}",
    ]
    if clean:
        argv += ["--clean", "--if-exists"]
    proc = subprocess.Popen(
        [*argv, str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **db.environ()},
        text=True,
    )
    stop = threading.Event()
    watcher = threading.Thread(target=_tick, args=(stop, progress), daemon=True)
    watcher.start()
    try:
        _, stderr = proc.communicate()
    finally:
        stop.set()
        watcher.join()
    if proc.returncode != 0:
        raise VerificationFailed(
            f"pg_restore into {db.dbname} at {db.where} failed (nothing was changed): "
            f"{_tool_error(stderr)}"
        )


def _tick(stop: threading.Event, progress: Progress) -> None:
    while not stop.wait(0.5):
        progress.tick("still restoring")


def database_exists(db: Database, name: str) -> bool:
    with connect(db) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def create_database(db: Database, name: str, owner: str | None = None) -> None:
    """``CREATE DATABASE name`` through ``db``; ``owner``: the role that will own it
    (restoring as that role needs it: PostgreSQL 15 lets only the owner create in
    schema public)."""
    psycopg = import_psycopg()
    sql = psycopg.sql
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner and owner != db.user:
        query = sql.SQL("{} OWNER {}").format(query, sql.Identifier(owner))
    with connect(db) as conn:
        try:
            conn.execute(query)
        except psycopg.errors.InsufficientPrivilege:
            role = db.user or "(default)"
            raise EnvironmentProblem(
                f"role {role} may not create database {name} at {db.where}",
                hint=f"ALTER ROLE {role} CREATEDB, or use a URL of a role that may",
            ) from None


def drop_database(db: Database, name: str) -> None:
    psycopg = import_psycopg()
    with connect(db) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(name)
            )
        )
