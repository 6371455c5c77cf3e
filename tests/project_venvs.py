"""Real projects' own virtual environments, built once from their own requirements and
kept between test runs (keyed by the requirements' hash) under ``.tools/project-venvs``.

A project copy gets its ``.venv`` as a symlink to the cached one: flaskprod finds it
where a user's would be, and the tests never install anything into flaskprod's own
environment (nor flaskprod into the project's).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".tools" / "project-venvs"
REAL_PROJECTS = Path("/work/shared/real-projects")


def project_venv(name: str, requirements: Path) -> Path:
    """The cached venv with ``requirements`` installed (built on first use)."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    venv = CACHE / f"{name}-{digest}"
    done = venv / ".flaskprod-tests-complete"
    if done.is_file():
        return venv
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two workers building the same venv wait
        if done.is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "-r",
             str(requirements)],
            check=True, timeout=900, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        done.write_text("ok\n")
    return venv


def copy_project(name: str, destination: Path, subfolder: str = "") -> Path:
    """A copy of the real project ``name`` (its ``subfolder``) with ``.venv`` linked to
    its cached environment; returns the project's root."""
    shutil.copytree(REAL_PROJECTS / name, destination / name)
    root = destination / name / subfolder if subfolder else destination / name
    venv = project_venv(name, root / "requirements.txt")
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    return root


def pip_freeze(root: Path) -> str:
    result = subprocess.run(
        [str(root / ".venv/bin/python"), "-m", "pip", "freeze", "--all"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return result.stdout
