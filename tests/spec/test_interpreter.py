"""The project's Python (spec/interpreter.py): each rule of the order with real virtual
environments (``python -m venv --without-pip``), each bad input with its one line and
exit code 3, and the commands' ``--python``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flaskprod.cli import cli
from flaskprod.errors import EnvironmentProblem, ExitCode
from flaskprod.spec.interpreter import resolve_python

APP = "from flask import Flask\napp = Flask(__name__)\n"


def venv(path: Path) -> Path:
    """A real virtual environment at ``path``; its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60
    )
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the project (an activated one, or one given with --python)."""
    return venv(tmp_path_factory.mktemp("outside") / "env")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "app.py").write_text(APP)
    return root


def test_the_projects_dot_venv_is_used(project: Path) -> None:
    python = venv(project / ".venv")
    found = resolve_python(project, environ={})
    assert found.executable == python and found.source == ".venv" and not found.own
    assert found.version == tuple(sys.version_info[:3])
    assert found.describe() == (f"python: {python} ({found.version_text}, from .venv)")


def test_dot_venv_comes_before_venv_and_env(project: Path) -> None:
    venv(project / "env")
    assert resolve_python(project, environ={}).source == "env"
    venv(project / "venv")
    assert resolve_python(project, environ={}).source == "venv"
    venv(project / ".venv")
    assert resolve_python(project, environ={}).source == ".venv"


def test_a_folder_named_env_that_is_no_venv_is_not_taken(project: Path) -> None:
    (project / "env").mkdir()
    (project / "env" / "production.env").write_text("A=1\n")
    found = resolve_python(project, environ={})
    assert found.own and found.source == "flaskprod"


def test_virtual_env_comes_before_the_projects_venv(project: Path, outside: Path) -> None:
    venv(project / ".venv")
    found = resolve_python(project, environ={"VIRTUAL_ENV": str(outside.parent.parent)})
    assert found.executable == outside and found.source == "VIRTUAL_ENV"


def test_flaskprods_own_virtual_env_is_skipped(project: Path) -> None:
    """flaskprod run from an activated shell of its own venv: that is not the project's."""
    python = venv(project / ".venv")
    found = resolve_python(project, environ={"VIRTUAL_ENV": sys.prefix})
    assert found.executable == python


def test_python_option_comes_first(project: Path, outside: Path) -> None:
    venv(project / ".venv")
    environ = {"VIRTUAL_ENV": str(project / ".venv")}
    found = resolve_python(project, str(outside), environ)
    assert found.executable == outside and found.source == "--python"
    # the venv's folder works too
    assert resolve_python(project, str(outside.parent.parent), environ).executable == outside


def test_no_venv_falls_back_to_flaskprods_own_with_a_note(project: Path) -> None:
    found = resolve_python(project, environ={})
    assert found.own and found.executable == Path(sys.executable)
    assert "flaskprod's own: the project has no virtual environment" in found.describe()
    assert "--python PATH" in found.describe()


# -- bad input: one line, exit 3 ------------------------------------------------------


def _error(project: Path, given: str | None = None) -> str:
    with pytest.raises(EnvironmentProblem) as caught:
        resolve_python(project, given, environ={})
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_missing_python_path(project: Path) -> None:
    assert _error(project, "/nonexistent/bin/python") == (
        "--python /nonexistent/bin/python: no such file "
        "(pass the project's interpreter, e.g. --python .venv/bin/python)"
    )


def test_a_folder_that_is_no_venv(project: Path, tmp_path: Path) -> None:
    assert _error(project, str(tmp_path)) == (
        f"--python {tmp_path}: a folder without bin/python, not a virtual environment "
        "(pass the interpreter (e.g. .venv/bin/python) or the venv's folder)"
    )


def test_a_broken_venv_whose_python_is_gone(project: Path) -> None:
    """A venv made by a Python that was removed since (pyenv, a distribution upgrade)."""
    python = project / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    (project / ".venv" / "pyvenv.cfg").write_text("home = /opt/python3.9/bin\n")
    python.symlink_to("/opt/python3.9/bin/python3.9")
    assert _error(project) == (
        "the project's Python .venv/bin/python: broken virtual environment: python links "
        "to /opt/python3.9/bin/python3.9, which does not exist (recreate it: python3 -m "
        "venv --clear .venv && .venv/bin/pip install -r requirements.txt, or pass "
        "--python PATH)"
    )


def test_a_venv_without_its_python(project: Path) -> None:
    (project / ".venv").mkdir()
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert _error(project).startswith("the project's Python .venv/bin/python: no such file")


def test_something_that_is_not_python(project: Path, tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho 'hello from sh'\n")
    script.chmod(0o755)
    assert _error(project, str(script)) == (
        f"--python {script}: not a working Python interpreter (exit status 0) "
        "(pass the project's interpreter, e.g. --python .venv/bin/python)"
    )
    data = tmp_path / "data.bin"
    data.write_bytes(b"\x00\x01")
    data.chmod(0o644)
    assert _error(project, str(data)) == (
        f"--python {data}: cannot be run: Permission denied "
        "(pass the project's interpreter, e.g. --python .venv/bin/python)"
    )


def test_a_python_too_old(project: Path, tmp_path: Path) -> None:
    old = tmp_path / "python3.6"
    old.write_text("#!/bin/sh\necho 3.6.15\n")  # what python3.6 prints for the probe
    old.chmod(0o755)
    assert _error(project, str(old)) == (
        f"--python {old}: Python 3.6.15 is too old (flaskprod drives Python >= 3.8) "
        "(create the project's venv with a newer Python)"
    )


@pytest.mark.parametrize("command", ["init", "check", "render"])
def test_commands_refuse_a_bad_python_in_one_line(project: Path, command: str) -> None:
    if command == "render":
        assert CliRunner().invoke(cli, ["init", str(project)]).exit_code == 0
    before = sorted(p.name for p in project.iterdir())
    result = CliRunner().invoke(cli, [command, str(project), "--python", "/nonexistent/python"])
    assert result.exit_code == ExitCode.ENVIRONMENT, result.output
    assert result.stderr == (
        "flaskprod: error: --python /nonexistent/python: no such file "
        "(pass the project's interpreter, e.g. --python .venv/bin/python)\n"
    )
    assert result.stdout == ""
    assert sorted(p.name for p in project.iterdir()) == before  # nothing written
