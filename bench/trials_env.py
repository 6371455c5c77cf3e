"""A trial's copy of a project and the project's OWN virtual environment.

The shared real projects are copied by ``tests/real_projects.copy_project`` (the test
suite's copy and cached venv); a project given by path is copied the same way here: a
git repository with one commit (``.venv`` excluded through ``.git/info/exclude``, not an
edit), ``.venv`` in the app's folder linked to an environment built from the project's
own requirements, cached by their hash in the suite's cache, outside the repository.
Both live in a fresh folder other users can traverse (nginx workers and PostgreSQL do
not run as root). flaskprod is never installed into a project's environment.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # real_projects lives with the tests (not a package)

import real_projects  # noqa: E402

SOURCE = real_projects.REAL_PROJECTS
VENVS = real_projects._venv_cache()  # the suite's cache: one place for every project venv

#: Building an environment (pip from a warm cache; CTFd's takes the longest).
VENV_TIMEOUT = 900.0
_IGNORED = shutil.ignore_patterns(".venv", "venv", ".flaskprod", "__pycache__", "*.pyc", ".git")


class TrialSetupError(RuntimeError):
    """The copy or its environment could not be made (the step's one-line reason)."""


@dataclasses.dataclass(frozen=True)
class Requirements:
    """What the project declares it needs: the file hashed for the cache, and the
    arguments ``pip install`` takes for it."""

    file: Path
    pip_args: tuple[str, ...]
    requires_python: str | None
    #: Lines a user adds because flaskprod said so (an app server, a driver), installed too.
    added: tuple[str, ...] = ()


def find_requirements(app: Path) -> Requirements:
    """``requirements.txt`` when there is one, else ``pyproject.toml``'s
    ``[project].dependencies`` (the dependencies only: a user runs the app from its
    folder; the cached environment is shared by every copy)."""
    pyproject = app / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text()) if pyproject.is_file() else {}
    project = data.get("project", {})
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {})
    requires_python = project.get("requires-python") or _poetry_python(poetry.get("python"))
    requirements = app / "requirements.txt"
    if requirements.is_file():
        return Requirements(requirements, ("-r", str(requirements)), requires_python)
    dependencies = project.get("dependencies")
    if isinstance(dependencies, list):
        return Requirements(pyproject, tuple(str(d) for d in dependencies), requires_python)
    raise TrialSetupError(f"{app}: no requirements.txt and no [project].dependencies")


def _poetry_python(constraint: object) -> str | None:
    """Poetry's ``python = "^3.12"`` / ``"~3.11"`` as a PEP 440 specifier."""
    if not isinstance(constraint, str):
        return None
    parts = []
    for item in constraint.split(","):
        item = item.strip()
        caret = re.fullmatch(r"\^(\d+)\.(\d+)(?:\.\d+)?", item)
        tilde = re.fullmatch(r"~(\d+)\.(\d+)(?:\.\d+)?", item)
        if caret:
            parts += [f">={item[1:]}", f"<{int(caret[1]) + 1}"]
        elif tilde:
            parts += [f">={item[1:]}", f"<{tilde[1]}.{int(tilde[2]) + 1}"]
        elif item and item != "*":
            parts.append(item)
    return ",".join(dict.fromkeys(parts)) or None


def python_fits(requires_python: str | None) -> str | None:
    """Why this machine's ``python3`` does not satisfy ``requires-python``, or None."""
    if not requires_python:
        return None
    from packaging.specifiers import SpecifierSet

    version = ".".join(str(part) for part in sys.version_info[:3])
    if version in SpecifierSet(requires_python):
        return None
    return f"requires-python {requires_python}; this machine's Python is {version}"


def project_venv(requirements: Requirements) -> Path:
    """The cached environment for ``requirements`` (named and locked exactly as
    ``tests/real_projects.project_venv`` does for a requirements.txt, so both share it)."""
    content = requirements.file.read_bytes()
    if requirements.added:
        content += b"\n# added\n" + "\n".join(requirements.added).encode()
    digest = hashlib.sha256(content).hexdigest()[:16]
    stem = requirements.file.parent.name
    if requirements.file.name != "requirements.txt":
        stem += "-pyproject"
    if requirements.added:
        stem += "-added"
    venv = VENVS / f"{stem}-{digest}"
    VENVS.mkdir(parents=True, exist_ok=True)
    with (VENVS / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        python = shutil.which("python3") or sys.executable
        for argv in (
            [python, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                *requirements.pip_args,
                *requirements.added,
            ],
        ):
            try:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=VENV_TIMEOUT, check=False
                )
            except subprocess.TimeoutExpired as exc:
                raise TrialSetupError(
                    f"{' '.join(argv[:4])}: no end in {exc.timeout:.0f}s"
                ) from exc
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise TrialSetupError(f"{' '.join(argv[:4])}: {_first_error(done.stderr)}")
        (venv / ".complete").write_text(digest + "\n")
    return venv


def _first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:  # pip's own cause ("ERROR: ...", a failed step's mark, git's "fatal:")
        if re.match("(ERROR:|fatal:|\u00d7)", line):
            return line
    for line in lines:
        if re.search(r"\berror\b", line, re.IGNORECASE) and not line.startswith("WARNING"):
            return line
    return lines[-1] if lines else "(no output)"


def resolve_source(project: str) -> Path:
    """A name of the shared projects, or a path."""
    path = Path(project).expanduser()
    if path.is_dir():
        return path.resolve()
    shared = SOURCE / project
    if shared.is_dir():
        return shared
    raise TrialSetupError(f"{project}: neither a folder nor one of {SOURCE}'s projects")


def trial_folder() -> Path:
    """A new temporary folder nginx workers (nobody) and postgres can traverse."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-trial-"))
    base.chmod(0o755)
    return base


def shared_copy(name: str, base: Path) -> tuple[Path, Path]:
    """One of the shared projects, as the test suite copies it (its venv linked)."""
    app = real_projects.copy_project(name, base)
    return base / name, app


def fresh_copy(source: Path, app_dir: str, base: Path) -> tuple[Path, Path]:
    """``source`` copied into ``base``, committed to a new git repository (as
    published); returns (the copy's root, the app's folder in it)."""
    root = base / source.name
    shutil.copytree(source, root, ignore=_IGNORED, symlinks=True)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)  # a read-only source stays copyable
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "as published"],
    ):
        subprocess.run(argv, cwd=root, check=True, capture_output=True, timeout=120)
    (root / ".git" / "info" / "exclude").write_text(".venv\n")  # git ignores it, no edit
    return root, root / app_dir


def link_venv(app: Path, added: tuple[str, ...] = ()) -> tuple[Path, str | None]:
    """``app/.venv`` linked to the project's cached environment (with the ``added``
    requirement lines; a link already there is kept when nothing is added); returns it
    and the reason the machine's Python does not fit the project, if it does not."""
    requirements = dataclasses.replace(find_requirements(app), added=added)
    link = app / ".venv"
    if link.is_symlink() and not added:
        return link.resolve(), python_fits(requirements.requires_python)
    venv = project_venv(requirements)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(venv, target_is_directory=True)
    return venv, python_fits(requirements.requires_python)
