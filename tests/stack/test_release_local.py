"""The release pipeline through its real local target (``flaskprod reload`` of an ``up``
stack): blue/green slots, real granian and nginx. One stack of a tiny app for the
module, with its own venv (a cached real one, linked as ``.venv``); each test ships a
new revision of the app and asserts the order of the pipeline and its failure handling:
a revision slow to get ready is switched to only once ready, one that never starts is
stopped while the old one keeps serving, one that needs a new venv runs on it."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from flaskprod_cli import FLASKPROD, run_flaskprod
from real_projects import venv_with

from flaskprod.errors import ExitCode
from flaskprod.release import Release, other_slot
from flaskprod.stack.ports import free_ports
from flaskprod.stack.process import is_alive
from flaskprod.stack.state import StackState, StateDir

pytestmark = pytest.mark.services

BASE = [f"{name}=={importlib.metadata.version(name)}" for name in ("flask", "granian")]
#: The new venv of the last test: one more package than the first one.
WITH_PACKAGING = [*BASE, f"packaging=={importlib.metadata.version('packaging')}"]

APP = """\
import os
import time
from pathlib import Path

from flask import Flask

VERSION = {version!r}
{extra}
app = Flask(__name__)


@app.get("/")
def index():
    return VERSION


@app.get("/health")
def health():
    return {{"status": "ok"}}


@app.get("/health/ready")
def ready():
    return {{"status": "ok", "version": VERSION}}
"""

#: The app holds at import until the test creates this file (at most 60 s): a new
#: revision that takes as long as the test wants to get ready.
HOLD = """
_gate = Path(__file__).with_name("gate")
_until = time.monotonic() + 60
while not _gate.exists() and time.monotonic() < _until:
    time.sleep(0.05)
