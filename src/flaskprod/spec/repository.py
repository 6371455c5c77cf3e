"""The git repository a project sits in: where GitHub reads workflows, and its name.

An app in a subfolder of its repository (flask-on-docker's ``services/web``) is named
after the repository (its ``origin`` remote, else its folder), not after the subfolder
("web"), and its CI workflow goes to the repository's root ``.github/workflows/``, the
only place GitHub runs workflows from, working in the subfolder. A repository whose root
is a Python project itself (a library with examples/) is not such a monorepo.
"""

from __future__ import annotations

import configparser
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: Files that make a repository's root a Python project of its own.
_OWN_PROJECT = ("pyproject.toml", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class Repository:
    root: Path
    name: str  # the repository's name, not yet a valid spec name (see detect._slug)


def find_repository(folder: Path) -> Repository | None:
    """The repository containing ``folder`` (a ``.git`` folder or file above it)."""
    for candidate in (folder, *folder.parents):
        git = candidate / ".git"
        if git.exists():
            return Repository(candidate, _origin_name(git) or candidate.name)
    return None


def _origin_name(git: Path) -> str | None:
    """``name`` of ``origin``'s URL (``git@github.com:org/name.git``), from .git/config."""
    if not git.is_dir():
        return None  # a worktree's .git file: the folder name will do
    config = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        config.read(git / "config", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    url = config.get('remote "origin"', "url", fallback="").strip().rstrip("/")
    name = url.rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    return name or None


def subfolder(root: Path) -> tuple[str | None, str | None]:
    """(the project's path inside its repository, the repository's name) when the
    project is in a subfolder of one; (None, None) at a repository's root or outside."""
    repository = find_repository(root)
    if repository is None or repository.root == root:
        return None, None
    if any((repository.root / name).is_file() for name in _OWN_PROJECT):
        # The repository's root is a Python project itself (a library with examples/):
        # the subfolder is an example to copy, with its own name and .github/.
        return None, None
    return root.relative_to(repository.root).as_posix(), repository.name


def head_revision(folder: Path) -> str | None:
    """The commit checked out in ``folder``'s repository (40 hex digits: what CI names
    the image it builds, GitHub's ``github.sha``), or None outside a repository or
    before its first commit."""
    if find_repository(folder) is None:
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # no git here: no revision to name
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and len(revision) == 40 else None
