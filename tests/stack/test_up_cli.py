"""`flaskprod up/down/status/logs` as a user runs them, on a tiny app (SQLite, no
Redis: fast), and each way they refuse: no spec, missing nginx, a taken port, a second
`up`, a failing migration, an app that never gets ready. Real nginx and granian (the
default app server); the up/status/logs/reload/down cycle with gunicorn too."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flaskprod_cli import FLASKPROD, run_flaskprod

from flaskprod.errors import ExitCode
from flaskprod.stack.ports import free_port, free_ports
from flaskprod.stack.process import is_alive
from flaskprod.stack.state import StateDir

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench.shop_gunicorn import switch_to_gunicorn  # noqa: E402

pytestmark = pytest.mark.services


APP = """
import os
from flask import Flask
from flaskprod import Production

app = Flask(__name__)
Production(app)


@app.get("/")
def index():
    return "<h1>tiny</h1>"
"""


def run(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_flaskprod(*args, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def tiny_template() -> Iterator[Path]:
    """A tiny app with its spec (SQLite, no Redis) and rendered kit, made once."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-up-tpl-"))
    project = base / "tiny"
    (project / "static").mkdir(parents=True)
    (project / "app.py").write_text(APP)
    (project / "static" / "site.css").write_text("h1 { color: red }\n")
    result = run("init", str(project), "--name", "tiny")
    assert result.returncode == 0, result.stderr
    spec = project / "flaskprod.toml"
    text = spec.read_text().replace('engine = "postgresql"', 'engine = "sqlite"')
    spec.write_text(text.replace("[redis]\nenabled = true", "[redis]\nenabled = false"))
    assert run("render", str(project)).returncode == 0
    yield project
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tiny(tiny_template: Path) -> Iterator[Path]:
    """A fresh copy (own state folder) in a folder nginx's workers can traverse."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-up-"))
    base.chmod(0o755)
    project = base / "tiny"
    shutil.copytree(tiny_template, project)
    yield project
    state = StateDir(project / ".flaskprod").read()
    if state is not None:  # a test failed half-way: stop exactly what it started
        run("down", str(project))
        for record in state.services:
            assert not record.alive(), f"{record.name} still runs"
    shutil.rmtree(base, ignore_errors=True)


def _ports() -> list[str]:
    https, http = free_ports(2)
    return ["--https-port", str(https), "--http-port", str(http)]


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_up_detached_status_logs_reload_down(tiny: Path, server: str) -> None:
    if server == "gunicorn":  # the spec init wrote says granian, the default
        switch_to_gunicorn(tiny)
        assert run("render", str(tiny)).returncode == 0
    ports = _ports()
    up = run("up", str(tiny), "-d", *ports)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "SQLite" in up.stdout and "ca.pem" in up.stdout
    url = f"https://localhost:{ports[1]}"
    assert "ready in" in up.stdout and url in up.stdout
    ca = tiny / ".flaskprod" / "tls" / "ca.pem"
    trust = ssl.create_default_context(cafile=str(ca))
    assert httpx.get(url + "/", verify=trust).text == "<h1>tiny</h1>"

    status = run("status", str(tiny))
    assert status.returncode == 0, status.stdout + status.stderr
    assert server in status.stdout and "nginx" in status.stdout and "ready (200)" in status.stdout

    again = run("up", str(tiny), "-d", *_ports())
    assert again.returncode == ExitCode.REFUSED
    assert "already runs" in again.stderr and again.stderr.count("\n") == 1

    logs = run("logs", str(tiny), server, "-n", "5")
    assert logs.returncode == 0 and f"{server} |" in logs.stdout

    # New code is served after a reload (a new server on the other slot imports it).
    app = tiny / "app.py"
    app.write_text(app.read_text().replace("<h1>tiny</h1>", "<h1>tiny v2</h1>"))
    reload = run("reload", str(tiny))
    assert reload.returncode == 0, reload.stderr
    assert "serving" in reload.stdout and "left" in reload.stdout
    assert httpx.get(url + "/", verify=trust).text == "<h1>tiny v2</h1>"
    # At once again: back to the first slot, whose old server must be gone.
    app.write_text(app.read_text().replace("tiny v2", "tiny v3"))
    again_reload = run("reload", str(tiny))
    assert again_reload.returncode == 0, again_reload.stderr
    assert httpx.get(url + "/", verify=trust).text == "<h1>tiny v3</h1>"
    # Code that does not import: the reload fails, the running version keeps serving
    # (the new slot's server never gets ready and is stopped), the app's error shown.
    app.write_text(app.read_text() + "\nraise RuntimeError('broken on purpose')\n")
    broken = run("reload", str(tiny))
    assert broken.returncode == ExitCode.SERVICE, broken.stdout + broken.stderr
    assert "did not start" in broken.stderr
    assert "broken on purpose" in broken.stderr, broken.stderr  # the server's own lines
    assert httpx.get(url + "/", verify=trust).text == "<h1>tiny v3</h1>"
    assert run("status", str(tiny)).returncode == 0

    pids = [r.pid for r in StateDir(tiny / ".flaskprod").read().services]  # type: ignore[union-attr]
    down = run("down", str(tiny))
    assert down.returncode == 0
    assert not [pid for pid in pids if is_alive(pid)]
    assert run("status", str(tiny)).returncode == ExitCode.SERVICE
    assert (tiny / ".flaskprod" / "app.sqlite3").exists()  # data is kept
    wipe = run("down", str(tiny), "--volumes", "--yes")
    assert wipe.returncode == 0 and "deleted" in wipe.stdout
    assert not (tiny / ".flaskprod" / "app.sqlite3").exists()
    assert (tiny / ".flaskprod" / "tls" / "ca.pem").exists()  # the CA is not data


def test_foreground_up_stops_cleanly_on_ctrl_c(tiny: Path) -> None:
    ports = _ports()
    process = subprocess.Popen(
        [FLASKPROD, "up", str(tiny), *ports],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "Ctrl-C" in line or not line:
            break
    assert any("ready in" in line for line in lines), "".join(lines)
    ca = tiny / ".flaskprod" / "tls" / "ca.pem"
    trust = ssl.create_default_context(cafile=str(ca))
    httpx.get(f"https://localhost:{ports[1]}/", verify=trust).raise_for_status()
    first = [r.pid for r in StateDir(tiny / ".flaskprod").read().services]  # type: ignore[union-attr]
    # A reload under the foreground up: its old server leaving is not a service dying
    # (the supervisor follows the live slot), and Ctrl-C then stops the new one too.
    app = tiny / "app.py"
    app.write_text(app.read_text().replace("<h1>tiny</h1>", "<h1>tiny v2</h1>"))
    reload = run("reload", str(tiny))
    assert reload.returncode == 0, reload.stdout + reload.stderr
    time.sleep(1.0)  # a few of the supervisor's ticks
    assert process.poll() is None, "the foreground up stopped after a reload"
    assert httpx.get(f"https://localhost:{ports[1]}/", verify=trust).text == "<h1>tiny v2</h1>"
    pids = [r.pid for r in StateDir(tiny / ".flaskprod").read().services]  # type: ignore[union-attr]
    assert set(pids) != set(first)  # the new slot's server
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "granian | " in rest  # merged logs, prefixed by service
    assert "nginx: stopped" in rest and "granian: stopped" in rest
    assert not [pid for pid in pids if is_alive(pid)]
    assert not (tiny / ".flaskprod" / "state.json").exists()


def test_no_spec_explains_instead_of_prompting(tmp_path: Path) -> None:
    result = run("up", str(tmp_path), "--yes")
    assert result.returncode == ExitCode.USAGE
    assert "flaskprod init" in result.stderr and "Traceback" not in result.stderr


def test_missing_nginx_says_how_to_install_it(tiny: Path, tmp_path: Path) -> None:
    # A PATH without nginx, and a python that pretends the usual places are empty.
    code = (
        "import flaskprod.stack.nginx as n; n.NGINX_CANDIDATES = ();"
        "from flaskprod.cli import main; main()"
    )
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))
    result = subprocess.run(
        [sys.executable, "-c", code, "up", str(tiny), "-d", *_ports()],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == ExitCode.ENVIRONMENT, result.stderr
    assert "apt-get install nginx" in result.stderr


def test_a_taken_port_is_named(tiny: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = run(
            "up", str(tiny), "-d", "--https-port", str(port), "--http-port", str(free_port())
        )
    assert result.returncode == ExitCode.ENVIRONMENT
    assert f"port {port} is already in use" in result.stderr
    assert not (tiny / ".flaskprod" / "state.json").exists()


def test_a_failing_migration_stops_up_with_its_error(tiny: Path) -> None:
    migrations = tiny / "migrations"
    migrations.mkdir()
    (migrations / "env.py").write_text("raise RuntimeError('the migration is broken on purpose')\n")
    result = run("up", str(tiny), "-d", *_ports())
    assert result.returncode == ExitCode.SERVICE
    assert "migrations failed" in result.stderr
    assert "broken on purpose" in result.stderr or "db" in result.stderr
    assert not (tiny / ".flaskprod" / "state.json").exists()


def test_release_commands_run_in_the_app_environment_before_serving(tiny: Path) -> None:
    app = tiny / "app.py"
    app.write_text(
        app.read_text()
        + """

