"""``flaskprod up`` of a real project (microblog) whose own venv lacks flaskprod: init
imports it with that venv, up runs its migrations, a release command and its own
gunicorn with it, and its packages are exactly the same afterwards. A server the venv
lacks is one line and exit 3, with the requirements line to add.

microblog has no health route: init chooses http.health_source = "kit", and the kit's
entry module answers /health and /health/ready (its database) in front of the app.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flaskprod_cli import run_flaskprod
from real_projects import copy_project, pip_freeze

from flaskprod.errors import ExitCode
from flaskprod.stack.ports import free_ports
from flaskprod.stack.state import StateDir


def _gunicorn_pid(root: Path) -> int:
    """The live gunicorn master up (or the last reload) recorded."""
    state = StateDir(root / ".flaskprod").read()
    record = state.service("gunicorn") if state else None
    assert record is not None, "no gunicorn in state.json"
    return record.pid


@dataclass
class Microblog:
    root: Path
    https_port: int
    freeze_before: str
    init_output: str
    up_output: str


@pytest.fixture(scope="module")
def microblog() -> Iterator[Microblog]:
    base = Path(tempfile.mkdtemp(prefix="flaskprod-real-"))
    base.chmod(0o755)  # nginx's workers and the postgres user traverse it
    root = copy_project("microblog", base)
    freeze = pip_freeze(root)
    assert "flaskprod" not in freeze.lower()
    init = run_flaskprod("init", str(root))
    assert init.returncode == 0, init.stderr
    assert 'health_source = "kit"' in (root / "flaskprod.toml").read_text()
    https_port, http_port = free_ports(2)
    up = run_flaskprod(
        "up", str(root), "-d", "--https-port", str(https_port), "--http-port", str(http_port),
        "--release", "flask translate compile", timeout=300,
    )  # fmt: skip
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        yield Microblog(root, https_port, freeze, init.stdout, up.stdout)
    finally:
        down = run_flaskprod("down", str(root))
        assert down.returncode == 0, down.stderr
        shutil.rmtree(base)


def test_init_imports_it_with_its_own_venv(microblog: Microblog) -> None:
    lines = microblog.init_output.splitlines()
    venv_python = microblog.root / ".venv/bin/python"
    assert any(
        line.startswith(f"python: {venv_python} (") and "from .venv" in line for line in lines
    )
    assert (
        "server: gunicorn (worker_class sync, workers 4), as the project runs it "
        "(deployment/supervisor/microblog.conf:2)"
    ) in lines
    assert "database: PostgreSQL through psycopg2 (database.driver)" in lines


def test_up_runs_migrations_release_and_gunicorn_with_the_projects_python(
    microblog: Microblog,
) -> None:
    root = microblog.root
    assert "migrations: flask db upgrade" in microblog.up_output
    release = (root / ".flaskprod/logs/release.log").read_text()
    # alembic ran microblog's migrations: only its venv has flask_login, flask_babel...
    assert "Running upgrade" in release and "ModuleNotFoundError" not in release
    # `flask translate compile` shells out to pybabel: found in the project's venv
    assert (root / "app/translations/es/LC_MESSAGES/messages.mo").is_file()
    master = _gunicorn_pid(root)
    argv = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    assert argv[1] == str(root / ".venv/bin/gunicorn").encode(), argv
    # and the database URL names the driver microblog ships
    assert "postgresql+psycopg2://" in (root / ".flaskprod/state.json").read_text()


def test_microblog_answers_through_nginx(microblog: Microblog) -> None:
    context = ssl.create_default_context(cafile=str(microblog.root / ".flaskprod/tls/ca.pem"))
    url = f"https://localhost:{microblog.https_port}/auth/login"
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        assert response.status == 200
        assert b"Sign In" in response.read()
    ready = f"https://localhost:{microblog.https_port}/health/ready"
    with urllib.request.urlopen(ready, context=context, timeout=10) as response:
        assert json.loads(response.read())["status"] == "ok"


def test_reload_keeps_the_projects_gunicorn(microblog: Microblog) -> None:
    """preload_app: reload starts a new master on the other slot, with the project's
    gunicorn; the venv up ran with is recorded for it."""
    root = microblog.root
    state = json.loads((root / ".flaskprod/state.json").read_text())
    assert state["env"]["VIRTUAL_ENV"] == str(root / ".venv")
    old = _gunicorn_pid(root)
    reload = run_flaskprod("reload", str(root))
    assert reload.returncode == 0, reload.stdout + reload.stderr
    new = _gunicorn_pid(root)
    assert new != old
    argv = Path(f"/proc/{new}/cmdline").read_bytes().split(b"\0")
    assert argv[1] == str(root / ".venv/bin/gunicorn").encode(), argv
    test_microblog_answers_through_nginx(microblog)


def test_the_projects_packages_are_unchanged(microblog: Microblog) -> None:
    assert pip_freeze(microblog.root) == microblog.freeze_before


def test_flask_on_docker_runs_with_its_own_old_gunicorn() -> None:
    """flask-on-docker pins gunicorn 20.1 (no control socket flag, which up then leaves
    out) and psycopg2; its app answers / with JSON. Its packages stay as they were.
    It writes uploads to f"{APP_FOLDER}/project/media": up gives it APP_FOLDER (its own
    setting, app.settings = {root}) as the project folder, and nginx serves that folder
    at /media/, so an upload is served back without an edit to the app."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-real-"))
    base.chmod(0o755)
    root = copy_project("flask-on-docker", base)  # services/web
    freeze = pip_freeze(root)
    try:
        init = run_flaskprod("init", str(root))
        assert init.returncode == 0, init.stderr
        assert "server: gunicorn, listed in the project's requirements" in init.stdout
        https_port, http_port = free_ports(2)
        up = run_flaskprod(
            "up", str(root), "-d", "--https-port", str(https_port),
            "--http-port", str(http_port), timeout=300,
        )  # fmt: skip
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        context = ssl.create_default_context(cafile=str(root / ".flaskprod/tls/ca.pem"))
        url = f"https://localhost:{https_port}/"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            assert json.loads(response.read()) == {"hello": "world"}
        master = _gunicorn_pid(root)
        argv = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
        assert argv[1] == str(root / ".venv/bin/gunicorn").encode(), argv
        assert b"--no-control-socket" not in argv
        assert "app settings: APP_FOLDER" in up.stdout
        _upload(f"https://localhost:{https_port}/upload", context, "note.txt", b"uploaded\n")
        # the app wrote it where its own setting says, inside the project's code folder
        assert (root / "project/media/note.txt").read_bytes() == b"uploaded\n"
        with urllib.request.urlopen(
            f"https://localhost:{https_port}/media/note.txt", context=context, timeout=10
        ) as response:
            assert response.read() == b"uploaded\n"
            # nginx's media location answered (the app's own /media route sends no-cache);
            # a plain name (not a uuid or a hash) can be overwritten: revalidated
            assert response.headers["Cache-Control"] == "public, max-age=3600, must-revalidate"
        with urllib.request.urlopen(
            f"https://localhost:{https_port}/static/hello.txt", context=context, timeout=10
        ) as response:
            assert response.read() == (root / "project/static/hello.txt").read_bytes()
    finally:
        down = run_flaskprod("down", str(root))
        assert down.returncode == 0, down.stderr
        assert pip_freeze(root) == freeze
        shutil.rmtree(base)


