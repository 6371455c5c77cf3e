"""``http.health_source = "kit"``: the rendered ``flaskprod_wsgi.py`` served by a REAL
granian and a REAL gunicorn, started with the kit's own commands, in front of an app
that has no health routes (a factory called with an argument, as ``app.target`` says).

Liveness answers 200 without dependencies; readiness checks the suite's real PostgreSQL
and a real password-protected Redis, and answers 503 within ~1.5 s once the database
is stopped (connection refused) or frozen (no answer at all); the app's own pages
are unchanged. Every launcher of the kit serves the entry module.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kit_tools import serving
from project_files import write

from flaskprod.errors import SpecError
from flaskprod.kit import entry
from flaskprod.kit.commands import render_files
from flaskprod.kit.entrypoint import entry_app
from flaskprod.kit.write import plan_kit, write_plan
from flaskprod.spec.load import spec_from_data
from flaskprod.spec.model import Spec
from flaskprod.spec.servers import Listen, granian_argv, served_target
from flaskprod.stack.ports import free_port
from flaskprod.stack.postgres import PostgresCluster
from flaskprod.stack.redis import RedisServer

VENV_BIN = Path(sys.executable).parent

APP = {
    "hello.py": """
        from flask import Flask, request

        def create_app(greeting):
            app = Flask(__name__)

            @app.get("/")
            def index():
                return greeting

            @app.post("/echo")
            def echo():
                return request.get_data()

            @app.get("/who")
            def who():
                return f"{request.remote_addr} {request.scheme}"

            return app
    """,
    "requirements.txt": "flask\n",
}


def _spec(kind: str) -> Spec:
    server: dict[str, Any] = {"kind": kind, "workers": 1}
    return spec_from_data(
        {
            "app": {"target": "hello:create_app('hello from the app')", "name": "hello"},
            "server": server,
            "http": {"health_source": "kit"},
        }
    )


def _render(root: Path, spec: Spec) -> dict[str, str]:
    files, modes = render_files(spec, {"uses_redis": True, "migrations": False})
    write_plan(plan_kit(root, files, modes), force=True)
    return files


def _command(spec: Spec, root: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The kit's container command, listening on loopback instead of 0.0.0.0."""
    if spec.server.kind == "granian":
        listen = Listen(host="127.0.0.1", port=str(port))
        return granian_argv(spec, listen, launcher=[sys.executable, "-m", "flaskprod.serve"]), {}
    argv = [str(VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", served_target(spec)]
    return argv, {"GUNICORN_BIND": f"127.0.0.1:{port}"}


@pytest.fixture(scope="module")
def auth_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path_factory.mktemp("auth-redis"), password="pa ss/w:rd", die_with_parent=True
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["granian", "gunicorn"])
def served(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_url: str,
    auth_redis: RedisServer,
) -> Iterator[tuple[httpx.Client, Path]]:
    root = write(tmp_path / "hello", APP)
    spec = _spec(request.param)
    files = _render(root, spec)
    assert "flaskprod_wsgi.py" in files
    port = free_port()
    argv, extra = _command(spec, root, port)
    assert argv[-1] == "flaskprod_wsgi:application"
    env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "SECRET_KEY": "k" * 48,
        "DATABASE_URL": postgres_url,
        "REDIS_URL": auth_redis.url(),
        **extra,
    }
    log = tmp_path / "server.log"
    with serving(argv, root, env, port, log) as client:
        yield client, log


