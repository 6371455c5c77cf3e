"""The src/ layout under ``up``: the app's package lives in ``src/`` and is importable
only once the project is installed in its venv (``pip install -e .``, as its README
usually says, and as the kit's image, unit and Procfile do). When the project's venv
does not have it, ``up`` puts ``src/`` on PYTHONPATH for everything it runs of the
project (app server, migrations, release commands, reload's import check), as ``init``
and ``check`` already do to import the app.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from flaskprod.spec.detect import source_dir
from flaskprod.spec.interpreter import ProjectPython

_FIND_CODE = (
    "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)"
)


def needed(
    project: Path, target: str, python: ProjectPython, environ: Mapping[str, str]
) -> Path | None:
    """``src/`` when the app's package lives there and the project's Python cannot
    import it as things stand (not installed, not on PYTHONPATH); else None."""
    module = target.split(":", 1)[0].split(".", 1)[0]
    source = source_dir(project, module)
    if source is None:
        return None
    # Run from the project folder with the caller's environment: the same sys.path the
    # app server gets, so an editable install or a PYTHONPATH given by hand counts.
    found = subprocess.run(
        [str(python.executable), "-c", _FIND_CODE, module],
        cwd=project,
        env=dict(environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return None if found.returncode == 0 else source


def with_source(env: Mapping[str, str], source: Path | None) -> dict[str, str]:
    """``env`` with ``source`` first on PYTHONPATH (kept as given when None)."""
    out = dict(env)
    if source is not None:
        out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    return out


def message(source: Path, project: Path) -> str:
    """The one line ``up`` says about it."""
    folder = source.relative_to(project) if source.is_relative_to(project) else source
    return (
        f"src/ layout: the project is not installed in its venv, {folder}/ is put on "
        "PYTHONPATH; `pip install -e .` installs it"
    )
