"""Real public Flask projects for tests: a fresh copy, with the project's own virtualenv.

``copy_project("microblog", tmp_path)`` copies ``/work/shared/real-projects/microblog``
(never edited in place; ``$FLASKPROD_REAL_PROJECTS`` names another folder) to
``tmp_path/microblog``, makes it a git repository with every file committed (as the
published repository is), and links ``.venv`` — in the folder of the project's
requirements, where a user's would be — to a virtualenv built from the project's OWN
requirements (flaskprod is never installed into it). The virtualenvs are cached outside
the repository, keyed by the hash of what they install, under
``/var/cache/flaskprod-tests/venvs/<name>-<hash>`` (``$FLASKPROD_TEST_VENVS`` overrides
it; ``~/.cache/flaskprod-tests/venvs`` where /var/cache is not writable): built once
(about 20 s), reused by every later run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path


def _real_projects() -> Path:
    """``$FLASKPROD_REAL_PROJECTS``, else the shared folder beside this checkout (as CI
    lays it), else the workplace's."""
    given = os.environ.get("FLASKPROD_REAL_PROJECTS")
    if given:
        return Path(given)
    beside = Path(__file__).resolve().parents[2] / "shared" / "real-projects"
    return beside if beside.is_dir() else Path("/work/shared/real-projects")


REAL_PROJECTS = _real_projects()
#: Projects the shared folder does not hold, kept here as a snapshot of their published
#: repository (tests/data/real-projects/README.md says what was left out and why).
SNAPSHOTS = {"CTFd": Path(__file__).resolve().parent / "data/real-projects/CTFd-91ced62d.tar.gz"}
#: Written last into a cached venv: a venv without it was cut short and is rebuilt.
_COMPLETE = ".flaskprod-complete"
#: What each project installs: a requirements file of its own (relative path); its
#: folder is where the project's code runs and its .venv goes.
REQUIREMENTS = {
    "microblog": "requirements.txt",
    "flask-on-docker": "services/web/requirements.txt",
    "flaskr": "pyproject.toml",  # [project] dependencies
    "CTFd": "requirements.txt",  # pymysql: runs on MariaDB
}


def _venv_cache() -> Path:
    given = os.environ.get("FLASKPROD_TEST_VENVS")
    if given:
        return Path(given)
    system = Path("/var/cache/flaskprod-tests/venvs")
    try:
        system.mkdir(parents=True, exist_ok=True)
    except OSError:
        return Path.home() / ".cache" / "flaskprod-tests" / "venvs"
    return system if os.access(system, os.W_OK) else Path.home() / ".cache/flaskprod-tests/venvs"


def project_source(name: str) -> Path:
    """The published project ``name``: its folder in the shared real projects, or its
    snapshot unpacked once (keyed by the snapshot's content) into the tests' cache."""
    snapshot = SNAPSHOTS.get(name)
    if snapshot is None:
        return REAL_PROJECTS / name
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()[:16]
    cache = _venv_cache().parent / "projects"
    folder = cache / f"{name}-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / _COMPLETE).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            with tarfile.open(snapshot) as archive:
                archive.extractall(folder, filter="data")
            (folder / _COMPLETE).write_text(digest + "\n")
    return folder


def requirement_lines(name: str) -> list[str]:
    """The project's own requirements, as pip arguments (from its requirements file, or
    its pyproject's [project] dependencies)."""
    source = project_source(name) / REQUIREMENTS[name]
    if source.name == "pyproject.toml":
        project = tomllib.loads(source.read_text(encoding="utf-8"))["project"]
        return [str(item) for item in project.get("dependencies", [])]
    lines = source.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def cached_venv(name: str) -> Path:
    """The project's virtualenv, built once per content of its requirements."""
    return venv_with(name, requirement_lines(name))


def venv_with(name: str, requirements: list[str]) -> Path:
    """A virtualenv named ``name`` holding ``requirements`` (pip lines), built once per
    their content (an old Flask, as a real project pins it, for a small test app)."""
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:16]
    cache = _venv_cache()
    venv = cache / f"{name}-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time, across test processes
        if not (venv / _COMPLETE).is_file():
            shutil.rmtree(venv, ignore_errors=True)
            _build(venv, requirements)
            (venv / _COMPLETE).write_text("\n".join(requirements) + "\n")
    return venv


def _build(venv: Path, requirements: list[str]) -> None:
    # venv builds on the base interpreter, even when run from flaskprod's own venv
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    listed = venv / "requirements.txt"
    listed.write_text("\n".join(requirements) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    result = subprocess.run(
        [*pip, "--disable-pip-version-check", "-r", str(listed)],
        timeout=900,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install into {venv} failed: {result.stderr.strip()[-600:]}")


def app_folder(name: str) -> str:
    """Where the project's code runs, relative to its copy ("services/web")."""
    parent = Path(REQUIREMENTS[name]).parent.as_posix()
    return "" if parent == "." else parent


def copy_project(name: str, destination: Path) -> Path:
    """A writable, git-committed copy of real project ``name`` at
    ``destination/name``, with ``.venv`` linked to its cached virtualenv in the folder
    its code runs from; returns that folder (the copy's root, or services/web)."""
    target = destination / name
    shutil.copytree(project_source(name), target, ignore=shutil.ignore_patterns(_COMPLETE))
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)  # the shared copies are read-only
    git = ["git", "-C", str(target), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "as published"], check=True)
    # .venv is the tests' link, not the project's: git ignores it without an edit
    (target / ".git" / "info" / "exclude").write_text(".venv\n")
    app = target / app_folder(name)
    (app / ".venv").symlink_to(cached_venv(name), target_is_directory=True)
    return app


def pip_freeze(app: Path) -> str:
    """What the project's own environment has installed, exactly."""
    result = subprocess.run(
        [str(app / ".venv/bin/python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout
