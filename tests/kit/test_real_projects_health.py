"""Real public projects (``/work/shared/real-projects``), each copied with its OWN
virtual environment built from its own requirements (flaskprod is not in it): ``init``
finds what the project already says, and the kit's entry module, served by the
project's own gunicorn, answers health in front of the unchanged app.

- microblog: ``FLASK_APP=microblog.py`` in ``.flaskenv`` -> ``microblog:app`` (not the
  ``app`` package's factory), login at ``/auth/login``, no health routes -> the kit's;
- flask-on-docker (Flask 2.3, gunicorn 20): its app lives in ``services/web`` of the
  repository -> named after the repository, its CI workflow at the repository's root
  (valid for actionlint), working in ``services/web``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml
from kit_tools import ToolFinder, actionlint, serving
from real_projects import copy_project

from flaskprod.stack.ports import free_port
from flaskprod.stack.postgres import PostgresCluster

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")


def _freeze(app: Path) -> str:
    done = subprocess.run(
        [str(app / ".venv/bin/python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _init(app: Path) -> str:
    before = _freeze(app)
    done = subprocess.run([FLASKPROD, "init", str(app)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _freeze(app) == before  # nothing installed into, or changed in, the project
    return done.stdout


@contextmanager
def _own_gunicorn(app: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    """The project's own gunicorn (no flaskprod in its venv) serving the entry module."""
    port = free_port()
    log = app / "gunicorn.log"
    argv = [
        str(app / ".venv/bin/gunicorn"),
        "-b",
        f"127.0.0.1:{port}",
        "flaskprod_wsgi:application",
    ]
    with serving(argv, app, {"PATH": "/usr/bin:/bin", **env}, port, log) as client:
        yield client


def test_microblog(tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster) -> None:
    app = copy_project("microblog", tmp_path)
    out = _init(app)
    assert out.startswith("Detected microblog:app in microblog.py:"), out
    spec = (app / "flaskprod.toml").read_text()
    assert 'target = "microblog:app"' in spec
    assert 'login_path = "/auth/login"' in spec
    assert 'health_source = "kit"' in spec
    assert "location = /auth/login" in (app / "deploy/nginx/microblog.conf").read_text()
    unflaskprod = subprocess.run([str(app / ".venv/bin/python"), "-c", "import flaskprod"])
    assert unflaskprod.returncode != 0  # what serves below runs without flaskprod
    database = postgres_url.replace("postgresql+psycopg://", "postgresql://")  # its psycopg2
    with _own_gunicorn(app, {"DATABASE_URL": database, "SECRET_KEY": "k" * 40}) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"]["status"] == "ok"
        home = client.get("/")
        assert home.status_code == 302 and home.headers["location"].startswith("/auth/login")
        login = client.get("/auth/login")
        assert login.status_code == 200 and "Sign In" in login.text
        postgres_cluster.stop()
        try:
            start = time.monotonic()
            assert client.get("/health/ready").status_code == 503
            assert time.monotonic() - start < 1.5
        finally:
            postgres_cluster.start()


def test_flask_on_docker_in_a_subfolder(tmp_path: Path, tool: ToolFinder) -> None:
    app = copy_project("flask-on-docker", tmp_path)  # services/web
    repo = tmp_path / "flask-on-docker"
    out = _init(app)
    assert out.startswith("Detected project:app in project/__init__.py:"), out
    assert "created    ../../.github/workflows/flask-on-docker.yml" in out
    assert 'name = "flask-on-docker"' in (app / "flaskprod.toml").read_text()
    workflow = repo / ".github/workflows/flask-on-docker.yml"
    data = yaml.safe_load(workflow.read_text())
    assert data["defaults"]["run"]["working-directory"] == "services/web"
    assert actionlint(tool, [workflow]) == {str(workflow): []}
    assert not (app / ".github").exists()
    check = subprocess.run(
        [FLASKPROD, "render", "--check", str(app)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout
    # Flask 2.3 and gunicorn 20 from its own requirements serve the entry module.
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/web.sqlite3", "APP_FOLDER": str(app)}
    with _own_gunicorn(app, env) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert client.get("/").json() == {"hello": "world"}
