"""Results of ``check``'s slow steps kept between runs, in the project's state folder.

Importing the app (a subprocess that loads Flask and the project) and re-rendering the
kit for KIT001 are most of what ``check`` costs, and both are pure functions of the
project's files and a few inputs. Each is stored under ``.flaskprod/check-cache/`` with
a key: a digest of the project's files by CONTENT (a ``git checkout`` keeps mtimes
honest but an editor's save-in-place may not), of flaskprod itself (its files' sizes
and mtimes: a new flaskprod, or an edited one in a checkout), and of the step's own
inputs (the environment, the interpreter, the target). Anything that differs is a
miss; a miss or an unwritable folder costs nothing but the work itself.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flaskprod

#: The project's state folder (flaskprod.stack.state.STATE_DIRNAME, whose module pulls
#: in the process machinery: not imported on check's path).
STATE_DIRNAME = ".flaskprod"

#: Folders whose files are not the project's: VCS data, virtualenvs, caches, state.
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        STATE_DIRNAME,
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        "site-packages",
    }
)
#: Files above this size enter the digest by size and mtime (media, dumps): reading a
#: few large files each run would cost more than the step the cache saves.
_READ_LIMIT = 1 << 20
#: A tree this large is not digested at all (no cache): a home folder checked by mistake.
_MAX_FILES = 20_000
CACHE_DIRNAME = "check-cache"


def _walk(root: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            path = Path(folder, name)
            found.append((path.relative_to(root).as_posix(), path))
            if len(found) > _MAX_FILES:
                raise OverflowError(root)
    return found


def project_digest(root: Path) -> str | None:
    """A digest of the project's files (path and content); None when it is too large."""
    digest = hashlib.sha256()
    try:
        files = _walk(root)
    except OverflowError:
        return None
    for relative, path in files:
        try:
            stat = path.stat()
            if stat.st_size > _READ_LIMIT:
                data = f"{stat.st_size}:{stat.st_mtime_ns}".encode()
            else:
                data = path.read_bytes()
        except OSError:
            data = b"?"  # a dangling link or an unreadable file: its name still counts
        digest.update(relative.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


@functools.cache  # flaskprod's code does not change under a running flaskprod
def _flaskprod_digest() -> str:
    """flaskprod's own code, by size and mtime (a wheel's never change; a checkout's do)."""
    package = Path(flaskprod.__file__).parent
    digest = hashlib.sha256(flaskprod.__version__.encode())
    for relative, path in _walk(package):
        stat = path.stat()
        digest.update(f"{relative}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def context_digest(cache: dict[str, Any], root: Path) -> str | None:
    """:func:`project_digest` once per check run (kept in the run's ``Context.cache``)."""
    name = f"project-digest:{root}"
    if name not in cache:
        cache[name] = project_digest(root)
    digest: str | None = cache[name]
    return digest


def memo_key(project: str, *inputs: Any) -> str:
    """The key of one step: the project's digest, flaskprod's, and the step's inputs."""
    text = json.dumps([project, _flaskprod_digest(), *inputs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def stored_key(root: Path, step: str) -> str | None:
    """The key ``step``'s kept result was stored under in ``root``'s state folder."""
    with contextlib.suppress(OSError, ValueError):
        path = root / STATE_DIRNAME / CACHE_DIRNAME / f"{step}.json"
        stored = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(stored, dict) and isinstance(stored.get("key"), str):
            return str(stored["key"])
    return None


def recall(root: Path, step: str, key: str | None) -> Any:
    """``step``'s result kept in ``root``'s state folder under ``key``; None if none."""
    if key is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        path = root / STATE_DIRNAME / CACHE_DIRNAME / f"{step}.json"
        stored = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(stored, dict) and stored.get("key") == key:
            return stored["value"]
    return None


def remembered(root: Path, step: str, key: str | None, compute: Callable[[], Any]) -> Any:
    """``compute()``'s JSON-able result, from ``root``'s state folder when ``key`` is the
    one stored for ``step``; else computed and stored (when the folder is writable).
    ``compute`` returns None for a result not worth keeping (a timeout)."""
    if key is None:
        return compute()
    kept = recall(root, step, key)
    if kept is not None:
        return kept
    folder = root / STATE_DIRNAME / CACHE_DIRNAME
    path = folder / f"{step}.json"
    value = compute()
    if value is None:
        return None
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():  # as .pytest_cache does: git never shows the cache
            ignore.write_text("# written by flaskprod check: a cache, never committed\n*\n")
        # Written whole, then renamed: a concurrent run reads the old entry or the new.
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{step}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"key": key, "value": value}, out)
            Path(temporary).replace(path)
        finally:
            Path(temporary).unlink(missing_ok=True)
    return value
