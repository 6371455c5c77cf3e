"""Write the rendered kit to disk, safely.

- Atomic: each file is written to a temporary file beside it, given its mode, then
  moved into place with ``os.replace`` — a reader never sees half a file.
- Careful: a manifest (:data:`MANIFEST`) records the sha256 of every file as last
  rendered. A file whose content no longer matches it was edited by hand; a file that
  exists but was never rendered by flaskprod is someone else's. Either is overwritten
  only with ``force``; otherwise :class:`Refused` names them all, and nothing at all is
  written (everything is checked before anything is written).
- Deterministic: the manifest is sorted JSON without timestamps, so the same spec gives
  byte-identical files, manifest included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flaskprod.errors import ProjectError, Refused
from flaskprod.kit.merge import BEGIN, MERGED, merge_block
from flaskprod.spec.rendered import MANIFEST, read_manifest

#: Relative to the project root; lists files by their path relative to the root too.

Action = Literal["create", "update", "unchanged", "edited", "foreign", "remove", "orphan"]
#: Actions that stop a write unless forced.
CONFLICTS: frozenset[str] = frozenset({"edited", "foreign"})


@dataclass(frozen=True)
class Change:
    path: str
    action: Action
    #: Why, for people: "edited since the last render", "mode 0644, expected 0755".
    detail: str = ""

    @property
    def reason(self) -> str:
        """What differs, in a few words (``render --check`` and ``check``'s KIT001)."""
        return self.detail or {"create": "missing"}.get(self.action, self.action)


@dataclass(frozen=True)
class Plan:
    """What writing the kit would do, decided before anything is written."""

    root: Path
    files: Mapping[str, str]
    modes: Mapping[str, int]
    changes: tuple[Change, ...]
    manifest: str

    @property
    def conflicts(self) -> list[Change]:
        return [change for change in self.changes if change.action in CONFLICTS]

    @property
    def drift(self) -> list[Change]:
        """Files on disk that differ from a fresh render (for ``render --check``)."""
        return [change for change in self.changes if change.action not in {"unchanged", "orphan"}]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: Mapping[str, str]) -> str:
    content = {
        "about": "Written by flaskprod: the sha256 of each file as last rendered. A file "
        "that no longer matches was edited by hand and is not overwritten without --force.",
        "files": {path: sha256(files[path].encode()) for path in sorted(files)},
        "version": 1,
    }
    return json.dumps(content, indent=2, sort_keys=True) + "\n"


def plan_kit(root: Path, files: Mapping[str, str], modes: Mapping[str, int]) -> Plan:
    """Compare a fresh render (``files``: relative path -> text) with the disk."""
    known = read_manifest(root)
    # A file shared with the project keeps the project's lines: the kit's go in a block.
    files = {
        path: merge_block(_project_part(root, path, known), text) if path in MERGED else text
        for path, text in files.items()
    }
    changes = [
        _change(root, path, text, modes.get(path, 0o644), known) for path, text in files.items()
    ]
    for path in sorted(set(known) - set(files)):
        on_disk = root / path
        if not on_disk.is_file():
            continue
        if sha256(on_disk.read_bytes()) == known[path]:
            changes.append(Change(path, "remove", "no longer part of the kit"))
        else:
            changes.append(Change(path, "orphan", "no longer rendered, edited by hand: kept"))
    changes.sort(key=lambda change: change.path)
    return Plan(root, dict(files), dict(modes), tuple(changes), manifest_text(files))


def _project_part(root: Path, path: str, known: Mapping[str, str]) -> str | None:
    """What the project has in a shared file: None when it has no such file, or when
    the file is a whole one rendered before the kit kept its lines in a block."""
    on_disk = root / path
    if not on_disk.is_file():
        return None
    try:
        text = on_disk.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ProjectError(
            f"{path}: not UTF-8 text, so the kit cannot add its lines to it",
            hint="save it as UTF-8, then run the command again",
        ) from None
    if BEGIN not in text and known.get(path) == sha256(text.encode()):
        return None
    return text


def _change(root: Path, path: str, text: str, mode: int, known: Mapping[str, str]) -> Change:
    on_disk = root / path
    if not on_disk.exists():
        return Change(path, "create")
    if not on_disk.is_file():
        return Change(path, "foreign", "exists and is not a regular file")
    current = on_disk.read_bytes()
    if current == text.encode():
        actual = on_disk.stat().st_mode & 0o777
        if actual != mode:
            return Change(path, "update", f"mode {actual:04o}, expected {mode:04o}")
        return Change(path, "unchanged")
    if path in MERGED:  # the project's lines are all kept: nothing to refuse
        return Change(path, "update", "the project's lines kept, the kit's block updated")
    if path not in known:
        return Change(path, "foreign", "exists and was not written by flaskprod")
    if sha256(current) != known[path]:
        return Change(path, "edited", "edited by hand since the last render")
    return Change(path, "update", "differs from a fresh render")


def refuse_conflicts(plan: Plan) -> None:
    """Raise :class:`Refused` naming every file that would lose someone's edits."""
    conflicts = plan.conflicts
    if conflicts:
        listed = ", ".join(f"{change.path} ({change.detail})" for change in conflicts)
        # Edits of a rendered file belong in the spec; a file flaskprod never wrote
        # has no setting there: move it aside instead.
        ours = any(change.action == "edited" for change in conflicts)
        theirs = any(change.action == "foreign" for change in conflicts)
        ways = ["move your edits into flaskprod.toml"] if ours else []
        ways += ["move your own files aside"] if theirs else []
        raise Refused(
            f"would overwrite {len(conflicts)} file(s): {listed}",
            hint=", ".join(ways) + ", or pass --force to overwrite",
        )


def write_plan(plan: Plan, *, force: bool = False) -> list[Change]:
    """Carry out a plan; with conflicts and without ``force``, write nothing."""
    if not force:
        refuse_conflicts(plan)
    for change in plan.changes:
        if change.action == "remove":
            (plan.root / change.path).unlink()
        elif change.action not in {"unchanged", "orphan"}:
            text = plan.files[change.path]
            write_atomic(plan.root / change.path, text, plan.modes.get(change.path, 0o644))
    manifest = plan.root / MANIFEST
    if not manifest.is_file() or manifest.read_text(encoding="utf-8") != plan.manifest:
        write_atomic(manifest, plan.manifest, 0o644)
    return list(plan.changes)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text.encode())
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
