"""The real public Flask projects of ``/work/shared/real-projects`` (or
``$FLASKPROD_REAL_PROJECTS``), each copied for a test with its OWN virtual environment
built from its own requirements (flaskprod never goes into it).

The environments are cached between runs, keyed by the requirements' sha256, under
``$FLASKPROD_TEST_VENVS`` (default ``~/.cache/flaskprod/test-venvs``): a copy links its
``.venv`` to the cached one, which flaskprod finds as the project's interpreter.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("FLASKPROD_REAL_PROJECTS", "/work/shared/real-projects"))
VENVS = Path(
    os.environ.get("FLASKPROD_TEST_VENVS", Path.home() / ".cache" / "flaskprod" / "test-venvs")
)


def project_venv(requirements: Path) -> Path:
    """A virtual environment with ``requirements`` installed, built once per content."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    venv = VENVS / f"{requirements.parent.name}-{digest}"
    VENVS.mkdir(parents=True, exist_ok=True)
    with (VENVS / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two sessions never build the same one at once
        if (venv / ".complete").is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        python = shutil.which("python3") or sys.executable
        for argv in (
            [python, "-m", "venv", str(venv)],
            [str(venv / "bin" / "pip"), "install", "-q", "-r", str(requirements)],
        ):
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                pytest.fail(f"{' '.join(argv)}: {result.stderr.strip()[-600:]}", pytrace=False)
        (venv / ".complete").write_text(digest + "\n")
    return venv


def copy_project(name: str, target: Path, *, app_dir: str = ".", git: bool = True) -> Path:
    """``real-projects/<name>`` copied to ``target`` (a git repository with one commit when
    ``git``), with ``<app_dir>/.venv`` linked to its cached environment; returns the
    app's folder."""
    source = SOURCE / name
    if not source.is_dir():
        pytest.fail(f"{source}: the real projects are missing", pytrace=False)
    shutil.copytree(source, target)
    app = target / app_dir
    (app / ".venv").symlink_to(project_venv(app / "requirements.txt"))
    if git:
        (target / ".gitignore").open("a").write("\n.venv\n")
        for argv in (
            ["git", "init", "-q"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "as published"],
        ):
            subprocess.run(argv, cwd=target, check=True, capture_output=True)
    return app
