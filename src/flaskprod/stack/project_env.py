"""What ``up`` runs from the project's own environment: its app server, its ``flask``,
its Python for release commands. flaskprod's own environment only supervises.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from flaskprod.errors import EnvironmentProblem
from flaskprod.spec.flask_cli import flask_env, without_app_option
from flaskprod.spec.interpreter import ProjectPython
from flaskprod.spec.model import Spec
from flaskprod.spec.stackdeps import PINNED

_VERSION_CODE = "import sys; from importlib.metadata import version; print(version(sys.argv[1]))"


def server_executable(python: ProjectPython, kind: str, requirements: str | None) -> list[str]:
    """The app server installed in the project's environment: its script (gunicorn
    re-executes its own argv on USR2, which ``python -m gunicorn`` breaks), else
    ``python -m``. Missing: exit 3 naming the venv, the package and the line to add."""
    script = python.script(kind)
    if script is not None:
        return [str(script)]
    if python.has_module(kind):
        return [str(python.executable), "-m", kind]
    where = requirements or "the project's requirements"
    raise EnvironmentProblem(
        f"{kind} is not installed in {owner(python)} (server.kind = {kind!r}): "
        f"add '{PINNED[kind]}' to {where} and install it there",
        hint="'flaskprod init --force --add-deps' adds the line; flaskprod installs nothing",
    )


def owner(python: ProjectPython) -> str:
    """The environment ``python`` belongs to, for messages."""
    if python.own:
        return "flaskprod's own environment"
    return f"the project's venv {python.environment}"


def package_version(python: ProjectPython, distribution: str) -> str | None:
    """The version of ``distribution`` in the project's environment, None if absent."""
    result = subprocess.run(
        [str(python.executable), "-c", _VERSION_CODE, distribution],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def with_python(env: Mapping[str, str], python: ProjectPython, spec: Spec) -> dict[str, str]:
    """``env`` with the project's environment first on PATH (``flask``, ``python``,
    the app's own scripts resolve from it, as in an activated venv), and the settings
    the app expects from the ``python:*`` image (PYTHON_VERSION: this interpreter's)."""
    out = {**spec.image_settings(python.version_text), **env}
    out["PATH"] = os.pathsep.join(filter(None, [str(python.bin_dir), env.get("PATH")]))
    if not python.own:
        out["VIRTUAL_ENV"] = str(python.environment)
    return out


def release_command(
    argv: list[str], python: ProjectPython, target: str, env: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """A release command as the project runs it, and its environment: ``flask ...`` is
    its Flask against the spec's app (named in ``FLASK_APP``, which Flask < 2.2 reads
    too), ``python ...`` its interpreter; anything else resolves on PATH (the project's
    bin folder first, see :func:`with_python`)."""
    if argv[:1] == ["flask"]:
        flask = [str(python.executable), "-m", "flask", *without_app_option(argv)[1:]]
        return flask, {**env, **flask_env(target)}
    if argv[:1] in (["python"], ["python3"]):
        return [str(python.executable), *argv[1:]], dict(env)
    return argv, dict(env)
