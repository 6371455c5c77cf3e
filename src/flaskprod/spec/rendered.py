"""What a previous render left in the project: the kit's manifest, read by the kit
(to write safely), by detection (the kit's own files are not the project's) and by
check (which files belong to the kit's deployment)."""

from __future__ import annotations

import json
from pathlib import Path

#: The sha256 of every file as last rendered; written by :mod:`flaskprod.kit.write`.
MANIFEST = "deploy/.flaskprod.lock.json"


def read_manifest(root: Path) -> dict[str, str]:
    """Path -> sha256 of the last render; empty when there is none (or it is damaged,
    in which case every existing file counts as not ours: the safe side)."""
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        files = data["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {str(path): str(digest) for path, digest in files.items()}


def rendered_files(root: Path) -> set[Path]:
    """The files the kit rendered into ``root`` last time (absolute paths)."""
    return {root / path for path in read_manifest(root)}