"""


@dataclass
class Tiny:
    root: Path
    url: str
    trust: ssl.SSLContext

    @property
    def dirs(self) -> StateDir:
        return StateDir(self.root / ".flaskprod")

    def state(self) -> StackState:
        state = self.dirs.read()
        assert state is not None, "state.json is gone"
        return state

    def servers(self) -> list[tuple[int, str | None]]:
        return [(r.pid, r.slot) for r in self.state().services if r.name == "granian"]

    def get(self, path: str = "/") -> httpx.Response:
        return httpx.get(self.url + path, verify=self.trust, timeout=10)

    def write_app(self, version: str, extra: str = "") -> None:
        (self.root / "app.py").write_text(APP.format(version=version, extra=extra))

    def upstream(self) -> str:
        return (self.dirs.nginx / "upstream.conf").read_text()


def _reload(tiny: Tiny) -> subprocess.CompletedProcess[str]:
    return run_flaskprod("reload", str(tiny.root), timeout=120)


@pytest.fixture(scope="module")
def tiny() -> Iterator[Tiny]:
    base = Path(tempfile.mkdtemp(prefix="flaskprod-release-"))
    base.chmod(0o755)  # nginx's workers traverse it
    root = base / "tiny"
    root.mkdir()
    (root / ".venv").symlink_to(venv_with("release-base", BASE), target_is_directory=True)
    (root / "requirements.txt").write_text("".join(f"{line}\n" for line in BASE))
    project = Tiny(root, "", ssl.create_default_context())
    project.write_app("v1")
    init = run_flaskprod("init", str(root), "--name", "tiny")
    assert init.returncode == 0, init.stdout + init.stderr
    spec = root / "flaskprod.toml"
    text = spec.read_text().replace('engine = "postgresql"', 'engine = "sqlite"')
    spec.write_text(text.replace("[redis]\nenabled = true", "[redis]\nenabled = false"))
    assert 'kind = "granian"' in text
    assert run_flaskprod("render", str(root)).returncode == 0
    https, http = free_ports(2)
    up = run_flaskprod("up", str(root), "-d", "--https-port", str(https), "--http-port", str(http))
    assert up.returncode == 0, up.stdout + up.stderr
    project.url = f"https://localhost:{https}"
    project.trust = ssl.create_default_context(cafile=str(root / ".flaskprod/tls/ca.pem"))
    try:
        yield project
    finally:
        state = project.dirs.read()
        down = run_flaskprod("down", str(root))
        assert down.returncode == 0, down.stderr
        for record in state.services if state else []:
            assert not record.alive(), f"{record.name} (pid {record.pid}) still runs"
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Watch:
    """GETs of / through nginx in a thread (bounded in count and time): what clients
    saw during a reload."""

    tiny: Tiny
    stop: threading.Event = field(default_factory=threading.Event)
    seen: list[tuple[float, int | str, str]] = field(default_factory=list)

    def run(self) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(verify=self.tiny.trust, timeout=10) as client:
            while not self.stop.is_set() and time.monotonic() < deadline and len(self.seen) < 5000:
                try:
                    response = client.get(self.tiny.url + "/")
                    self.seen.append((time.monotonic(), response.status_code, response.text))
                except httpx.HTTPError as error:
                    self.seen.append((time.monotonic(), type(error).__name__, ""))
                time.sleep(0.02)


@pytest.fixture
def watch(tiny: Tiny) -> Iterator[Watch]:
    watching = Watch(tiny)
    thread = threading.Thread(target=watching.run, daemon=True)
    thread.start()
    yield watching
    watching.stop.set()
    thread.join(timeout=30)


def test_the_pipeline_knows_no_target() -> None:
    """release/pipeline.py is shared by up and deploy: it imports flaskprod's errors
    only (the local target is release/local.py, the SSH one deploy's)."""
    import ast

    import flaskprod.release.pipeline as pipeline

    tree = ast.parse(Path(pipeline.__file__).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flaskprod")
    }
    assert imported == {"flaskprod.errors"}, imported


def test_a_release_id_and_the_free_slot() -> None:
    release = Release.new("0123456789abcdef")
    assert re.fullmatch(r"\d{8}T\d{6}Z-0123456789ab", release.id), release.id
    assert Release.new("").id.endswith("-local")
    assert [other_slot(None), other_slot("a"), other_slot("b")] == ["a", "b", "a"]


def test_a_slow_revision_is_switched_to_only_once_ready(tiny: Tiny, watch: Watch) -> None:
    assert tiny.get().text == "v1"
    ((old_pid, old_slot),) = tiny.servers()
    new_slot = other_slot(old_slot)
    assert f"granian-{old_slot}.sock" in tiny.upstream()
    tiny.write_app("v2", extra=HOLD)
    reload = subprocess.Popen(
        [FLASKPROD, "reload", str(tiny.root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(tiny.servers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tiny.servers()) == 2, "the new slot's server was not started"
        held_from = time.monotonic()
        time.sleep(2.0)  # the new server runs, its app is not ready: nothing switches
        assert reload.poll() is None, "the reload did not wait for the new slot"
        assert tiny.state().slot == old_slot and f"granian-{old_slot}.sock" in tiny.upstream()
        assert tiny.get().text == "v1"
        (tiny.root / "gate").touch()  # the new revision gets ready
        out, err = reload.communicate(timeout=90)
    finally:
        if reload.poll() is None:
            reload.kill()  # our own child, by pid
            reload.wait(timeout=10)
        (tiny.root / "gate").touch()
    assert reload.returncode == 0, out + err
    # the pipeline's order, as it reported it
    steps = [
        f"starting on slot {new_slot}",
        f"slot {new_slot} serving",
        f"new requests go to slot {new_slot}",
        "old workers finished their requests and left",
        f"the old server (slot {old_slot}, pid {old_pid}) stopped and left",
        f"live on slot {new_slot}",
    ]
    at = [out.find(step) for step in steps]
    assert -1 not in at and at == sorted(at), out
    watch.stop.set()
    time.sleep(0.1)
    assert tiny.get().text == "v2"
    assert tiny.state().slot == new_slot and f"granian-{new_slot}.sock" in tiny.upstream()
    assert [slot for _pid, slot in tiny.servers()] == [new_slot]
    assert not is_alive(old_pid)
    # clients: every request answered, v1 all the while the new slot was held
    assert watch.seen and all(status == 200 for _at, status, _text in watch.seen), [
        s for s in watch.seen if s[1] != 200
    ][:5]
    held = [text for at, _status, text in watch.seen if held_from <= at <= held_from + 2.0]
    assert held and set(held) == {"v1"}
    assert watch.seen[-1][2] == "v2"
    ledger = json.loads((tiny.dirs.root / "releases.json").read_text())
    assert ledger[0]["state"] == "live" and ledger[0]["slot"] == new_slot


def test_a_revision_that_does_not_start_leaves_the_old_one_serving(
    tiny: Tiny, watch: Watch
) -> None:
    ((live_pid, live_slot),) = tiny.servers()
    before = tiny.get().text
    tiny.write_app("v-broken", extra="raise RuntimeError('broken on purpose')\n")
    broken = _reload(tiny)
    assert broken.returncode == ExitCode.SERVICE, broken.stdout + broken.stderr
    # one line saying what failed and that the old release serves, then the app's own lines
    first = broken.stderr.splitlines()[0]
    assert "failed at ready" in first and "did not start" in first, broken.stderr
    assert "keeps serving" in first
    assert "RuntimeError: broken on purpose" in broken.stderr
    started = re.search(r"starting on slot (\w) \(pid (\d+)\)", broken.stdout)
    assert started and started.group(1) == other_slot(live_slot), broken.stdout
    assert not is_alive(int(started.group(2))), "the broken revision's server still runs"
    assert tiny.servers() == [(live_pid, live_slot)]
    assert tiny.state().slot == live_slot and f"granian-{live_slot}.sock" in tiny.upstream()
    assert tiny.get().text == before
    watch.stop.set()
    assert all(status == 200 and text == before for _at, status, text in watch.seen)
    ledger = json.loads((tiny.dirs.root / "releases.json").read_text())
    assert ledger[0]["state"] == "failed" and ledger[1]["state"] == "live"
    assert run_flaskprod("status", str(tiny.root)).returncode == 0


def test_a_site_nginx_refuses_is_not_switched_to(tiny: Tiny, watch: Watch) -> None:
    """The new slot got ready, but the site (edited by hand: up runs it as it is) fails
    ``nginx -t`` at the switch: its files are put back, the new slot stopped, the old
    one serves; the exit code is nginx's refusal's (a usage error)."""
    ((live_pid, live_slot),) = tiny.servers()
    before = tiny.get().text
    files = [tiny.dirs.nginx / name for name in ("upstream.conf", "site.conf", "nginx.conf")]
    contents = [path.read_text() for path in files]
    site = tiny.root / "deploy" / "nginx" / "tiny.conf"
    rendered = site.read_text()
    tiny.write_app("v-unseen")
    site.write_text(rendered.replace("server {", "server {\n    no_such_directive on;", 1))
    try:
        refused = _reload(tiny)
    finally:
        site.write_text(rendered)
    assert refused.returncode == ExitCode.USAGE, refused.stdout + refused.stderr
    assert "failed at switch" in refused.stderr and "no_such_directive" in refused.stderr
    assert "slot " + other_slot(live_slot) + " serving" in refused.stdout  # it was ready
    assert [path.read_text() for path in files] == contents
    assert tiny.servers() == [(live_pid, live_slot)] and tiny.state().slot == live_slot
    assert tiny.get().text == before
    watch.stop.set()
    assert all(status == 200 and text == before for _at, status, text in watch.seen)


def test_a_revision_on_a_new_venv_runs_with_it(tiny: Tiny, watch: Watch) -> None:
    """The venv replaced by another one with one more package (what a dependency change
    does): the new slot runs the project's interpreter as it is now."""
    venv = tiny.root / ".venv"
    venv.unlink()
    venv.symlink_to(venv_with("release-packaging", WITH_PACKAGING), target_is_directory=True)
    tiny.write_app("v3", extra="import packaging\nVERSION += '+packaging ' + packaging.__version__")
    reload = _reload(tiny)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    expected = f"v3+packaging {importlib.metadata.version('packaging')}"
    assert tiny.get().text == expected
    watch.stop.set()
    assert all(status == 200 for _at, status, _text in watch.seen)
    assert watch.seen[-1][2] == expected
