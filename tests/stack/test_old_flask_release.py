"""Release commands and the kit's flask steps on Flask < 2.2, which has no ``--app``
option (CTFd pins Flask 2.1.3: ``Error: No such option: --app``): the app is named in
``FLASK_APP``, which every Flask reads. A real venv with CTFd's Flask and Werkzeug."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from real_projects import venv_with

from flaskprod.kit.render import render_kit
from flaskprod.spec.model import Spec
from flaskprod.stack.up import Stack, UpOptions

OLD_FLASK = ["Flask==2.1.3", "Werkzeug==2.2.3"]  # CTFd's pins
APP = """\
import os
from pathlib import Path
from flask import Flask


def create_app():
    app = Flask(__name__)

    @app.cli.command("mark")
    def mark():
        Path("released.txt").write_text(os.environ["DATABASE_URL"])

    @app.cli.group()
    def digest():
        pass

    @digest.command("compile")
    def compile_():
        Path("digested.txt").write_text(app.name)

    return app
"""


@pytest.fixture(scope="module")
def old_flask_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A factory app in a package (``hello.app:create_app()``, parentheses and all)
    with its own venv on Flask 2.1."""
    root = tmp_path_factory.mktemp("old-flask") / "project"
    (root / "hello").mkdir(parents=True)
    (root / "hello/__init__.py").write_text("")
    (root / "hello/app.py").write_text(APP)
    (root / ".venv").symlink_to(venv_with("flask-2.1", OLD_FLASK), target_is_directory=True)
    version = subprocess.run(
        [str(root / ".venv/bin/flask"), "--version"], capture_output=True, text=True, check=True
    )
    assert "Flask 2.1.3" in version.stdout  # really the old Flask
    return root


def _spec(root: Path) -> Spec:
    return Spec.model_validate(
        {"app": {"name": "hello", "target": "hello.app:create_app()", "root": str(root),
                 "build": ["flask digest compile"]}}
    )  # fmt: skip


def test_a_release_command_runs_on_flask_2_1(old_flask_app: Path, tmp_path: Path) -> None:
    (old_flask_app / "released.txt").unlink(missing_ok=True)
    stack = Stack(
        _spec(old_flask_app),
        UpOptions(project=old_flask_app, state_dir=tmp_path / "state", environ={}),
        lambda _: None,
    )
    stack.dirs.prepare()
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": "sqlite:///x.db"}
    stack._release_step(["flask", "mark"], env)  # raises with the log's tail on failure
    assert (old_flask_app / "released.txt").read_text() == "sqlite:///x.db"


def test_the_kits_flask_steps_are_valid_shell_on_flask_2_1(old_flask_app: Path) -> None:
    files = render_kit(_spec(old_flask_app), {"migrations": True})
    dockerfile = files["deploy/Dockerfile"]
    # every RUN line (with its continuations) parses as sh
    runs = re.findall(r"^RUN (.*?)(?<!\\)$", dockerfile, flags=re.M | re.S)
    assert runs
    for line in runs:
        checked = subprocess.run(["sh", "-n", "-c", line], capture_output=True, text=True)
        assert checked.returncode == 0, f"{line!r}: {checked.stderr}"
    # the image names the app for every flask command (compose/k8s migrate, docker exec)
    assert 'FLASK_APP="hello.app:create_app()"' in dockerfile
    step = next(line for line in runs if "digest compile" in line)
    # the build step as the image runs it, with the project's Flask 2.1
    (old_flask_app / "digested.txt").unlink(missing_ok=True)
    path = f"{old_flask_app / '.venv/bin'}:{os.environ['PATH']}"
    ran = subprocess.run(
        ["sh", "-c", step], cwd=old_flask_app, env={"PATH": path}, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert (old_flask_app / "digested.txt").read_text() == "hello.app"
    # the shells' migrate lines (Procfile, CI) name the app the same way
    assert (
        "release: FLASK_APP='hello.app:create_app()' flask db upgrade" in files["deploy/Procfile"]
    )
    for text in files.values():
        assert "flask --app" not in text