@app.cli.command("mark")
def mark():
    from pathlib import Path
    Path("released.txt").write_text(os.environ["DATABASE_URL"])
"""
    )
    result = run("up", str(tiny), "-d", "--release", "flask mark", *_ports())
    try:
        assert result.returncode == 0, result.stderr
        assert "release: flask mark" in result.stdout + result.stderr
        # the command ran from the project folder with the stack's database
        assert (tiny / "released.txt").read_text().startswith("sqlite:")
    finally:
        run("down", str(tiny))


def test_a_failing_release_command_stops_up_with_its_error(tiny: Path) -> None:
    result = run("up", str(tiny), "-d", "--release", "flask no-such-command", *_ports())
    assert result.returncode == ExitCode.SERVICE, result.stdout + result.stderr
    assert "release failed: 'flask no-such-command' exited with 2" in result.stderr
    assert "No such command" in result.stderr  # the tail of the command's log
    assert not (tiny / ".flaskprod" / "state.json").exists()


def test_an_app_that_never_gets_ready_is_named_with_its_log(tiny: Path) -> None:
    app = tiny / "app.py"
    app.write_text(
        app.read_text().replace(
            "Production(app)", "Production(app, READY_PATH='/not-here', HEALTH_PATH='/hz')"
        )
        + "\n\n@app.get('/health/ready')\ndef never_ready():\n    return 'starting', 503\n"
    )
    result = run("up", str(tiny), "-d", "--timeout", "3", *_ports())
    assert result.returncode == ExitCode.SERVICE, result.stdout + result.stderr
    assert "granian" in result.stderr and "not ready within 3s" in result.stderr
    assert "  | " in result.stderr  # the tail of its log follows
    assert not (tiny / ".flaskprod" / "state.json").exists()


def test_a_health_path_the_app_does_not_have_is_named_at_once(tiny: Path) -> None:
    """A 404 is the app's answer, not a slow start: up says which key to fix, at once,
    instead of waiting out --timeout and blaming the app server."""
    app = tiny / "app.py"
    app.write_text(
        app.read_text().replace(
            "Production(app)", "Production(app, READY_PATH='/not-here', HEALTH_PATH='/hz')"
        )
    )
    started = time.monotonic()
    result = run("up", str(tiny), "-d", "--timeout", "30", *_ports())
    assert result.returncode == ExitCode.USAGE, result.stdout + result.stderr
    assert time.monotonic() - started < 20
    assert (
        "flaskprod.toml: http.ready_path = '/health/ready': the app has no such route "
        "(it answered 404 through nginx; the stack is stopped)"
    ) in result.stderr
    assert 'http.health_source = "kit"' in result.stderr
    assert "granian:" not in result.stderr and "not ready within" not in result.stderr
    assert not (tiny / ".flaskprod" / "state.json").exists()


def test_an_app_without_health_routes_comes_up_behind_the_kits(tiny: Path) -> None:
    """No Production, no health route: with health_source = "kit" (what init writes for
    such an app) up renders flaskprod_wsgi.py, serves it, and gates on its readiness."""
    app = tiny / "app.py"
    app.write_text(app.read_text().replace("from flaskprod import Production\n", ""))
    app.write_text(app.read_text().replace("Production(app)\n", ""))
    spec = tiny / "flaskprod.toml"
    spec.write_text(spec.read_text().replace('health_source = "app"', 'health_source = "kit"'))
    ports = _ports()
    up = run("up", str(tiny), "-d", *ports)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "granian: flaskprod_wsgi:application on unix:" in up.stdout
    assert (tiny / "flaskprod_wsgi.py").is_file()
    url = f"https://localhost:{ports[1]}"
    trust = ssl.create_default_context(cafile=str(tiny / ".flaskprod" / "tls" / "ca.pem"))
    ready = httpx.get(url + "/health/ready", verify=trust)
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["status"] == "ok"  # up's SQLite
    assert httpx.get(url + "/", verify=trust).text == "<h1>tiny</h1>"
    assert run("down", str(tiny)).returncode == 0


def test_down_volumes_needs_confirmation_without_a_terminal(tiny: Path) -> None:
    (tiny / ".flaskprod").mkdir()
    result = run("down", str(tiny), "--volumes")
    assert result.returncode == ExitCode.REFUSED
    assert "--yes" in result.stderr


def test_print_config_shows_the_overlay_and_starts_nothing(tiny: Path) -> None:
    result = run("up", str(tiny), "--print-config", "--https-port", "9443", "--http-port", "9080")
    assert result.returncode == 0, result.stderr
    assert "# granian: runs the systemd unit's command" in result.stdout
    assert "--uds " in result.stdout
    assert "+    listen 127.0.0.1:9443 ssl http2;" in result.stdout
    assert "-    listen 443 ssl http2;" in result.stdout
    # the upstream's server line lives in its own file, which a reload's switch rewrites
    assert "upstream.conf (the live slot's app server)" in result.stdout
    assert re.search(r"server unix:\S+/granian-a\.sock fail_timeout=0;", result.stdout)
    assert not (tiny / ".flaskprod" / "state.json").exists()


def test_no_spec_on_a_terminal_offers_init_then_goes_on(tmp_path: Path) -> None:
    import pty
    import select

    (tmp_path / "app.py").write_text(APP)
    pid, fd = pty.fork()
    if pid == 0:  # the child: flaskprod on a terminal
        try:
            os.execv(FLASKPROD, [FLASKPROD, "up", str(tmp_path), "--print-config"])  # noqa: S606
        finally:
            os._exit(127)  # never return into pytest in the child
    output, answered = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
        if b"Run 'flaskprod init' now?" in output and not answered:
            os.write(fd, b"y\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    assert answered, output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    assert (tmp_path / "flaskprod.toml").is_file()
    assert b"--uds " in output  # init ran, then up went on with the new spec


IMAGE_VARIABLE_APP = """
import os
from flask import Flask
from flaskprod import Production

