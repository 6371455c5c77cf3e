"""Find a project's deployment files wherever a real project keeps them.

Discovery walks the tree once (skipping virtualenvs, VCS and build folders, and
bounded in the number of files so a check never wanders through a huge monorepo) and
sorts what it finds into :data:`FILE_KINDS`. It reads file contents only where the
name is not enough (``*.conf``: is it an nginx config?). ``check`` judges these files;
``init`` reads the launchers among them for the app server a project runs.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

#: The kinds of file discovery sorts a project into (check's ``Context.files`` keys).
FILE_KINDS = (
    "nginx",  # nginx.conf, *.conf with server/location blocks, sites-available/*
    "gunicorn",  # gunicorn.conf.py / gunicorn_config.py
    "procfile",
    "systemd",  # *.service, *.timer, *.socket
    "supervisor",  # supervisord program configs: [program:x] command=...
    "dockerfile",  # Dockerfile, Dockerfile.*, *.Dockerfile
    "dockerignore",
    "compose",  # docker-compose*.yml, compose*.yaml
    "requirements",  # requirements*.txt, requirements/*.txt
    "pyproject",
    "lock",  # poetry.lock, uv.lock, Pipfile.lock, requirements*.lock / compiled files
    "env",  # .env, .env.*, *.env
    "gitignore",
)

#: Folders never worth looking into.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        ".env",  # a folder named .env is a virtualenv, not an env file
        "node_modules",
        "__pycache__",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "build",
        "dist",
        "site-packages",
        ".eggs",
        ".flaskprod",
        "htmlcov",
        "test-artifacts",
    }
)
#: At most this many files are looked at; beyond that discovery stops (and says so).
MAX_FILES = 5000
#: ``*.conf`` files larger than this are not opened to sniff for nginx blocks.
_SNIFF_BYTES = 64 * 1024
_NGINX_BLOCK = re.compile(r"^\s*(server|location|upstream|http)\b[^;{]*\{", re.MULTILINE)
#: Files that may show an nginx block without being one (a how-to, a script).
_PROSE = (".py", ".md", ".txt", ".rst", ".sh", ".j2", ".html")
_NGINX_NAMED = re.compile(r"\.(conf|nginx|vhost)$|nginx")
_NGINX_DIRS = frozenset({"sites-available", "sites-enabled", "nginx", "conf.d"})
_SUPERVISOR_DIRS = frozenset({"supervisor", "supervisord", "supervisor.d", "conf.d"})
_SUPERVISOR_PROGRAM = re.compile(r"^\s*\[program:[^\]]+\]", re.MULTILINE)
_LOCK_NAMES = frozenset({"poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock", "pylock.toml"})


def _kind(path: Path, parents: tuple[str, ...]) -> str | None:
    """The kind of one file from its name (and for ``*.conf``, its contents)."""
    name = path.name
    lower = name.lower()
    if lower == "procfile":
        return "procfile"
    if name == ".dockerignore" or lower.endswith(".dockerignore"):
        return "dockerignore"
    if name == ".gitignore":
        return "gitignore"
    if lower.startswith("dockerfile") or lower.endswith(".dockerfile"):
        return "dockerfile"
    if fnmatch.fnmatch(lower, "docker-compose*.y*ml") or fnmatch.fnmatch(lower, "compose*.y*ml"):
        return "compose"
    if lower.endswith((".service", ".timer", ".socket")):
        return "systemd"
    if name == "pyproject.toml":
        return "pyproject"
    if name in _LOCK_NAMES or fnmatch.fnmatch(lower, "requirements*.lock"):
        return "lock"
    if lower.endswith(".txt") and ("requirements" in lower or "requirements" in parents):
        return "requirements"
    if lower.endswith(".in") and ("requirements" in lower or "requirements" in parents):
        return "requirements"
    if name.startswith(".env") or lower.endswith(".env"):
        return "env"
    if lower.endswith(".py") and (
        lower in {"gunicorn.conf.py", "gunicorn_config.py"} or lower.startswith("gunicorn")
    ):
        return "gunicorn"
    if (
        lower.endswith((".conf", ".ini"))
        and (_SUPERVISOR_DIRS.intersection(parents) or "supervisor" in lower)
        and _sniff(path, _SUPERVISOR_PROGRAM)
    ):
        return "supervisor"
    if lower == "nginx.conf" or (_NGINX_DIRS.intersection(parents) and not lower.endswith(_PROSE)):
        return "nginx"
    if _NGINX_NAMED.search(lower) and not lower.endswith(_PROSE) and _sniff_nginx(path):
        # Sites are also saved as flaskapp.nginx, nginx-site, app.vhost: the name
        # says "maybe", the server/location block confirms.
        return "nginx"
    return None


def _sniff_nginx(path: Path) -> bool:
    return _sniff(path, _NGINX_BLOCK)


def _sniff(path: Path, pattern: re.Pattern[str]) -> bool:
    """The first 64 KiB of ``path`` match ``pattern``."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return False
    return bool(pattern.search(head))


def discover(root: Path, *, extra_dirs: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    """Files of ``root`` by kind (absolute paths, sorted). ``extra_dirs`` are folders
    (relative to root) walked even when they are named like skipped ones."""
    found: dict[str, list[Path]] = {kind: [] for kind in FILE_KINDS}
    seen = 0
    root = root.resolve()
    forced = {(root / extra).resolve() for extra in extra_dirs}
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        # Prune in place so os.walk never descends into skipped folders.
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS or (here / d).resolve() in forced
        )
        relative_parts = here.relative_to(root).parts
        parents = tuple(part.lower() for part in relative_parts)
        for filename in sorted(filenames):
            seen += 1
            if seen > MAX_FILES:
                return _sorted(found)
            path = here / filename
            if not path.is_file():  # broken symlinks, sockets
                continue
            kind = _kind(path, parents)
            if kind is not None:
                found[kind].append(path)
    return _sorted(found)


def _sorted(found: dict[str, list[Path]]) -> dict[str, list[Path]]:
    return {kind: sorted(paths) for kind, paths in found.items()}


#: Folders that hold no production code or config (tests, migrations' generated code).
NOT_SOURCE_DIRS = frozenset({"tests", "test", "migrations", "docs", "node_modules", "static"})


def source_files(root: Path, suffixes: tuple[str, ...], *, limit: int = 1000) -> list[Path]:
    """Files of the project with these suffixes, outside skipped, test, docs and
    migration folders (pruned, so a big tree is not read), sorted; at most ``limit``."""
    found: list[Path] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS and d not in NOT_SOURCE_DIRS and not d.startswith(".")
        )
        for filename in sorted(filenames):
            if filename.lower().endswith(suffixes):
                found.append(Path(directory) / filename)
                if len(found) >= limit:
                    return sorted(found)
    return sorted(found)
