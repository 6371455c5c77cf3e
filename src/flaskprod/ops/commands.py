"""The ``backup`` and ``restore`` commands.

stdout carries only machine output (the new backup's path, or JSON with ``--json``);
what happens on the way — progress, removals, the drill's result — goes to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import click

from flaskprod.errors import UserError, VerificationFailed
from flaskprod.ops import media as media_files
from flaskprod.ops import restore as restoring
from flaskprod.ops import target
from flaskprod.ops.backup import apply_retention, make_backup, remove
from flaskprod.ops.database import (
    MARIADB,
    NAME_PATTERN,
    POSTGRESQL,
    SQLITE,
    Database,
    parse_url,
)
from flaskprod.ops.files import human_size
from flaskprod.ops.manifest import Backup, TableStats, read_backup
from flaskprod.ops.restore import RestoreResult, describe, restore_backup
from flaskprod.ops.verify import has_checksum
from flaskprod.spec.model import BackupSection


def _say(message: str) -> None:
    click.echo(message, err=True)


def _rows(tables: dict[str, TableStats]) -> str:
    return f"{len(tables)} tables, {sum(t.rows for t in tables.values())} rows"


def _summary(backup: Backup) -> dict[str, Any]:
    manifest = backup.manifest
    return {
        "path": str(backup.database_path),
        "manifest": str(backup.manifest_path),
        "media": str(backup.media_path) if backup.media_path else None,
        "size": manifest.size,
        "created_at": manifest.created_at,
        "tables": {name: stats.rows for name, stats in manifest.tables.items()},
        "schema_revision": manifest.schema_revision,
    }


@click.command("backup")
@click.argument(
    "path",
    required=False,
    default=".",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
@click.option("--database-url", metavar="URL", help="Default: DATABASE_URL, else the local stack.")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Backup folder (default: the spec's backup.dir; .flaskprod/backups for the stack).",
)
@click.option(
    "--media/--no-media",
    default=None,
    help="Also archive the media folder, MEDIA_ROOT (default: when it exists).",
)
@click.option("--keep", type=click.IntRange(min=1), help="Newest backups always kept.")
@click.option(
    "--max-age", type=click.IntRange(min=1), metavar="DAYS", help="Older ones beyond --keep go."
)
@click.option(
    "--verify-restore",
    is_flag=True,
    help="Then restore it into a scratch database and compare every table.",
)
@click.option(
    "--offsite/--no-offsite",
    default=None,
    help="Copy the verified backup to the S3 bucket (default: with storage.kind = 's3' "
    "and S3 keys in the environment or the local stack).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON summary on stdout.")
def backup_command(
    path: Path,
    database_url: str | None,
    output: Path | None,
    media: bool | None,
    keep: int | None,
    max_age: int | None,
    verify_restore: bool,
    offsite: bool | None,
    as_json: bool,
) -> None:
    """Back up the app's database (and media), verified, then apply retention.

    PostgreSQL: pg_dump's custom format, checked with pg_restore. MariaDB/MySQL:
    mariadb-dump --single-transaction, gzipped, read back to its end. SQLite: the online
    backup API, checked with PRAGMA integrity_check. Each backup gets a .sha256 and
    a JSON manifest (row counts and checksums per table).
    """
    setup = target.load_setup(path, os.environ)
    url, source = target.database_url(database_url, os.environ, setup)
    db = parse_url(url, source=source)
    folder = target.backup_folder(output, setup, source)
    media_dir = target.media_folder(media, setup, os.environ)
    section = setup.spec.backup if setup.spec is not None else BackupSection()

    made = make_backup(db, app=setup.app, folder=folder, media=media_dir)
    manifest = made.manifest
    extra = f" + media {made.media_path.name}" if made.media_path else ""
    _say(
        f"backup: wrote {made.database_path} ({human_size(manifest.size)}, "
        f"{_rows(manifest.tables)}{extra}); verified"
    )
    summary: dict[str, Any] = {"backup": _summary(made)}
    if verify_restore:
        try:
            drilled = restoring.verify_restore(made, target.admin(db, source, setup.state_dir))
        except VerificationFailed:
            remove(made)
            _say(f"backup: removed {made.database_path.name}: it did not restore identically")
            raise
        _say(
            f"backup: restore drill passed: {_rows(drilled.tables)} restored into a scratch "
            "copy, identical to the manifest (row counts and checksums); scratch copy dropped"
        )
        summary["verify_restore"] = {"tables": len(drilled.tables), "identical": True}
    copied = _offsite(made, setup, offsite)
    if copied:
        summary["offsite"] = copied

    removed = apply_retention(
        folder,
        setup.app,
        keep=keep or section.keep,
        max_age_days=max_age or section.max_age_days,
        on_remove=lambda old: _say(
            f"backup: removed {old.database_path} (from {old.manifest.created_at}: older than "
            f"{max_age or section.max_age_days} days and beyond the newest "
            f"{keep or section.keep})"
        ),
    )
    summary["removed"] = [str(old.database_path) for old in removed]
    click.echo(json.dumps(summary, indent=2) if as_json else str(made.database_path))


def _offsite(made: Backup, setup: target.Setup, wanted: bool | None) -> str | None:
    """Copy ``made`` off the host when storage.kind = "s3" (or --offsite) says so."""
    from flaskprod.ops import offsite

    s3 = setup.spec is not None and setup.spec.storage.kind == "s3"
    if wanted is False or (wanted is None and not s3):
        return None
    settings = offsite.s3_settings(os.environ, setup.stack_env)
    if not settings:
        if wanted:
            raise UserError(
                "--offsite: no S3 bucket and keys",
                hint="set MEDIA_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
                "AWS_ENDPOINT_URL_S3, or run it next to 'flaskprod up' with storage.kind = 's3'",
            )
        _say("backup: not copied off the host: no S3 bucket and keys in the environment")
        return None
    where = offsite.upload(made, settings, setup.app)
    _say(f"backup: copied to {where} ({len(made.files())} files, sizes checked)")
    return where


@click.command("restore")
@click.argument(
    "backup", required=False, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option("--database-url", metavar="URL", help="Default: DATABASE_URL, else the local stack.")
@click.option(
    "--into",
    metavar="NAME",
    help="Another database on the same server (created if absent); a file for SQLite.",
)
@click.option("--yes", is_flag=True, help="Replace the data of a database that is not empty.")
@click.option(
    "--media",
    "with_media",
    is_flag=True,
    help="Also restore the media archive into MEDIA_ROOT (replaced as a whole).",
)
@click.option(
    "--project",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=".",
    help="The project whose local stack to use when no URL is given.",
)
@click.option(
    "--from-s3",
    "from_s3",
    metavar="NAME",
    help="Take the backup from the S3 bucket (its name, e.g. shop-20261207T171500Z, or "
    "'latest') instead of a file.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON summary on stdout.")
def restore_command(
    backup: Path | None,
    database_url: str | None,
    into: str | None,
    yes: bool,
    with_media: bool,
    project: Path,
    from_s3: str | None,
    as_json: bool,
) -> None:
    """Restore BACKUP (its .dump, .sqlite3 or .json) and compare it with its manifest.

    Checks the checksum first; refuses to replace data without --yes; afterwards
    compares every table's row count and checksum with the manifest (exit 6 if any
    differs). A backup without a manifest (the kit's backup.sh) is checked against
    its .sha256 and read back before the restore; its rows cannot be compared.
    """
    if (backup is None) == (from_s3 is None):
        raise UserError("restore: give a BACKUP file or --from-s3 NAME (one of them)")
    if from_s3 is not None:
        backup = _fetch(from_s3, project)
        try:
            _restore(backup, database_url, into, yes, with_media, project, as_json)
        finally:  # the fetched copy holds the data: not left in /tmp
            shutil.rmtree(backup.parent, ignore_errors=True)
        return
    assert backup is not None
    _restore(backup, database_url, into, yes, with_media, project, as_json)


def _restore(
    backup: Path,
    database_url: str | None,
    into: str | None,
    yes: bool,
    with_media: bool,
    project: Path,
    as_json: bool,
) -> None:
    found = read_backup(backup)
    kind = found.manifest.database_kind
    media_root = _media_root(found, project) if with_media else None
    if media_root is not None:  # refuse before the database is touched
        media_files.check_replaceable(media_root, yes=yes)
    configured, admin = _configured(database_url, project, needed=not (into and kind == SQLITE))
    create_from = None
    if into is not None:
        if kind == SQLITE:
            goal = Database(kind=SQLITE, path=Path(into).absolute())
        else:
            if not NAME_PATTERN.match(into):
                raise UserError(
                    f"--into {into!r}: a database name is letters, digits and _ "
                    "(starting with a letter or _)"
                )
            assert configured is not None
            goal, create_from = configured.with_name(into), configured
            if admin is not None:  # the local stack: its superuser creates the database
                create_from = admin
    else:
        assert configured is not None
        goal = configured
    _say(f"restore: {found.database_path.name} ({found.manifest.created_at}) into {describe(goal)}")
    result = restore_backup(found, goal, yes=yes, create_from=create_from)
    _report(found, result)
    if media_root is not None and found.media_path is not None:
        files = media_files.restore(found.media_path, media_root, yes=yes)
        _say(f"restore: media folder {media_root} restored ({files} files)")
    elif found.media_path is not None:
        _say(f"restore: the backup has media ({found.media_path.name}): --media restores it")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "target": describe(goal),
                    "tables": {name: s.rows for name, s in result.tables.items()},
                    "replaced": result.replaced,
                    "differences": result.differences,
                    "compared": result.compared,
                    "media": str(media_root) if media_root is not None else None,
                },
                indent=2,
            )
        )


def _fetch(name: str, project: Path) -> Path:
    """The backup ``name`` from the S3 bucket, in a private temporary folder."""
    import tempfile

    from flaskprod.ops import offsite

    setup = target.load_setup(project, os.environ)
    settings = offsite.s3_settings(os.environ, setup.stack_env)
    if not settings:
        raise UserError(
            "--from-s3: no S3 bucket and keys",
            hint="set MEDIA_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
            "AWS_ENDPOINT_URL_S3 (or run it next to 'flaskprod up' with storage.kind = 's3')",
        )
    folder = Path(tempfile.mkdtemp(prefix="flaskprod-restore-"))
    path = offsite.download(settings, setup.app, name, folder)
    _say(f"restore: fetched {path.stem} from s3://{settings['MEDIA_BUCKET']}/ into {folder}")
    return path


def _media_root(found: Backup, project: Path) -> Path:
    """Where --media restores to; checked before the database is touched."""
    if found.media_path is None:
        raise UserError(f"--media: {found.database_path.name} has no media archive")
    root = target.media_root(target.load_setup(project, os.environ), os.environ)
    if not root:
        raise UserError(
            "--media: no media folder known", hint="set MEDIA_ROOT or run from the project"
        )
    return Path(root)


def _configured(
    option: str | None, project: Path, *, needed: bool
) -> tuple[Database | None, Database | None]:
    """The configured database, and the local stack's superuser when it is the stack's."""
    try:
        setup = target.load_setup(project, os.environ)
        url, source = target.database_url(option, os.environ, setup)
    except UserError:
        if needed:
            raise
        return None, None
    db = parse_url(url, source=source)
    admin = target.admin(db, source, setup.state_dir)
    return db, (admin if admin is not db else None)


def _report(found: Backup, result: RestoreResult) -> None:
    if result.differences:
        for line in result.differences:
            _say(f"restore: differs: {line}")
        raise VerificationFailed(
            f"{describe(result.target)} differs from the manifest of "
            f"{found.database_path.name} in {len(result.differences)} table(s): "
            f"{result.differences[0]}"
        )
    kind = {POSTGRESQL: "PostgreSQL", MARIADB: "MariaDB"}.get(
        found.manifest.database_kind, "SQLite"
    )
    if not result.compared:
        checked = "its archive read back"
        checked += (
            " and its sha256 matched"
            if has_checksum(found)
            else f"; no {found.checksum_path.name}, so its checksum was NOT verified"
        )
        _say(
            f"restore: {kind} {describe(result.target)} restored: {_rows(result.tables)}; "
            f"row counts could not be compared: {found.database_path.name} has no manifest "
            f"(a backup by the kit's backup.sh, or made by hand); {checked}"
        )
        return
    _say(
        f"restore: {kind} {describe(result.target)} restored: {_rows(result.tables)}, "
        "identical to the manifest (row counts and checksums)"
    )