app = Flask(__name__)
Production(app)


@app.get("/")
def index():
    # what docker-flask-example shows: a variable only the python:* image sets
    return os.environ["PYTHON_VERSION"]
"""


@pytest.fixture
def imagevar() -> Iterator[Path]:
    """A project whose view reads PYTHON_VERSION, in a folder nginx's workers can
    traverse; whatever a failed test left running is stopped by pid (down)."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-up-imagevar-"))
    base.chmod(0o755)
    project = base / "imagevar"
    project.mkdir()
    (project / "app.py").write_text(IMAGE_VARIABLE_APP)
    yield project
    if StateDir(project / ".flaskprod").read() is not None:
        run("down", str(project))
    shutil.rmtree(base, ignore_errors=True)


def test_an_app_reading_the_python_images_variables_gets_them_everywhere(
    imagevar: Path,
) -> None:
    """docker-flask-example reads os.environ["PYTHON_VERSION"] in a view: init lists it,
    the server's env file sets it to the deploy Python, compose and Kubernetes leave it
    to the image, and up gives it the project's interpreter version (no 500 where
    nobody sets it)."""
    project = imagevar
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_VERSION"}
    assert run("init", str(project), "--name", "imagevar", env=env).returncode == 0
    spec = project / "flaskprod.toml"
    text = spec.read_text()
    assert 'PYTHON_VERSION = "{python}"' in text
    text = text.replace('engine = "postgresql"', 'engine = "sqlite"')
    spec.write_text(text.replace("[redis]\nenabled = true", "[redis]\nenabled = false"))
    assert run("render", str(project)).returncode == 0
    image = next(
        line.split('"')[1] for line in text.splitlines() if line.startswith("python_image")
    )  # python:3.X.Y-slim-...: the server's Python is the image's
    release = image.removeprefix("python:").split("-")[0]
    assert f"\nPYTHON_VERSION={release}\n" in (project / "deploy" / ".env.example").read_text()
    assert "PYTHON_VERSION" not in (project / "deploy" / "compose.yaml").read_text()
    assert "PYTHON_VERSION" not in (project / "deploy" / "k8s" / "settings.yaml").read_text()
    ports = _ports()
    up = run("up", str(project), "-d", *ports, env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    trust = ssl.create_default_context(cafile=str(project / ".flaskprod" / "tls" / "ca.pem"))
    home = httpx.get(f"https://localhost:{ports[1]}/", verify=trust)
    assert home.status_code == 200
    assert home.text == ".".join(map(str, sys.version_info[:3]))  # the app's interpreter
    assert run("down", str(project)).returncode == 0
