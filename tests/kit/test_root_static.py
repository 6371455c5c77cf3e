"""Static files at / (``static_url_path=""``, as docker-flask-example serves them):
the kit's nginx site has one ``location /`` that serves a file when there is one and
the app otherwise; init tests what it rendered with nginx -t and never writes a site
nginx refuses (issue #12, item 5). The same app reads its uploads folder from
UPLOAD_FOLDER, which init finds and every target sets (item 9)."""

from __future__ import annotations

import http.client
import re
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flaskprod_cli import run_flaskprod

from flaskprod.kit.verify import nginx_binary, nginx_refusal
from flaskprod.spec.load import load_spec
from flaskprod.stack.ports import free_ports

APP = """\
import os
from pathlib import Path

from flask import Flask, request


def create_app():
    app = Flask(__name__, static_folder="static", static_url_path="")
    app.config["UPLOAD_FOLDER"] = os.environ.get("UPLOAD_FOLDER", "uploads")

    @app.post("/upload")
    def upload():
        target = Path(app.config["UPLOAD_FOLDER"]) / "note.txt"
        target.write_bytes(request.get_data())
        return "stored", 201

    @app.get("/")
    def index():
        return "home from the app"

    @app.get("/up")
    def up():
        return "ok"

    return app
"""


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    # nginx's workers (nobody, under root) must reach the static folder: with files at
    # /, every request's try_files looks there. pytest's tmp folders are 0700.
    base = Path(tempfile.mkdtemp(prefix="flaskprod-rootstatic-"))
    base.chmod(0o755)
    try:
        yield _initialised(base / "hello")
    finally:
        shutil.rmtree(base)


def _initialised(root: Path) -> Path:
    (root / "hello/static").mkdir(parents=True)
    (root / "hello/__init__.py").write_text(APP)
    (root / "hello/static/site.css").write_text("body { color: red }\n")
    (root / "requirements.txt").write_text("flask\ngunicorn\n")
    result = run_flaskprod("init", str(root), "--server", "gunicorn")
    assert result.returncode == 0, result.stderr
    assert "static / -> hello/static" in result.stdout
    return root


def locations(site: str) -> list[str]:
    return re.findall(r"^\s*location\s+(.*?)\s*\{", site, flags=re.MULTILINE)


def test_one_location_slash_per_server(project: Path) -> None:
    spec = load_spec(project / "flaskprod.toml")
    assert spec.paths.static_url == "/"
    site = (project / "deploy/nginx/hello.conf").read_text()
    https = site.split("listen 443 ssl http2;", 1)[1]
    assert locations(https).count("/") == 1
    assert "try_files $uri @hello_app;" in https and "location @hello_app" in https


def test_nginx_refuses_what_the_old_kit_rendered(project: Path) -> None:
    """The control: two ``location /`` (what the kit rendered before) fail nginx -t,
    which init now runs on every site it renders."""
    binary = nginx_binary()
    assert binary, "nginx is needed: apt-get install nginx"
    spec = load_spec(project / "flaskprod.toml")
    site = (project / "deploy/nginx/hello.conf").read_text()
    assert nginx_refusal(site, spec, binary) is None
    doubled = site.replace(
        "    location @hello_app {", "    location ^~ / {\n        return 404;\n    }\n\n"
        "    location @hello_app {",
    )  # fmt: skip
    assert nginx_refusal(doubled, spec, binary) == 'duplicate location "/"'


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[int]:
    """``flaskprod up -d`` of the kit (SQLite, no Redis), the app's /up as its health."""
    spec_file = project / "flaskprod.toml"
    text = spec_file.read_text()
    text = re.sub(r'(?m)^(health_path|ready_path) = ".*"$', r'\1 = "/up"', text)
    spec_file.write_text(text)
    assert run_flaskprod("render", str(project)).returncode == 0
    https_port, http_port = free_ports(2)
    up = run_flaskprod(
        "up", str(project), "-d", "--embedded", "-y",
        "--https-port", str(https_port), "--http-port", str(http_port),
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield https_port
    finally:
        run_flaskprod("down", str(project))


def get(
    port: int, path: str, method: str = "GET", body: bytes | None = None
) -> tuple[int, dict[str, str], str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    connection.request(method, path, body=body)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_live_static_file_and_app_share_the_root(served: int) -> None:
    status, headers, body = get(served, "/site.css")
    assert (status, body) == (200, "body { color: red }\n")
    assert headers["content-type"].startswith("text/css")
    # not fingerprinted: revalidated, never immutable
    assert headers["cache-control"] == "public, max-age=3600, must-revalidate"
    assert headers["x-content-type-options"] == "nosniff"  # security headers kept
    assert get(served, "/")[::2] == (200, "home from the app")
    assert get(served, "/missing.css")[0] == 404  # the app's answer


def test_live_uploads_go_where_nginx_serves_them(project: Path, served: int) -> None:
    """The app reads UPLOAD_FOLDER (paths.media_env): up sets it to the media folder,
    which nginx serves at /media/ (the kit does the same on servers and in containers)."""
    assert load_spec(project / "flaskprod.toml").paths.media_env == ["UPLOAD_FOLDER"]
    status, _, body = get(served, "/upload", "POST", b"uploaded through the app")
    assert (status, body) == (201, "stored")
    assert get(served, "/media/note.txt")[::2] == (200, "uploaded through the app")


def test_init_writes_nothing_nginx_refuses(tmp_path: Path) -> None:
    """A domain nginx cannot parse gets through the spec; nginx -t stops it, before
    flaskprod.toml or any file of the kit is written."""
    root = tmp_path / "bad"
    root.mkdir()
    (root / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    result = run_flaskprod("init", str(root), "--no-import", "--domain", "ex ample;")
    assert result.returncode == 2
    assert result.stderr == (
        "flaskprod: error: deploy/nginx/bad.conf: nginx -t refuses the rendered site: "
        'unknown directive ";"; nothing was written (change the setting it names in '
        "flaskprod.toml, or report it as a bug)\n"
    )
    assert [p.name for p in root.iterdir()] == ["app.py"]
