"""``flaskprod backup``: a consistent, verified backup, then retention.

Order matters. Everything is written under hidden temp names first and verified
(the archive reads back; the SQLite copy passes ``integrity_check``); only then are
the files renamed to their final names, the manifest last, and their checksums
checked once more. A failure at any step leaves no file under a final name.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from flaskprod import __version__
from flaskprod.errors import EnvironmentProblem, Refused, VerificationFailed
from flaskprod.ops import mariadb, postgres, sqlite
from flaskprod.ops.database import MARIADB, POSTGRESQL, Database
from flaskprod.ops.files import (
    Progress,
    folder_lock,
    fsync_dir,
    no_space_message,
    publish,
    remove_stale_temps,
    sha256_file,
    temp_path,
    write_text_atomic,
)
from flaskprod.ops.manifest import (
    MEDIA_SUFFIX,
    SUFFIXES,
    Backup,
    FileEntry,
    Manifest,
    TableStats,
    checksum_text,
    iso,
    list_backups,
    stem,
)
from flaskprod.ops.media import archive as media_archive
from flaskprod.ops.pgtools import find_tools, for_server
from flaskprod.ops.verify import check_backup_files


@dataclass
class _Dumped:
    server_version: str
    tool: str
    tables: dict[str, TableStats]
    schema_revision: str | None


def prepare_folder(folder: Path) -> None:
    try:
        with no_space_message(folder):
            folder.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise EnvironmentProblem(
            f"cannot create the backup folder {folder}: permission denied",
            hint="pass --output with a folder you can write to",
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise EnvironmentProblem(
            f"cannot write to the backup folder {folder}",
            hint="pass --output with a folder you can write to",
        )


def _free_moment(folder: Path, app: str, now: datetime | None) -> datetime:
    """The backup's time; a name already taken (two backups in one second) waits for
    the next second rather than overwrite anything."""
    for _ in range(3):
        moment = now or datetime.now(UTC)
        if not any(folder.glob(f"{stem(app, moment)}.*")):
            return moment
        if now is not None:
            raise Refused(f"a backup named {stem(app, moment)} already exists in {folder}")
        time.sleep(1.0 - moment.microsecond / 1e6)
    raise Refused(f"a backup named {stem(app, moment)} already exists in {folder}")


def _dump_postgres(
    db: Database, temp: Path, progress: Progress, tool_dirs: list[Path] | None
) -> _Dumped:
    tools = find_tools(tool_dirs)  # before connecting: a missing tool is the cheaper news
    with postgres.snapshot(db) as (conn, snapshot_id):
        major, version = postgres.server_version(conn)
        chosen = for_server(tools, major, version)
        dump = postgres.DumpProcess(db, chosen, temp, snapshot_id, progress)
        try:
            # The stats run while pg_dump works: both read the same snapshot.
            checksums = Progress(f"{progress.label}: row checksums", stream=progress.stream)
            tables = postgres.stats(conn, checksums)
            revision = postgres.schema_revision(conn)
            dump.wait()
        finally:
            dump.kill()
    postgres.verify_archive(chosen, temp)
    return _Dumped(version, f"pg_dump {chosen.version}", tables, revision)


def _dump_mariadb(db: Database, temp: Path, progress: Progress) -> _Dumped:
    version = mariadb.server_version(db)
    stats = mariadb.dump(db, temp, progress)
    # Read back: the gzip file decompresses to its end and holds what was counted.
    if mariadb.verify_archive(temp).result() != stats.result():
        raise VerificationFailed(f"{temp.name}: the written dump differs from what was read")
    tool = mariadb.tool("mariadb-dump", "mysqldump").name
    return _Dumped(version, f"{tool} --single-transaction", stats.result(), stats.schema_revision)


def _copy_sqlite(db: Database, temp: Path, progress: Progress) -> _Dumped:
    assert db.path is not None
    sqlite.copy(db.path, temp, progress)
    sqlite.integrity_check(temp)
    checksums = Progress(f"{progress.label}: row checksums", stream=progress.stream)
    tables = sqlite.stats(temp, immutable=True, progress=checksums)
    revision = sqlite.schema_revision(temp, immutable=True)
    version = sqlite.sqlite_version()
    return _Dumped(version, f"sqlite3 backup API {version}", tables, revision)


def _entry(final: Path, temp: Path) -> FileEntry:
    return FileEntry(name=final.name, size=temp.stat().st_size, sha256=sha256_file(temp))


def make_backup(
    db: Database,
    *,
    app: str,
    folder: Path,
    media: Path | None = None,
    now: datetime | None = None,
    tool_dirs: list[Path] | None = None,
    stream: TextIO | None = None,
) -> Backup:
    """Back up ``db`` (and the ``media`` folder) into ``folder``; return the verified
    backup. ``tool_dirs`` overrides where pg_dump is looked for."""
    prepare_folder(folder)
    with folder_lock(folder, app):
        remove_stale_temps(folder, app)
        return _make_backup(db, app, folder, media, now, tool_dirs, stream)


def _make_backup(
    db: Database,
    app: str,
    folder: Path,
    media: Path | None,
    now: datetime | None,
    tool_dirs: list[Path] | None,
    stream: TextIO | None,
) -> Backup:
    moment = _free_moment(folder, app, now)
    name = stem(app, moment)
    final_db = folder / f"{name}{SUFFIXES[db.kind]}"
    final_media = folder / f"{name}{MEDIA_SUFFIX}"
    temps = [temp_path(final_db), temp_path(final_media)]
    progress = Progress(f"backup {final_db.name}", stream=stream)
    try:
        if db.kind == POSTGRESQL:
            dumped = _dump_postgres(db, temps[0], progress, tool_dirs)
        elif db.kind == MARIADB:
            dumped = _dump_mariadb(db, temps[0], progress)
        else:
            dumped = _copy_sqlite(db, temps[0], progress)
        db_entry = _entry(final_db, temps[0])
        media_entry = None
        if media is not None:
            media_archive(media, temps[1])
            media_entry = _entry(final_media, temps[1])
        manifest = Manifest(
            app=app,
            created_at=iso(moment),
            database_kind=db.kind,
            database_name=db.name,
            server_version=dumped.server_version,
            schema_revision=dumped.schema_revision,
            tables=dumped.tables,
            database_file=db_entry,
            media_file=media_entry,
            flaskprod_version=__version__,
            tool=dumped.tool,
        )
        backup = Backup(folder / f"{name}.json", manifest)
        try:
            with no_space_message(folder):
                publish(temps[0], final_db)
                if media_entry is not None:
                    publish(temps[1], final_media)
                entries = [db_entry] + ([media_entry] if media_entry else [])
                write_text_atomic(backup.checksum_path, checksum_text(entries))
                write_text_atomic(backup.manifest_path, manifest.to_json())
                fsync_dir(folder)
        except BaseException:
            remove(backup)  # no complete file may stay without its manifest
            raise
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    try:
        check_backup_files(backup)  # what is on disk under the final names
    except VerificationFailed:
        remove(backup)
        raise
    return backup


def remove(backup: Backup) -> None:
    """Delete a backup's files, the manifest first (so it stops counting at once)."""
    for path in reversed(backup.files()):
        path.unlink(missing_ok=True)


def expired(backups: list[Backup], *, keep: int, max_age_days: int, now: datetime) -> list[Backup]:
    """Backups to delete: beyond the newest ``keep`` AND older than ``max_age_days``.

    ``backups`` are the complete ones, newest first. ``keep`` is a floor: the newest
    ``keep`` stay whatever their age, and the newest verified backup always stays.
    The age is the UTC stamp in the name, not the file's mtime: the kit's
    deploy/scripts/backup.sh applies this very rule to the same files (a test runs
    both on one folder).
    """
    limit = now - timedelta(days=max_age_days)
    return [b for i, b in enumerate(backups) if i >= max(keep, 1) and b.manifest.created < limit]


def apply_retention(
    folder: Path,
    app: str,
    *,
    keep: int,
    max_age_days: int,
    now: datetime | None = None,
    on_remove: Callable[[Backup], None] | None = None,
) -> list[Backup]:
    doomed = expired(
        list_backups(folder, app),
        keep=keep,
        max_age_days=max_age_days,
        now=now or datetime.now(UTC),
    )
    for backup in doomed:
        remove(backup)
        if on_remove is not None:
            on_remove(backup)
    return doomed