def _upload(url: str, context: ssl.SSLContext, name: str, content: bytes) -> None:
    """POST one file as a browser's form does (multipart/form-data, field "file")."""
    boundary = "flaskprod-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        assert response.status == 200


def test_an_app_server_the_venv_lacks_is_one_line_and_exit_3(
    microblog: Microblog, tmp_path: Path
) -> None:
    """A copy of the project initialised for granian, which microblog's venv does not
    have: init says which line to add, up stops before starting anything."""
    root = Path(
        shutil.copytree(
            microblog.root,
            tmp_path / "mb",
            symlinks=True,
            ignore=shutil.ignore_patterns(".flaskprod"),
        )
    )
    init = run_flaskprod("init", str(root), "--force", "--server", "granian")
    assert init.returncode == 0, init.stderr
    assert (
        "note: the project does not list granian, which the stack runs (server.kind = "
        "'granian'): add 'granian==2.8.7' to requirements.txt (or run init with --add-deps)"
    ) in init.stdout.splitlines()
    result = run_flaskprod("up", str(root), "-d", "--https-port", "1", "--http-port", "2")
    assert result.returncode == ExitCode.ENVIRONMENT, result.stdout + result.stderr
    assert result.stderr == (
        f"flaskprod: error: granian is not installed in the project's venv {root}/.venv "
        "(server.kind = 'granian'): add 'granian==2.8.7' to requirements.txt and install it "
        "there ('flaskprod init --force --add-deps' adds the line; flaskprod installs "
        "nothing)\n"
    )
    assert not (root / ".flaskprod/state.json").exists()
