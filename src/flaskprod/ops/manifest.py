"""A backup's manifest (``<app>-<UTC stamp>.json``) and the set of backups in a folder.

A backup is the database file (``.dump`` for PostgreSQL's custom format, ``.sqlite3``
for SQLite), optionally ``.media.tar``, a ``.sha256`` file in ``sha256sum`` format
(``sha256sum -c`` checks it by hand) and the manifest, written last: a backup without
its manifest was never verified and is not counted as one.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flaskprod.errors import VerificationFailed

FORMAT = 1
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
SUFFIXES = {"postgresql": ".dump", "sqlite": ".sqlite3"}
MEDIA_SUFFIX = ".media.tar"
_STAMP = re.compile(r"-(\d{8}T\d{6}Z)$")


@dataclass(frozen=True)
class TableStats:
    """Row count and sha256 of a table's rows in a fixed order (see ``stats``)."""

    rows: int
    sha256: str


@dataclass(frozen=True)
class FileEntry:
    name: str
    size: int
    sha256: str


@dataclass
class Manifest:
    app: str
    created_at: str  # ISO 8601, UTC, "Z"
    database_kind: str
    database_name: str
    server_version: str
    schema_revision: str | None
    tables: dict[str, TableStats]
    database_file: FileEntry
    media_file: FileEntry | None = None
    flaskprod_version: str = ""
    tool: str = ""
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def created(self) -> datetime:
        return datetime.strptime(self.created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    @property
    def size(self) -> int:
        return self.database_file.size + (self.media_file.size if self.media_file else 0)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw: dict[str, Any] = json.loads(text)
        raw["tables"] = {name: TableStats(**t) for name, t in raw["tables"].items()}
        raw["database_file"] = FileEntry(**raw["database_file"])
        if raw.get("media_file"):
            raw["media_file"] = FileEntry(**raw["media_file"])
        return cls(**raw)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stem(app: str, moment: datetime) -> str:
    return f"{app}-{stamp(moment)}"


def checksum_text(entries: list[FileEntry]) -> str:
    """``sha256sum`` format: two spaces between digest and name."""
    return "".join(f"{entry.sha256}  {entry.name}\n" for entry in entries)


@dataclass(frozen=True)
class Backup:
    """A backup on disk: its manifest path and what the manifest says."""

    manifest_path: Path
    manifest: Manifest

    @property
    def folder(self) -> Path:
        return self.manifest_path.parent

    @property
    def stem(self) -> str:
        return self.manifest_path.name.removesuffix(".json")

    @property
    def database_path(self) -> Path:
        return self.folder / self.manifest.database_file.name

    @property
    def media_path(self) -> Path | None:
        media = self.manifest.media_file
        return self.folder / media.name if media else None

    @property
    def checksum_path(self) -> Path:
        return self.folder / f"{self.stem}.sha256"

    def files(self) -> list[Path]:
        """Every file of this backup, the manifest last (it is what makes it count)."""
        paths = [self.database_path, self.checksum_path]
        if self.media_path is not None:
            paths.append(self.media_path)
        return [*paths, self.manifest_path]


def read_backup(path: Path) -> Backup:
    """The backup that ``path`` (its manifest, database file or media tar) belongs to."""
    name = path.name
    for suffix in (".json", ".sha256", MEDIA_SUFFIX, *SUFFIXES.values()):
        if name.endswith(suffix):
            name = name.removesuffix(suffix)
            break
    manifest_path = path.with_name(f"{name}.json")
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not path.exists():
            raise VerificationFailed(f"{path}: no such backup") from None
        raise VerificationFailed(
            f"{path}: its manifest {manifest_path.name} is missing, so its checksum "
            "cannot be verified",
            hint="restore only backups made by 'flaskprod backup'",
        ) from None
    try:
        return Backup(manifest_path, Manifest.from_json(text))
    except (ValueError, TypeError, KeyError) as error:
        raise VerificationFailed(
            f"{manifest_path}: not a readable backup manifest ({error})"
        ) from None


def list_backups(folder: Path, app: str) -> list[Backup]:
    """The app's complete backups in ``folder``, newest first (unreadable ones skipped)."""
    found = []
    for path in folder.glob(f"{app}-*.json"):
        if _STAMP.search(path.name.removesuffix(".json")) is None:
            continue
        try:
            backup = read_backup(path)
        except VerificationFailed:
            continue
        if backup.manifest.app == app and backup.database_path.exists():
            found.append(backup)
    return sorted(found, key=lambda b: (b.manifest.created_at, b.stem), reverse=True)