def _timed(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - start


def test_health_ready_and_the_app_untouched(
    served: tuple[httpx.Client, Path], postgres_cluster: PostgresCluster
) -> None:
    client, log = served
    live = client.get("/health")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert live.headers["cache-control"] == "no-store"
    ready = client.get("/health/ready")
    assert ready.status_code == 200, (ready.text, log.read_text())
    checks = ready.json()["checks"]
    assert set(checks) == {"database", "redis"}
    assert all(check["status"] == "ok" for check in checks.values())
    # The app itself: its page, with the factory's argument; its own 404 and 405.
    assert client.get("/").text == "hello from the app"
    assert client.post("/echo", content=b"x" * 70000).content == b"x" * 70000
    missing = client.get("/health/other")
    assert missing.status_code == 404 and "Not Found" in missing.text
    assert client.post("/health").status_code == 405
    # Behind the kit's nginx (one proxy): the client's address and scheme, through the
    # ProxyFix the entry module adds; only the last hop of X-Forwarded-For is trusted.
    forwarded = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https"}
    assert client.get("/who", headers=forwarded).text == "203.0.113.9 https"

    postgres_cluster.pause()  # a frozen database: connections hang
    try:
        frozen, took = _timed(client, "/health/ready")
    finally:
        postgres_cluster.resume()
    assert frozen.status_code == 503
    assert frozen.json()["checks"]["database"] == {"status": "fail", "error": "timeout"}
    assert frozen.json()["checks"]["redis"]["status"] == "ok"
    assert took < 1.5
    assert "readiness: database: no answer within 1s" in log.read_text()

    postgres_cluster.stop()  # a stopped database: connections refused
    try:
        stopped, took = _timed(client, "/health/ready")
    finally:
        postgres_cluster.start()
    assert stopped.status_code == 503
    assert stopped.json()["checks"]["database"]["error"] == "ConnectionRefusedError"
    assert took < 1.5
    assert client.get("/health").status_code == 200  # liveness never looks at them


def test_readiness_names_a_wrong_redis_password_and_a_missing_database(
    tmp_path: Path, postgres_cluster: PostgresCluster, auth_redis: RedisServer
) -> None:
    """The checks against the real servers, without an app server in between."""
    good = entry.dependency_checks(
        {"DATABASE_URL": postgres_cluster.url(), "REDIS_URL": auth_redis.url()}
    )
    status, body = entry.readiness(good)
    assert status == 200, body
    wrong = auth_redis.url().replace("pa%20ss", "nope")
    missing = postgres_cluster.url("no_such_database")
    status, body = entry.readiness(entry.dependency_checks({"DATABASE_URL": missing}))
    assert (status, body["checks"]["database"]["error"]) == (503, "Unready")
    with pytest.raises(entry.Unready, match="3D000"):
        entry.check_postgres(missing)
    with pytest.raises(entry.Unready, match="WRONGPASS"):
        entry.check_redis(wrong)
    sqlite = tmp_path / "app.sqlite3"
    entry.check_sqlite(f"sqlite:///{sqlite}")  # not there yet, but SQLite can create it
    with pytest.raises(entry.Unready, match="no SQLite database file"):
        entry.check_sqlite(f"sqlite:////proc/no-such/{sqlite.name}")
    sqlite.write_bytes(b"not a database, but long enough to have a header " * 4)
    with pytest.raises(sqlite3.DatabaseError):
        entry.check_sqlite(f"sqlite:///{sqlite}")
    sqlite.unlink()
    sqlite3.connect(sqlite).close()
    entry.check_sqlite(f"sqlite:///{sqlite}")


def test_every_launcher_serves_the_entry_module(tmp_path: Path) -> None:
    for kind in ("granian", "gunicorn"):
        root = write(tmp_path / kind, APP)
        files = _render(root, _spec(kind))
        procfile = files["deploy/Procfile"]
        cmd = [line for line in files["deploy/Dockerfile"].splitlines() if line.startswith("CMD")]
        unit = files["deploy/systemd/hello.service"]
        for text in (procfile, cmd[0], unit):
            assert "flaskprod_wsgi:application" in text, text
            assert "create_app" not in text.split("flaskprod_wsgi", 1)[1], text
        assert "COPY . ." in files["deploy/Dockerfile"]
        assert "flaskprod_wsgi" not in files[".dockerignore"]
        compiled = compile(files["flaskprod_wsgi.py"], "flaskprod_wsgi.py", "exec")
        assert compiled.co_filename == "flaskprod_wsgi.py"
    # The app's own health: no entry module, the app's target everywhere.
    app_spec = spec_from_data({"app": {"target": "hello:create_app()", "name": "hello"}})
    files, _ = render_files(app_spec, {})
    assert "flaskprod_wsgi.py" not in files
    assert "hello:create_app" in files["deploy/Procfile"]


def test_render_check_knows_the_entry_module(tmp_path: Path) -> None:
    root = write(tmp_path / "hello", APP)
    (root / "flaskprod.toml").write_text(
        '[app]\ntarget = "hello:create_app(\'hi\')"\nname = "hello"\n'
        '[http]\nhealth_source = "kit"\n'
    )
    flaskprod = [str(VENV_BIN / "flaskprod")]
    rendered = subprocess.run(
        [*flaskprod, "render", "--no-import", str(root)], capture_output=True, text=True
    )
    assert rendered.returncode == 0, rendered.stderr
    assert "created    flaskprod_wsgi.py" in rendered.stdout
    (root / "flaskprod_wsgi.py").write_text("# changed by hand\n")
    check = subprocess.run(
        [*flaskprod, "render", "--check", "--no-import", str(root)], capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "flaskprod_wsgi.py: edited by hand since the last render" in check.stdout


def test_factory_arguments_must_be_literals() -> None:
    assert entry_app("hello:app").expression == "app"
    assert entry_app("hello:create_app('x', debug=False)").expression == (
        "create_app('x', debug=False)"
    )
    with pytest.raises(SpecError, match="must be literals"):
        entry_app("hello:create_app(__import__('os'))")
    # granian cannot call a factory with arguments itself; behind the entry module it can.
    assert json.loads(json.dumps(_spec("granian").app.target)).startswith("hello:create_app('")


def test_check_judges_the_app_behind_the_entry_module(tmp_path: Path) -> None:
    """check reads the kit's launchers (flaskprod_wsgi:application) but imports and
    judges the app itself; APP011 (no health routes) holds while the entry module is
    there, and names it once it is gone."""
    root = write(tmp_path / "hello", APP)
    flaskprod = str(VENV_BIN / "flaskprod")
    (root / "flaskprod.toml").write_text(
        '[app]\ntarget = "hello:create_app(\'hi\')"\nname = "hello"\n'
        '[http]\nhealth_source = "kit"\n'
    )
    subprocess.run([flaskprod, "render", str(root)], check=True, capture_output=True)
    checked = subprocess.run([flaskprod, "check", str(root)], capture_output=True, text=True)
    assert "app: hello:create_app('hi') (imported)" in checked.stdout, checked.stdout
    assert "APP011" not in checked.stdout and "APP000" not in checked.stdout
    (root / "flaskprod_wsgi.py").unlink()
    checked = subprocess.run([flaskprod, "check", str(root)], capture_output=True, text=True)
    assert (
        "http.health_source = 'kit' but flaskprod_wsgi.py is missing: run 'flaskprod render'"
    ) in checked.stdout


def _flask_app(own_proxy_fix: int = 0) -> Any:
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    app = Flask("t")
    if own_proxy_fix:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=own_proxy_fix)  # type: ignore[method-assign]
    return app


def test_behind_proxies_wraps_only_an_app_without_proxy_fix() -> None:
    """Two ProxyFix would trust twice the hops: the app's own one is left as it is."""
    plain = entry.behind_proxies(_flask_app(), 1)
    assert type(plain.wsgi_app).__name__ == "ProxyFix"
    assert (plain.wsgi_app.x_for, plain.wsgi_app.x_proto, plain.wsgi_app.x_host) == (1, 1, 0)
    own = _flask_app(own_proxy_fix=2)
    before = own.wsgi_app
    assert entry.behind_proxies(own, 1).wsgi_app is before
    untouched = _flask_app()
    method = untouched.wsgi_app
    assert entry.behind_proxies(untouched, 0).wsgi_app == method  # no proxy in front
    assert entry.behind_proxies(object, 1) is object  # not a Flask app: served as it is
