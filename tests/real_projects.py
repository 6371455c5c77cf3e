"""Real public Flask projects for tests: a fresh copy, with the project's own virtualenv.

``project_copy("microblog", tmp_path)`` copies ``/work/shared/real-projects/microblog``
(never edited in place) into ``tmp_path``, makes it a git repository with every file
committed (as the published repository is), and links ``.venv`` to a virtualenv built
from the project's OWN requirements (flaskprod is never installed into it). The
virtualenvs are cached outside the repository, keyed by the hash of what they install,
under ``/var/cache/flaskprod-tests/venvs/<name>-<hash>`` (``FLASKPROD_TEST_VENVS``
overrides the folder; ``~/.cache/flaskprod-tests/venvs`` when it is not writable): built
once (about 20 s), reused by every later run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REAL_PROJECTS = Path(os.environ.get("FLASKPROD_REAL_PROJECTS", "/work/shared/real-projects"))
VENV_CACHE = Path(os.environ.get("FLASKPROD_TEST_VENVS", "/var/cache/flaskprod-tests/venvs"))
#: Where the venvs go when /var/cache is not writable here (an ordinary user's CI).
_USER_CACHE = Path.home() / ".cache" / "flaskprod-tests" / "venvs"
#: Written last into a cached venv: a venv without it was cut short and is rebuilt.
_COMPLETE = ".flaskprod-complete"
#: What each project installs: a requirements file of its own (relative path).
REQUIREMENTS = {
    "microblog": "requirements.txt",
    "flask-on-docker": "services/web/requirements.txt",
    "flaskr": "pyproject.toml",  # [project] dependencies
}


def requirement_lines(name: str) -> list[str]:
    """The project's own requirements, as pip arguments (from its requirements file, or
    its pyproject's [project] dependencies)."""
    source = REAL_PROJECTS / name / REQUIREMENTS[name]
    if source.name == "pyproject.toml":
        project = tomllib.loads(source.read_text(encoding="utf-8"))["project"]
        return [str(item) for item in project.get("dependencies", [])]
    lines = source.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def cached_venv(name: str) -> Path:
    """The project's virtualenv, built once per content of its requirements."""
    requirements = requirement_lines(name)
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    cache = _writable_cache()
    venv = cache / f"{name}-{digest}"
    with (cache / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time, across test processes
        if not (venv / _COMPLETE).is_file():
            shutil.rmtree(venv, ignore_errors=True)
            _build(venv, requirements)
            (venv / _COMPLETE).write_text("\n".join(requirements) + "\n")
    return venv


def _writable_cache() -> Path:
    for folder in (VENV_CACHE, _USER_CACHE):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except PermissionError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise PermissionError(f"no writable folder for the test venvs ({VENV_CACHE}, {_USER_CACHE})")


def _build(venv: Path, requirements: list[str]) -> None:
    # venv builds on the base interpreter, even when run from flaskprod's own venv
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    listed = venv / "requirements.txt"
    listed.write_text("\n".join(requirements) + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(listed)],
        check=True,
        timeout=600,
        capture_output=True,
    )


def project_copy(name: str, tmp_path: Path) -> Path:
    """A writable, git-committed copy of real project ``name`` with ``.venv`` linked to
    its cached virtualenv."""
    target = tmp_path / name
    shutil.copytree(REAL_PROJECTS / name, target)
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)  # the shared copies are read-only
    git = ["git", "-C", str(target), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "as published"], check=True)
    (target / ".venv").symlink_to(cached_venv(name), target_is_directory=True)
    return target
