"""flaskprod itself as a wheel for a server, and the versions it runs with here.

While flaskprod is not on the package index, a server gets it as a wheel built from
the source it runs from (for an app that imports ``flaskprod.Production``, and for the
host checks). The wheel is cached by the content of that source, so a deploy builds it
once per change.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import flaskprod
from flaskprod.errors import EnvironmentProblem


def source_root() -> Path | None:
    """The source checkout flaskprod runs from (editable install), None for an
    installed distribution."""
    root = Path(flaskprod.__file__).resolve().parents[2]
    return (
        root if (root / "pyproject.toml").is_file() and (root / "src/flaskprod").is_dir() else None
    )


def _source_digest(root: Path) -> str:
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", *sorted((root / "src").rglob("*"))]
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def flaskprod_wheel(cache: Path) -> Path:
    """A wheel of the flaskprod that runs here, built once per source change."""
    root = source_root()
    if root is None:
        raise EnvironmentProblem(
            "flaskprod is installed without its source: cannot build a wheel for the server",
            hint="install flaskprod from its repository (pip install -e .) to deploy it",
        )
    folder = cache / f"flaskprod-wheel-{_source_digest(root)}"
    wheels = sorted(folder.glob("flaskprod-*.whl"))
    if wheels:
        return wheels[0]
    # pip builds in the source tree (its build/ folder): two deploys or test workers
    # building at once fail there, so builds of one source take turns, under a lock on
    # its pyproject.toml (opened to read; nothing is written into the tree for it).
    with (root / "pyproject.toml").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wheels = sorted(folder.glob("flaskprod-*.whl"))
        if wheels:  # built by whoever held the lock before
            return wheels[0]
        return _build(root, folder)


def _build(root: Path, folder: Path) -> Path:
    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)  # left by a build cut short
    building.mkdir(parents=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(building),
            str(root),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    built = sorted(building.glob("flaskprod-*.whl"))
    if result.returncode != 0 or not built:
        raise EnvironmentProblem(
            f"building flaskprod's wheel failed: {result.stderr.strip()[-300:]}"
        )
    building.rename(folder)
    return folder / built[0].name


def installed_versions() -> str:
    """``name==version`` of every distribution in this environment: the constraints a
    server installs flaskprod's dependencies with, so it runs what was tested here."""
    pins = {
        (dist.metadata["Name"] or "").lower(): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] and dist.metadata["Name"].lower() != "flaskprod"
    }
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
