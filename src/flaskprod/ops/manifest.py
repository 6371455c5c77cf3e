"""A backup's manifest (``<app>-<UTC stamp>.json``) and the set of backups in a folder.

A backup is the database file (``.dump`` for PostgreSQL's custom format, ``.sqlite3``
for SQLite), optionally ``.media.tar``, a ``.sha256`` file in ``sha256sum`` format
(``sha256sum -c`` checks it by hand) and the manifest, written last.

The kit's ``deploy/scripts/backup.sh`` (the systemd timer, on servers that may lack
flaskprod's command-line extra) writes the same names and the ``.sha256`` but no
manifest: reading row counts in the dump's snapshot is not a job for bash. Such a
backup is read here with a manifest *derived* from its files (``has_manifest`` is
False): its checksum is known, its table stats are not. What makes a backup count,
for retention and for both tools alike, is its database file plus its ``.sha256``:
each tool writes the ``.sha256`` only once the database file is verified.
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
SUFFIXES = {"postgresql": ".dump", "mariadb": ".sql.gz", "sqlite": ".sqlite3"}
MEDIA_SUFFIX = ".media.tar"
_STAMP = re.compile(r"-(\d{8}T\d{6}Z)$")
_PG_MAGIC = b"PGDMP"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_GZIP_MAGIC = b"\x1f\x8b"  # the MariaDB dump, gzipped


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
    #: False: no manifest on disk (the kit's backup.sh); ``manifest`` was derived from
    #: the file's name, content and ``.sha256``, and has no tables to compare.
    has_manifest: bool = True

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
        elif not self.has_manifest:  # e.g. a flaskprod backup whose manifest is unreadable
            paths.append(self.folder / f"{self.stem}{MEDIA_SUFFIX}")
        return [*paths, self.manifest_path]


def read_backup(path: Path) -> Backup:
    """The backup that ``path`` (its manifest, database file, .sha256 or media tar)
    belongs to; without a manifest, one derived from the database file."""
    name = path.name
    for suffix in (".json", ".sha256", MEDIA_SUFFIX, *SUFFIXES.values()):
        if name.endswith(suffix):
            name = name.removesuffix(suffix)
            break
    manifest_path = path.with_name(f"{name}.json")
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return derived_backup(path, name)
    try:
        return Backup(manifest_path, Manifest.from_json(text))
    except (ValueError, TypeError, KeyError) as error:
        raise VerificationFailed(
            f"{manifest_path}: not a readable backup manifest ({error})"
        ) from None


def read_checksums(path: Path) -> dict[str, str]:
    """``sha256sum`` lines (``digest  name``, or ``digest *name``): name -> digest."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _, rest = line.partition(" ")
        if re.fullmatch(r"[0-9a-f]{64}", digest) and rest[:1] in (" ", "*"):
            found[rest[1:]] = digest
    return found


def sniff_kind(path: Path) -> str | None:
    """``postgresql`` for a custom-format dump, ``sqlite`` for a database file,
    ``mariadb`` for a gzipped dump."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(_PG_MAGIC):
        return "postgresql"
    if head == _SQLITE_MAGIC:
        return "sqlite"
    if head.startswith(_GZIP_MAGIC):
        return "mariadb"
    return None


def derived_backup(path: Path, name: str) -> Backup:
    """A backup without a manifest: its database file is ``path`` or ``name`` + a known
    suffix; its kind comes from the content (the old backup.sh named SQLite copies
    ``.dump``); its checksum from ``name.sha256`` when that file names it."""
    folder = path.parent
    if path.name in (f"{name}.sha256", f"{name}.json", f"{name}{MEDIA_SUFFIX}"):
        candidates = [folder / f"{name}{suffix}" for suffix in SUFFIXES.values()]
        database = next((c for c in candidates if c.is_file()), None)
        if database is None:
            raise VerificationFailed(
                f"{path}: no database file ({name}.dump, .sql.gz or .sqlite3) beside it"
            )
    else:
        database = path
    if not database.is_file():
        raise VerificationFailed(f"{path}: no such backup")
    kind = sniff_kind(database)
    if kind is None:
        by_suffix = {suffix: kind for kind, suffix in SUFFIXES.items()}
        kind = by_suffix.get(database.suffix)
        if kind is None:
            raise VerificationFailed(
                f"{database}: neither a pg_dump custom-format archive nor a SQLite database"
            )
    sums = folder / f"{name}.sha256"
    digest = read_checksums(sums).get(database.name, "") if sums.is_file() else ""
    match = _STAMP.search(name)
    if match is not None:
        created = datetime.strptime(match.group(1), STAMP_FORMAT).replace(tzinfo=UTC)
    else:
        created = datetime.fromtimestamp(database.stat().st_mtime, UTC)
    manifest = Manifest(
        app=name[: match.start()] if match is not None else "",
        created_at=iso(created),
        database_kind=kind,
        database_name="",
        server_version="",
        schema_revision=None,
        tables={},
        database_file=FileEntry(database.name, database.stat().st_size, digest),
    )
    return Backup(folder / f"{name}.json", manifest, has_manifest=False)


def list_backups(folder: Path, app: str) -> list[Backup]:
    """The app's complete backups in ``folder``, newest first.

    Complete: ``<app>-<stamp>.sha256`` and the database file beside it, the rule the
    kit's backup.sh applies too. Read from the manifest when there is a readable one,
    else derived (an unreadable manifest does not hide a backup from retention).
    """
    found = []
    for sums in folder.glob(f"{app}-*.sha256"):
        name = sums.name.removesuffix(".sha256")
        if not re.fullmatch(r"\d{8}T\d{6}Z", name.removeprefix(f"{app}-")):
            continue  # another app's (e.g. "shop-admin-...") or not a backup
        if not any((folder / f"{name}{suffix}").is_file() for suffix in SUFFIXES.values()):
            continue
        try:
            backup = read_backup(sums)
        except VerificationFailed:
            backup = derived_backup(sums, name)
        found.append(backup)
    return sorted(found, key=lambda b: (b.manifest.created_at, b.stem), reverse=True)
