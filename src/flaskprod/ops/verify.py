"""Checks shared by backup and restore: file checksums and comparing table stats."""

from __future__ import annotations

import tarfile
from pathlib import Path

from flaskprod.errors import VerificationFailed
from flaskprod.ops.files import sha256_file
from flaskprod.ops.manifest import Backup, FileEntry, TableStats


def check_file(path: Path, entry: FileEntry) -> None:
    """``path`` has the size and sha256 the manifest (or the .sha256) recorded."""
    if not path.is_file():
        raise VerificationFailed(f"{path}: missing (the manifest lists it)")
    size = path.stat().st_size
    digest = sha256_file(path)
    if size != entry.size or digest != entry.sha256:
        raise VerificationFailed(
            f"{path}: checksum mismatch (sha256 {digest[:12]}..., {size} bytes; the manifest "
            f"says {entry.sha256[:12]}..., {entry.size} bytes): the file is damaged"
        )


def check_backup_files(backup: Backup) -> None:
    """Every file against its recorded checksum. A backup without a manifest and
    without a .sha256 has none: nothing to check here (see ``has_checksum``)."""
    if has_checksum(backup):
        check_file(backup.database_path, backup.manifest.database_file)
    if backup.media_path is not None and backup.manifest.media_file is not None:
        check_file(backup.media_path, backup.manifest.media_file)


def has_checksum(backup: Backup) -> bool:
    return bool(backup.manifest.database_file.sha256)


def check_tar(path: Path) -> None:
    """Every member's header and data read back."""
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                handle = archive.extractfile(member)
                if handle is not None:
                    while handle.read(1 << 20):
                        pass
    except (tarfile.TarError, OSError, EOFError) as error:
        raise VerificationFailed(f"{path.name} is not a readable tar archive: {error}") from None


def compare(expected: dict[str, TableStats], actual: dict[str, TableStats]) -> list[str]:
    """Differences between the manifest's tables and a database's, one line each.

    Tables the database has beyond the backup's are not differences (a restore with
    --yes keeps tables the backup does not know); missing or changed ones are.
    """
    problems = []
    for name, want in sorted(expected.items()):
        got = actual.get(name)
        if got is None:
            problems.append(f"{name}: missing ({want.rows} rows in the backup)")
        elif got.rows != want.rows:
            problems.append(f"{name}: {got.rows} rows, the backup has {want.rows}")
        elif got.sha256 != want.sha256:
            problems.append(f"{name}: {got.rows} rows as in the backup, but different content")
    return problems
