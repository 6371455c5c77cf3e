"""``flaskprod restore`` and the restore drill of ``flaskprod backup --verify-restore``.

A restore checks the backup's checksum before touching anything, refuses to write
over a database that holds data unless told to, restores in one transaction
(PostgreSQL: ``pg_restore --single-transaction``; SQLite: the backup API), and then
compares every table with the manifest: row counts and the checksum of the rows.

A backup without a manifest (the kit's backup.sh) has nothing to compare with: its
archive is verified before anything is touched (``pg_restore`` reads all of it;
SQLite's ``integrity_check``) and the result says the comparison was not made.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from flaskprod.errors import Refused, UserError, VerificationFailed
from flaskprod.ops import mariadb, postgres, sqlite
from flaskprod.ops.database import MARIADB, POSTGRESQL, SQLITE, Database
from flaskprod.ops.files import Progress, temp_path
from flaskprod.ops.manifest import Backup, TableStats
from flaskprod.ops.pgtools import find_tools
from flaskprod.ops.verify import check_backup_files, compare


@dataclass
class RestoreResult:
    target: Database
    tables: dict[str, TableStats]
    differences: list[str] = field(default_factory=list)
    replaced: bool = False  # the target held data (--yes)
    compared: bool = True  # False: no manifest, so no row counts to compare with


def describe(db: Database) -> str:
    return f"{db.path}" if db.kind == SQLITE else f"database {db.dbname} at {db.where}"


def restore_backup(
    backup: Backup,
    target: Database,
    *,
    yes: bool = False,
    create_from: Database | None = None,
    tool_dirs: list[Path] | None = None,
    stream: TextIO | None = None,
) -> RestoreResult:
    """Restore ``backup`` into ``target``. ``create_from``: a database on the same server
    to connect to for creating ``target`` if it does not exist (PostgreSQL).
    Differences are returned, not raised (the caller reports them)."""
    kind = backup.manifest.database_kind
    if kind != target.kind:
        raise UserError(
            f"{backup.database_path.name} is a {kind} backup; the target is {target.kind}",
            hint="restore into a database of the same kind",
        )
    check_backup_files(backup)
    progress = Progress(f"restore {backup.database_path.name}", stream=stream)
    if kind == POSTGRESQL:
        tools = find_tools(tool_dirs)[0]
        if not backup.has_manifest:  # never verified by flaskprod: read it all first
            postgres.verify_archive(tools, backup.database_path)
        if create_from is not None and not postgres.database_exists(create_from, target.dbname):
            postgres.create_database(create_from, target.dbname, owner=target.user or None)
        with postgres.connect(target) as conn:
            occupied = postgres.relation_count(conn) > 0
        _refuse_unless(occupied, yes, target)
        postgres.restore_archive(
            target, tools, backup.database_path, clean=occupied, progress=progress
        )
        with postgres.connect(target, autocommit=False) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            tables = postgres.stats(conn, _checksums(progress))
            conn.rollback()
    elif kind == MARIADB:
        if not backup.has_manifest:  # never verified by flaskprod: read it all first
            mariadb.verify_archive(backup.database_path)
        if create_from is not None and not mariadb.database_exists(create_from, target.dbname):
            mariadb.create_database(create_from, target.dbname, owner=target.user or None)
        occupied = mariadb.table_count(target) > 0
        _refuse_unless(occupied, yes, target)
        mariadb.restore(target, backup.database_path, progress)
        tables = mariadb.current_stats(target).result()
    else:
        assert target.path is not None
        if not backup.has_manifest:
            sqlite.integrity_check(backup.database_path)
        occupied = not sqlite.is_empty(target.path)
        _refuse_unless(occupied, yes, target)
        sqlite.restore(backup.database_path, target.path, progress)
        tables = sqlite.stats(target.path, progress=_checksums(progress))
    return RestoreResult(
        target=target,
        tables=tables,
        differences=compare(backup.manifest.tables, tables) if backup.has_manifest else [],
        replaced=occupied,
        compared=backup.has_manifest,
    )


def _checksums(progress: Progress) -> Progress:
    return Progress(f"{progress.label}: row checksums", stream=progress.stream)


def _refuse_unless(occupied: bool, yes: bool, target: Database) -> None:
    if occupied and not yes:
        raise Refused(
            f"{describe(target)} is not empty: restoring would replace its data",
            hint="pass --yes to replace it, or --into NAME to restore into another database",
        )


def verify_restore(
    backup: Backup,
    server: Database,
    *,
    tool_dirs: list[Path] | None = None,
    stream: TextIO | None = None,
) -> RestoreResult:
    """Restore ``backup`` into a scratch database (PostgreSQL: on ``server``'s server;
    SQLite: a temp file beside the backup), compare, and drop the scratch copy.
    Raises :class:`VerificationFailed` on any difference."""
    if not backup.has_manifest:  # a drill with nothing to compare would prove nothing
        raise VerificationFailed(
            f"{backup.database_path.name} has no manifest: a restore drill has nothing to "
            "compare the restored copy with",
            hint="restore it with 'flaskprod restore --into NAME' and inspect it",
        )
    kind = backup.manifest.database_kind
    if kind in (POSTGRESQL, MARIADB):
        engine = postgres if kind == POSTGRESQL else mariadb
        scratch = server.with_name(f"flaskprod_verify_{os.getpid()}_{secrets.token_hex(4)}")
        engine.create_database(server, scratch.dbname)
        try:
            result = restore_backup(backup, scratch, tool_dirs=tool_dirs, stream=stream)
        finally:
            engine.drop_database(server, scratch.dbname)
    else:
        path = temp_path(backup.folder / f"verify-{backup.stem}.sqlite3")
        scratch = Database(kind=SQLITE, path=path)
        try:
            result = restore_backup(backup, scratch, stream=stream)
        finally:
            for leftover in (path, path.with_name(path.name + "-journal")):
                leftover.unlink(missing_ok=True)
    if result.differences:
        raise VerificationFailed(
            f"restore drill of {backup.database_path.name}: the restored copy differs from "
            f"the manifest: {'; '.join(result.differences)}"
        )
    return result
