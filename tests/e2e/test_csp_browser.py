"""The CSP init derives from the templates, in a real browser (issue #12, item 8).

A page loads a script from a second loopback origin (another port: a CDN stand-in,
HTTPS with the same local certificate). Through ``flaskprod up`` (nginx sends the
header), headless Chromium runs the script under the derived policy, refuses it under
``default-src 'self'``, and runs it again, reporting, when that policy is report-only.
"""

from __future__ import annotations

import http.server
import re
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flaskprod_cli import run_flaskprod

from flaskprod.spec.load import load_spec
from flaskprod.stack.ca import ensure_ca, spki_sha256
from flaskprod.stack.ports import free_ports

pytestmark = [pytest.mark.services, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
LOADED = "loaded from the second origin"

APP = """\
from flask import Flask, render_template


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def index():
        return render_template("index.html")

    @app.get("/up")
    def up():
        return "ok"

    return app
"""

PAGE = """\
<!doctype html>
<title>cdn</title>
<link rel="stylesheet" href="{{{{ url_for('static', filename='site.css') }}}}">
<p id="out">not loaded</p>
<script src="https://127.0.0.1:{port}/lib.js"></script>
"""


class Cdn:
    """A second origin serving lib.js over HTTPS on loopback."""

    def __init__(self, port: int, folder: Path, tls: Path) -> None:
        (folder / "lib.js").write_text(
            f'document.getElementById("out").textContent = "{LOADED}";\n'
        )
        handler = _handler(folder)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls / "server.pem", tls / "server-key.pem")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(folder: Path) -> type[http.server.SimpleHTTPRequestHandler]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def project() -> Iterator[tuple[Path, int]]:
    base = Path(tempfile.mkdtemp(prefix="flaskprod-csp-"))
    base.chmod(0o755)  # nginx's workers read the static folder
    root = base / "cdnpage"
    (root / "cdnpage/templates").mkdir(parents=True)
    (root / "cdnpage/static").mkdir()
    (cdn_port,) = free_ports(1)
    (root / "cdnpage/__init__.py").write_text(APP)
    (root / "cdnpage/templates/index.html").write_text(PAGE.format(port=cdn_port))
    (root / "cdnpage/static/site.css").write_text("p { color: green }\n")
    (root / "requirements.txt").write_text("flask\ngunicorn\n")
    try:
        yield root, cdn_port
    finally:
        run_flaskprod("down", str(root))
        shutil.rmtree(base)


def serve(root: Path, *, csp: str | None = None, report_only: bool = False) -> int:
    """Restart the stack with the spec's CSP (or this one); its HTTPS port."""
    run_flaskprod("down", str(root))
    spec_file = root / "flaskprod.toml"
    text = re.sub(r'(?m)^(health_path|ready_path) = ".*"$', r'\1 = "/up"', spec_file.read_text())
    if csp is not None:
        text = re.sub(r'(?m)^csp = ".*"$', f'csp = "{csp}"', text)
    text = re.sub(
        r"(?m)^csp_report_only = \w+$",
        f"csp_report_only = {'true' if report_only else 'false'}",
        text,
    )
    spec_file.write_text(text)
    rendered = run_flaskprod("render", str(root))
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    https_port, http_port = free_ports(2)
    up = run_flaskprod(
        "up", str(root), "-d", "--embedded", "-y",
        "--https-port", str(https_port), "--http-port", str(http_port),
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    return https_port


def visit(root: Path, port: int) -> tuple[str, list[str]]:
    """The page's #out text after load, and the console messages."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    spki = spki_sha256(root / ".flaskprod/tls/server.pem")
    console: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run",
                f"--ignore-certificate-errors-spki-list={spki}",
            ],
        )  # fmt: skip
        try:
            page = browser.new_context(ignore_https_errors=False).new_page()
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"https://localhost:{port}/", wait_until="load")
            page.wait_for_timeout(300)  # a refused script leaves the text as it was
            text = page.inner_text("#out")
        finally:
            browser.close()
    return text, console


def test_the_derived_csp_runs_the_second_origin_and_self_only_blocks_it(
    project: tuple[Path, int],
) -> None:
    root, cdn_port = project
    init = run_flaskprod("init", str(root), "--server", "gunicorn")
    assert init.returncode == 0, init.stdout + init.stderr
    origin = f"https://127.0.0.1:{cdn_port}"
    spec = load_spec(root / "flaskprod.toml")
    assert spec.http.csp == f"default-src 'self'; script-src 'self' {origin}"
    assert spec.http.csp_report_only is False  # no inline script in the template

    port = serve(root)
    files = root.parent / "cdn"
    files.mkdir()
    cdn = Cdn(cdn_port, files, ensure_ca(root / ".flaskprod/tls").server_cert.parent)
    try:
        text, console = visit(root, port)
        assert text == LOADED, console
        assert not [m for m in console if "Content Security Policy" in m]

        port = serve(root, csp="default-src 'self'")
        text, console = visit(root, port)
        assert text == "not loaded"  # the control: the old default breaks the page
        refused = [m for m in console if origin in m and "has been blocked" in m]
        assert refused and "violates the following Content Security Policy" in refused[0]

        port = serve(root, csp="default-src 'self'", report_only=True)
        text, console = visit(root, port)
        assert text == LOADED  # reported, not enforced
        reported = [m for m in console if origin in m and "violates" in m]
        assert reported and "logged but no further action has been taken" in reported[0]
    finally:
        cdn.stop()
