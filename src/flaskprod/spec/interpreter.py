"""The project's own Python: the interpreter that has the app's dependencies.

flaskprod lives in its own environment (pipx, ``uv tool``) and never installs into the
project's; it *drives* the project's interpreter to import the app (``init``,
``check``) and to run it (``up``: migrations, release commands, the app server). This
module is the one place that decides which interpreter that is, in this order:

1. ``--python PATH`` (an interpreter, or a virtual environment's folder);
2. ``$VIRTUAL_ENV``, unless it is flaskprod's own environment (an activated shell);
3. ``.venv``, ``venv`` or ``env`` in the project;
4. flaskprod's own interpreter, with a note (a project with no environment of its
   own, such as the reference shop run from flaskprod's development venv).

The choice is validated by running it: a missing path, a broken virtual environment
(its ``python`` links to an interpreter that is gone) or something that is not Python
3.8+ is one line and exit 3, naming the path and the fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from flaskprod.errors import EnvironmentProblem

#: Virtual environment folders looked for in the project, in this order.
VENV_DIRS = (".venv", "venv", "env")
MINIMUM = (3, 8)
_VERSION_CODE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
_FIND_CODE = (
    "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)"
)


@dataclass(frozen=True)
class ProjectPython:
    """A validated interpreter and where it came from."""

    executable: Path  # as found (not resolved: a venv's python must keep its venv)
    version: tuple[int, int, int]
    #: "--python", "VIRTUAL_ENV", ".venv"/"venv"/"env", or "flaskprod" (the fallback).
    source: str

    @property
    def own(self) -> bool:
        """flaskprod's own interpreter (no environment of the project's was found)."""
        return self.source == "flaskprod"

    @property
    def bin_dir(self) -> Path:
        return self.executable.parent

    @property
    def environment(self) -> Path:
        """The virtual environment's folder (bin/..), for messages."""
        return self.bin_dir.parent

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def script(self, name: str) -> Path | None:
        """An executable the environment installed (``gunicorn``, ``granian``)."""
        path = self.bin_dir / name
        return path if path.is_file() and os.access(path, os.X_OK) else None

    def has_module(self, name: str) -> bool:
        """Whether ``name`` is importable by this interpreter (found, not imported)."""
        result = subprocess.run(
            [str(self.executable), "-c", _FIND_CODE, name],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        return result.returncode == 0

    def describe(self) -> str:
        """One line for the command's output."""
        if self.own:
            return (
                f"python: {self.executable} ({self.version_text}, flaskprod's own: the "
                "project has no virtual environment; pass --python PATH to use another)"
            )
        return f"python: {self.executable} ({self.version_text}, from {self.source})"


def resolve_python(
    root: Path,
    given: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProjectPython:
    """The project's interpreter for ``root`` (see the module's docstring for the order)."""
    environ = os.environ if environ is None else environ
    if given:
        return validate(_interpreter_of(Path(given), "--python"), "--python")
    active = environ.get("VIRTUAL_ENV", "").strip()
    if active and not _is_own(Path(active)):
        return validate(_interpreter_of(Path(active), "VIRTUAL_ENV"), "VIRTUAL_ENV")
    for name in VENV_DIRS:
        folder = root / name
        python = folder / "bin" / "python"
        # `env` may be a folder of settings: a venv has pyvenv.cfg or bin/python.
        if (folder / "pyvenv.cfg").is_file() or python.is_symlink() or python.exists():
            return validate(python, name, shown=f"{name}/bin/python")
    return validate(Path(sys.executable), "flaskprod")


def is_flaskprods_own(python: Path) -> bool:
    """Whether ``python`` is the interpreter of flaskprod's own environment."""
    return _is_own(python.parent.parent)


def _is_own(folder: Path) -> bool:
    """Whether ``folder`` is the environment flaskprod runs from."""
    try:
        return folder.resolve() == Path(sys.prefix).resolve()
    except OSError:
        return False


def _interpreter_of(path: Path, origin: str) -> Path:
    """``path`` itself, or ``path/bin/python`` for a virtual environment's folder."""
    if path.is_dir():
        python = path / "bin" / "python"
        if not (python.exists() or python.is_symlink()):
            raise EnvironmentProblem(
                f"{origin} {path}: a folder without bin/python, not a virtual environment",
                hint="pass the interpreter (e.g. .venv/bin/python) or the venv's folder",
            )
        return python
    return path


def validate(python: Path, source: str, *, shown: str | None = None) -> ProjectPython:
    """Run ``python`` once: it must start and be Python >= 3.8. ``shown``: the path as
    the message names it (relative to the project for the project's own venv)."""
    if source in VENV_DIRS:
        where = f"the project's Python {shown or python}"
    else:
        where = f"{source} {python}"
    venv = Path(shown).parent.parent if shown else python.parent.parent
    if source in VENV_DIRS:
        fix = (
            f"recreate it: python3 -m venv --clear {venv} && {venv}/bin/pip install -r "
            "requirements.txt, or pass --python PATH"
        )
    else:
        fix = "pass the project's interpreter, e.g. --python .venv/bin/python"
    if python.is_symlink() and not python.exists():
        raise EnvironmentProblem(
            f"{where}: broken virtual environment: python links to "
            f"{python.readlink()}, which does not exist",
            hint=fix,
        )
    if not python.exists():
        raise EnvironmentProblem(f"{where}: no such file", hint=fix)
    try:
        result = subprocess.run(
            [str(python), "-c", _VERSION_CODE],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError as error:
        raise EnvironmentProblem(f"{where}: cannot be run: {error.strerror}", hint=fix) from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{where}: did not answer within 30 s", hint=fix) from None
    version = _parse_version(result.stdout) if result.returncode == 0 else None
    if version is None:
        said = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise EnvironmentProblem(
            f"{where}: not a working Python interpreter ({said[:200]})", hint=fix
        )
    if version[:2] < MINIMUM:
        raise EnvironmentProblem(
            f"{where}: Python {'.'.join(map(str, version))} is too old "
            f"(flaskprod drives Python >= {'.'.join(map(str, MINIMUM))})",
            hint="create the project's venv with a newer Python",
        )
    return ProjectPython(python, version, source)


def _parse_version(text: str) -> tuple[int, int, int] | None:
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def requires_python(root: Path) -> str | None:
    """pyproject.toml's ``requires-python`` (what pip enforces), else poetry's own
    ``python = "^3.12"`` as a PEP 440 specifier, or None."""
    pyproject = root / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    requires = data.get("project", {}).get("requires-python")
    if isinstance(requires, str):
        return requires
    poetry = data.get("tool", {}).get("poetry", {}).get("dependencies", {})
    python = poetry.get("python") if isinstance(poetry, dict) else None
    return poetry_python(python) if isinstance(python, str) else None


def poetry_python(constraint: str) -> str | None:
    """Poetry's ``^3.12,<4`` / ``~3.12`` / ``>=3.10`` as PEP 440 (``>=3.12,<4``); None
    when a part is not understood (then nothing is enforced here)."""
    parts: list[str] = []
    for item in (part.strip() for part in constraint.split(",")):
        if item in ("", "*"):
            continue
        if item[0] in "^~" and not item.startswith("~="):
            version = item[1:].strip()
            numbers = version.split(".")
            if not all(number.isdigit() for number in numbers):
                return None
            major = int(numbers[0])
            if item[0] == "^" or len(numbers) == 1:  # ^3.12: <4; ~3: <4
                upper = f"{major + 1}"
            else:  # ~3.12: <3.13
                upper = f"{major}.{int(numbers[1]) + 1}"
            parts += [f">={version}", f"<{upper}"]
        else:
            parts.append(item)
    return ",".join(dict.fromkeys(parts)) or None  # ^3.12,<4: one <4


def require_supported(python: ProjectPython, root: Path) -> None:
    """Exit 3 when the project needs a Python its interpreter is not (requires-python
    ">=3.13" while .venv is 3.11): its code would fail on syntax or imports far from the
    cause. Names the Python needed and, when this machine has one, its path."""
    requires = requires_python(root)
    if requires is None or python.source == "--python":
        return  # none stated, or the user named this interpreter knowingly
    try:
        wanted = SpecifierSet(requires)
    except InvalidSpecifier:
        return  # a malformed pin is the project's build tool's to report
    if wanted.contains(python.version_text, prereleases=True):
        return
    here = next(
        (
            path
            for minor in range(30, 7, -1)
            if wanted.contains(f"3.{minor}.99", prereleases=True)
            and (path := shutil.which(f"python3.{minor}"))
            and _runs(path)
        ),
        None,
    )
    shown = python.executable
    if shown.is_relative_to(root):
        shown = shown.relative_to(root)  # the project's own .venv/bin/python
    where = shown if python.own else f"{shown} (from {python.source})"
    how = f"{here} -m venv .venv, then install the project" if here else "none is installed here"
    raise EnvironmentProblem(
        f"pyproject.toml: the project requires Python {requires}, and {where} is "
        f"{python.version_text}",
        hint=f"create the project's venv with a Python {requires} ({how}), or name the "
        "interpreter with --python PATH to use it anyway",
    )


def _runs(path: str) -> bool:
    """A python3.X on PATH may be a shim of a version manager that is not set up."""
    try:
        return subprocess.run([path, "-c", ""], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
