"""A src/-layout project (flask-celery's shape: src/task_app/, pyproject.toml, its
README says ``pip install -e .``) under ``up``, with a venv of its own that has Flask
and granian but not the project itself: init imports the app from src/, and up puts
src/ on PYTHONPATH of everything it runs of the project (the release command, the app
server, reload's import check), saying so in one line; once the app's package is
importable as things stand (installed, or on PYTHONPATH), up adds nothing. Real nginx
and granian; the page is fetched through nginx+TLS."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flaskprod_cli import run_flaskprod

from flaskprod.stack.ports import free_ports
from flaskprod.stack.state import StateDir

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from real_projects import pip_freeze, venv_with  # noqa: E402

pytestmark = pytest.mark.services

#: The project's own pins: what flaskprod's environment has, so pip finds them offline.
REQUIREMENTS = [f"{name}=={importlib.metadata.version(name)}" for name in ("flask", "granian")]

FILES = {
    "pyproject.toml": """\
        [project]
        name = "task-app"
        version = "1.0.0"
        dependencies = ["flask", "granian"]

        [build-system]
        requires = ["flit_core<4"]
        build-backend = "flit_core.buildapi"

        [tool.flit.module]
        name = "task_app"
    """,
    "requirements.txt": "".join(f"{line}\n" for line in REQUIREMENTS),
    "src/task_app/__init__.py": """\
        import os
        from pathlib import Path

        from flask import Flask


        def create_app():
            app = Flask(__name__)

            @app.get("/")
            def index():
                return "<h1>task app</h1>"

            @app.cli.command("seed")
            def seed():
                # a release command: it imports the app through src/ as the server does
                Path(os.environ["SEED_MARK"]).write_text("seeded")

            return app
    """,
    "src/task_app/static/site.css": "h1 { color: red }\n",
}

LINE = (
    "src/ layout: the project is not installed in its venv, src/ is put on PYTHONPATH; "
    "`pip install -e .` installs it"
)


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_flaskprod(*args, timeout=120, env=env)


@pytest.fixture
def project() -> Iterator[Path]:
    """The project in a folder nginx's workers can traverse, with ``.venv`` linked to a
    cached venv of its requirements (the project not installed in it)."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-up-src-"))
    base.chmod(0o755)
    root = base / "task-app"
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (root / ".venv").symlink_to(venv_with("src-layout", REQUIREMENTS), True)
    yield root
    if StateDir(root / ".flaskprod").read() is not None:  # a failed test: stop by pid
        run_flaskprod("down", str(root))
    shutil.rmtree(base, ignore_errors=True)


def test_up_serves_a_src_layout_app_its_venv_does_not_have(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SEED_MARK"] = str(project.parent / "seed-mark")
    venv_python = str(project / ".venv" / "bin" / "python")
    not_installed = subprocess.run(
        [venv_python, "-c", "import task_app"], cwd=project, env=env, capture_output=True
    )
    assert not_installed.returncode == 1  # the premise: the venv cannot import it
    frozen = pip_freeze(project)

    init = run("init", str(project), "--name", "taskapp", env=env)
    assert init.returncode == 0, init.stdout + init.stderr
    assert init.stdout.startswith("Detected task_app:create_app() in src/task_app/__init__.py")
    spec = project / "flaskprod.toml"
    text = spec.read_text().replace('engine = "postgresql"', 'engine = "sqlite"')
    spec.write_text(text.replace("[redis]\nenabled = true", "[redis]\nenabled = false"))
    assert 'kind = "granian"' in text
    assert run("render", str(project), env=env).returncode == 0

    https, http = free_ports(2)
    ports = ["--https-port", str(https), "--http-port", str(http)]
    up = run("up", str(project), "-d", *ports, "--release", "flask seed", env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.count(LINE) == 1, up.stdout
    assert (project.parent / "seed-mark").read_text() == "seeded"  # the release command
    trust = ssl.create_default_context(cafile=str(project / ".flaskprod" / "tls" / "ca.pem"))
    home = httpx.get(f"https://localhost:{https}/", verify=trust)
    assert (home.status_code, home.text) == (200, "<h1>task app</h1>")

    # reload imports the new code first (granian): through src/ as well
    app = project / "src" / "task_app" / "__init__.py"
    app.write_text(app.read_text().replace("<h1>task app</h1>", "<h1>task app v2</h1>"))
    reload = run("reload", str(project), env=env)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    assert httpx.get(f"https://localhost:{https}/", verify=trust).text == "<h1>task app v2</h1>"
    assert run("down", str(project), env=env).returncode == 0

    # importable as things stand (here on PYTHONPATH, as an install would make it):
    # up adds nothing and says nothing about it
    given = {**env, "PYTHONPATH": str(project / "src")}
    https, http = free_ports(2)
    again = run(
        "up", str(project), "-d", "--https-port", str(https), "--http-port", str(http),
        env=given,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "src/ layout" not in again.stdout
    assert httpx.get(f"https://localhost:{https}/", verify=trust).text == "<h1>task app v2</h1>"
    assert run("down", str(project), env=env).returncode == 0
    assert pip_freeze(project) == frozen  # nothing installed into the project's venv
