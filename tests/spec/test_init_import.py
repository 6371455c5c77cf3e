"""``init`` on apps that need production's environment to be imported, and on projects
it cannot import at all (issue #12's Proof, bad input).

The apps are small and real, made in tmp_path; their interpreter is a real virtualenv
(flask-on-docker's, from tests/real_projects.py: Flask, Flask-SQLAlchemy, psycopg2 and
no Flask-Login), linked as the project's ``.venv``. flaskprod runs as a user runs it,
its console script in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from flaskprod_cli import run_flaskprod
from real_projects import cached_venv

from flaskprod.errors import ExitCode
from flaskprod.spec.interpreter import poetry_python

#: A Python newer than the venv's (built from this interpreter), e.g. ">=3.12" on 3.11.
NEWER = f">=3.{sys.version_info.minor + 1}"
#: Reads production's settings at import, as docker-flask-example and microblog-api do.
READS_ENV = """\
import os

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
db = SQLAlchemy(app)


@app.route("/up")
def up():
    return "ok"
"""


@pytest.fixture(scope="module")
def venv() -> Path:
    return cached_venv("flask-on-docker")


def _project(root: Path, venv: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    (root / ".venv").symlink_to(venv, target_is_directory=True)
    return root


def _clean_env() -> dict[str, str]:
    """This shell without production's variables (the test must not pass by luck)."""
    gone = {"SECRET_KEY", "DATABASE_URL", "PAGE_SIZE", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in gone}


def test_an_app_reading_secrets_at_import_gets_stand_ins(tmp_path: Path, venv: Path) -> None:
    root = _project(tmp_path / "reads", venv, {"app.py": READS_ENV, "requirements.txt": "Flask\n"})
    init = run_flaskprod("init", str(root), env=_clean_env())
    assert init.returncode == 0, init.stderr
    lines = init.stdout.splitlines()
    assert "import: stand-in values for DATABASE_URL, SECRET_KEY" in init.stdout
    # it really imported: the URL map's own /up is the health route
    assert any(
        line.startswith("Detected app:app in app.py:") and "2 routes" in line for line in lines
    )
    spec = (root / "flaskprod.toml").read_text()
    assert 'health_path = "/up"' in spec and 'health_source = "app"' in spec
    # a stand-in is never written anywhere
    for path in root.rglob("*"):
        if path.is_file() and ".venv" not in path.parts:
            assert "flaskprod-init-stand-in" not in path.read_text(errors="replace"), path


def test_an_app_that_still_fails_is_read_without_importing_with_one_note(
    tmp_path: Path, venv: Path
) -> None:
    """int(os.environ["PAGE_SIZE"]): no stand-in fits; init writes the kit from the
    sources and names the error, the variable and --env-file; with it, the app imports."""
    code = READS_ENV + 'app.config["PAGE_SIZE"] = int(os.environ["PAGE_SIZE"])\n'
    root = _project(tmp_path / "fails", venv, {"app.py": code, "requirements.txt": "Flask\n"})
    init = run_flaskprod("init", str(root), env=_clean_env())
    assert init.returncode == 0, init.stderr
    notes = [line for line in init.stdout.splitlines() if "did not import" in line]
    assert len(notes) == 1, init.stdout
    assert "app.py:15: ValueError" in notes[0]
    assert "PAGE_SIZE=... in the environment or --env-file FILE" in notes[0]
    assert "'flaskprod init --force'" in notes[0]
    assert (root / "deploy/Dockerfile").is_file() and (root / "flaskprod.toml").is_file()
    env_file = tmp_path / "init.env"
    env_file.write_text("PAGE_SIZE=20\n")
    again = run_flaskprod(
        "init", str(root), "--force", "--env-file", str(env_file), env=_clean_env()
    )
    assert again.returncode == 0, again.stderr
    assert "did not import" not in again.stdout
    assert 'health_path = "/up"' in (root / "flaskprod.toml").read_text()
    # --env-file's values go to the import only: the spec keeps the placeholder
    assert 'settings = { PAGE_SIZE = "CHANGE-ME" }' in (root / "flaskprod.toml").read_text()


