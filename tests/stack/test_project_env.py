"""What ``up`` takes from the project's own environment (stack/project_env.py): its app
server, its ``flask`` and ``python`` for release commands, its PATH; and what it says
when that environment lacks the server or the database driver. Real venvs
(``python -m venv``), no flaskprod in them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flaskprod.errors import EnvironmentProblem, ExitCode
from flaskprod.spec.interpreter import resolve_python
from flaskprod.spec.model import Spec
from flaskprod.stack import project_env
from flaskprod.stack.up import Stack, UpOptions


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose .venv has nothing installed (no pip even)."""
    root = tmp_path_factory.mktemp("bare")
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")],
        check=True, timeout=60,
    )  # fmt: skip
    (root / "requirements.txt").write_text("flask==3.1.3\n")
    return root


def _spec(**sections: object) -> Spec:
    return Spec.model_validate({"app": {"target": "wsgi:app", "name": "bare"}, **sections})


@pytest.mark.parametrize("kind", ["gunicorn", "granian"])
def test_a_server_the_venv_lacks_is_exit_3_with_the_line(bare: Path, kind: str) -> None:
    python = resolve_python(bare, environ={})
    with pytest.raises(EnvironmentProblem) as caught:
        project_env.server_executable(python, kind, "requirements.txt")
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    pinned = {"gunicorn": "gunicorn==27.0.1", "granian": "granian==2.8.7"}[kind]
    assert str(caught.value) == (
        f"{kind} is not installed in the project's venv {bare}/.venv (server.kind = "
        f"'{kind}'): add '{pinned}' to requirements.txt and install it there "
        "('flaskprod init --force --add-deps' adds the line; flaskprod installs nothing)"
    )


def test_the_server_comes_from_the_projects_bin(tmp_path: Path) -> None:
    """A venv with its own gunicorn script: that one, not flaskprod's."""
    root = tmp_path / "p"
    root.mkdir()
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")],
        check=True, timeout=60,
    )  # fmt: skip
    script = root / ".venv/bin/gunicorn"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    stack = Stack(
        _spec(server={"kind": "gunicorn"}),
        UpOptions(project=root, state_dir=tmp_path / "state", environ={}),
        lambda _: None,
    )
    assert stack.server_executable() == [str(script)]


def test_release_commands_and_path_are_the_projects(bare: Path) -> None:
    python = resolve_python(bare, environ={})
    base = {"PATH": "/usr/bin"}
    # the app in FLASK_APP, which every Flask reads (--app needs Flask >= 2.2)
    assert project_env.release_command(["flask", "seed"], python, "wsgi:app", base) == (
        [str(bare / ".venv/bin/python"), "-m", "flask", "seed"],
        {"PATH": "/usr/bin", "FLASK_APP": "wsgi:app"},
    )
    written = ["flask", "--app", "other:app", "seed"]  # the spec's app wins
    assert project_env.release_command(written, python, "wsgi:app", base)[0][-1:] == ["seed"]
    assert project_env.release_command(["python", "x.py"], python, "wsgi:app", base) == (
        [str(bare / ".venv/bin/python"), "x.py"], base,
    )  # fmt: skip
    assert project_env.release_command(["./boot.sh"], python, "wsgi:app", base) == (
        ["./boot.sh"], base,
    )  # fmt: skip
    env = project_env.with_python({"PATH": "/usr/bin"}, python, _spec())
    assert env["PATH"] == f"{bare}/.venv/bin:/usr/bin"
    assert env["VIRTUAL_ENV"] == str(bare / ".venv")
    # and the shell finds the project's scripts first, as in an activated venv
    found = subprocess.run(
        ["sh", "-c", "command -v python"], env=env, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == f"{bare}/.venv/bin/python"


def test_a_driver_the_venv_lacks_is_a_note(bare: Path, tmp_path: Path) -> None:
    said: list[str] = []
    stack = Stack(
        _spec(database={"driver": "psycopg2"}),
        UpOptions(project=bare, state_dir=tmp_path / "state", environ={}),
        said.append,
    )
    stack.note_driver()
    assert said == [
        f"note: psycopg2 (database.driver) is not installed in the project's venv "
        f"{bare}/.venv: the app cannot reach PostgreSQL with postgresql+psycopg2://; add "
        "'psycopg2-binary==2.9.10' to its requirements"
    ]
    said.clear()
    given = UpOptions(
        project=bare, state_dir=tmp_path / "s2", environ={"DATABASE_URL": "sqlite://"}
    )
    Stack(_spec(database={"driver": "psycopg2"}), given, said.append).note_driver()
    assert said == []  # the app's own database: not the stack's business