def test_a_venv_missing_a_required_package_is_one_line_and_exit_3(
    tmp_path: Path, venv: Path
) -> None:
    files = {
        "app.py": "from flask import Flask\nfrom flask_login import LoginManager\n\n"
        "app = Flask(__name__)\nlogin = LoginManager(app)\n",
        "requirements.txt": "Flask\nFlask-Login\n",
    }
    root = _project(tmp_path / "missing", venv, files)
    before = sorted(path.name for path in root.iterdir())
    init = run_flaskprod("init", str(root), env=_clean_env())
    assert init.returncode == ExitCode.ENVIRONMENT, init.stdout + init.stderr
    assert init.stderr.strip().splitlines() == [
        "flaskprod: error: .venv/bin/python: the app does not import: no module named "
        "'flask_login' (app.py:2) (install the project's requirements into its venv: "
        ".venv/bin/pip install -r requirements.txt)"
    ]
    assert sorted(path.name for path in root.iterdir()) == before  # nothing written


def test_a_python_the_project_does_not_support_is_one_line_and_exit_3(
    tmp_path: Path, venv: Path
) -> None:
    pyproject = (
        f'[project]\nname = "newer"\nversion = "1"\nrequires-python = "{NEWER}"\n'
        'dependencies = ["flask"]\n'
    )
    files = {
        "app.py": "from flask import Flask\napp = Flask(__name__)\n",
        "pyproject.toml": pyproject,
    }
    root = _project(tmp_path / "newer", venv, files)
    before = sorted(path.name for path in root.iterdir())
    init = run_flaskprod("init", str(root), env=_clean_env())
    _refused_for_python(init)
    assert sorted(path.name for path in root.iterdir()) == before  # nothing written
    # up too, before anything starts (the spec written without importing the app)
    assert run_flaskprod("init", str(root), "--no-import").returncode == 0
    before = sorted(str(path) for path in root.rglob("*"))
    up = run_flaskprod("up", str(root), "--print-config", env=_clean_env())
    _refused_for_python(up)
    assert sorted(str(path) for path in root.rglob("*")) == before
    # named knowingly with --python, the interpreter is used as it is
    python = str(root / ".venv/bin/python")
    forced = run_flaskprod("init", str(root), "--force", "--python", python, env=_clean_env())
    assert forced.returncode == 0, forced.stdout + forced.stderr


def _refused_for_python(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == ExitCode.ENVIRONMENT, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"flaskprod: error: pyproject.toml: the project requires Python {NEWER}, and "
        f".venv/bin/python (from .venv) is 3.{sys.version_info.minor}."
    ), line
    assert f"create the project's venv with a Python {NEWER}" in line
    assert "or name the interpreter with --python PATH to use it anyway" in line


def test_poetrys_python_constraint_is_enforced_too(tmp_path: Path, venv: Path) -> None:
    """flask-blueprint-tutorial: [tool.poetry.dependencies] python = "^3.12,<4" and
    requirements whose markers install nothing on an older Python: init names the
    constraint, not the 'No module named flask' it would meet."""
    newer = f"^3.{sys.version_info.minor + 1},<4"
    files = {
        "app.py": "from flask import Flask\napp = Flask(__name__)\n",
        "pyproject.toml": f'[tool.poetry.dependencies]\npython = "{newer}"\n',
    }
    root = _project(tmp_path / "poetry", venv, files)
    init = run_flaskprod("init", str(root), env=_clean_env())
    assert init.returncode == ExitCode.ENVIRONMENT, init.stdout + init.stderr
    assert init.stderr.startswith(
        "flaskprod: error: pyproject.toml: the project requires Python "
        f">=3.{sys.version_info.minor + 1},<4, and .venv/bin/python (from .venv) is "
    ), init.stderr


def test_poetry_constraints_read_as_pep_440() -> None:
    assert poetry_python("^3.12,<4") == ">=3.12,<4"
    assert poetry_python("~3.12") == ">=3.12,<3.13"
    assert poetry_python(">=3.10") == ">=3.10"
    assert poetry_python("^x") is None
