"""``flaskprod check --host`` on this machine: against the shop under ``flaskprod up``
(started by this module with server.kind = "gunicorn": the walks below name gunicorn),
against a hand-made "careless" deployment (a gunicorn run as nobody on a public port, a
broken nginx config, a world-readable secret, a certificate expiring in three days, a
dead nginx), and in server mode against a stand-in /etc.
The 502 walk runs LAST: it stops the stack's gunicorn. Cases are declared with
``@pytest.mark.covers`` (see tests/check/test_rule_fixtures.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "live"))  # live_support

from live_support import (
    NGINX,
    SHOP,
    Shop,
    _leaf,
    _traversable_dir,
    describe,
    flaskprod,
    ids,
    run_live,
    start_shop,
)

from flaskprod.check.model import Finding, Level
from flaskprod.stack import process
from flaskprod.stack.ca import ensure_ca
from flaskprod.stack.gunicorn import gunicorn_executable
from flaskprod.stack.ports import free_port, free_ports
from flaskprod.stack.state import ServiceRecord, StackState, StateDir

PLAIN_APP = Path(__file__).resolve().parent / "plainapp"


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    yield from start_shop("flaskprod-host-shop-", gunicorn=True)


def host(root: Path, **options: object) -> list[Finding]:
    return run_live(root, host=True, **options).findings


def by_id(findings: list[Finding]) -> dict[str, list[Finding]]:
    found: dict[str, list[Finding]] = {}
    for finding in findings:
        found.setdefault(finding.id, []).append(finding)
    return found


@pytest.fixture(scope="module")
def healthy(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    """The running stack's host findings, with the firewall made unreadable on purpose:
    a stand-in ufw that refuses as ufw refuses a user who is not root, found before any
    ufw or nft this machine has (what HST008 then says is set up here, not assumed)."""
    bin_dir = tmp_path_factory.mktemp("refusing-ufw")
    _refusing_ufw(bin_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        return host(shop.project)


def _refusing_ufw(folder: Path) -> None:
    script = folder / "ufw"
    script.write_text(
        "#!/bin/sh\necho 'ERROR: You need to be root to run this script' >&2\nexit 1\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.covers(
    "HST001:pass",
    "HST003:pass",
    "HST004:pass",
    "HST005:pass",
    "HST007:pass",
    "HST009:pass",
    "HST020:pass",
    "HST006:fail",
    "HST010:fail",
    "HST012:fail",
)
def test_the_running_stack(healthy: list[Finding], shop: Shop) -> None:
    found = by_id(healthy)
    text = describe(healthy)
    for rule_id in ("HST001", "HST003", "HST004", "HST005", "HST007", "HST009", "HST020"):
        assert rule_id not in found, text
    if os.geteuid() == 0:  # gunicorn of `flaskprod up` keeps the user that started it
        assert "gunicorn pid" in found["HST006"][0].message, text
    assert str(shop.dirs.logs / "gunicorn.log") in found["HST010"][0].message, text
    assert "no backup folder" in found["HST012"][0].message, text
    # what this machine cannot show is said, at info level, with the reason
    assert found["HST008"][0].level == Level.INFO, text
    assert found["HST008"][0].message == (
        "could not check: ufw status: ERROR: You need to be root to run this script"
    ), text
    assert found["HST002"][0].message.startswith("could not check: ")


def test_cli_url_and_host_in_one_report(shop: Shop) -> None:
    done = flaskprod(
        "check", str(shop.project), "--host", "--url", shop.url, "--ca", str(shop.ca),
        "--format", "json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # HST010 (logs not rotated) is a warning
    report = json.loads(done.stdout)
    assert {f["layer"] for f in report["findings"]} == {"host"}  # the shop passes --url
    assert report["summary"]["observatory"]["grade"] in ("A+", "A")
    assert "HST010" in {f["id"] for f in report["findings"]}
    assert all(f["url"].endswith("#" + f["id"].lower()) for f in report["findings"])


@pytest.mark.covers("HST012:pass")
def test_a_fresh_backup_satisfies_the_schedule(shop: Shop) -> None:
    made = flaskprod("backup", str(shop.project), "--no-media")
    assert made.returncode == 0, made.stdout + made.stderr
    findings = host(shop.project)
    assert "HST012" not in ids(findings), describe(findings)


@pytest.mark.covers("HST010:pass")
def test_a_logrotate_entry_covers_the_logs(shop: Shop, tmp_path: Path) -> None:
    rotate = tmp_path / "etc" / "logrotate.d"
    rotate.mkdir(parents=True)
    (rotate / "shop").write_text(f"{shop.dirs.logs}/*.log {{\n    daily\n    rotate 14\n}}\n")
    findings = host(shop.project, host_root=str(tmp_path))
    assert "HST010" not in ids(findings), describe(findings)


@pytest.mark.covers("HST011:fail", "HST011:pass")
def test_disk_threshold(shop: Shop) -> None:
    usage = shutil.disk_usage(shop.dirs.logs)
    used = 100 * (usage.total - usage.free) / usage.total
    over = host(shop.project, disk_full_percent=max(used - 1, 0.5))
    under = host(shop.project, disk_full_percent=min(used + 5, 99.9))
    full = [f for f in over if f.id == "HST011"]
    assert full and f"{used:.0f}% used" in full[0].message, describe(over)
    assert "HST011" not in ids(under), describe(under)


# -- a careless deployment, made by hand ------------------------------------------------


@pytest.fixture(scope="module")
def careless() -> Iterator[Path]:
    """A project whose state.json records a gunicorn running as nobody on 0.0.0.0, an
    nginx that is gone, a broken nginx.conf, a world-readable secret and a certificate
    expiring in three days."""
    base = _traversable_dir("flaskprod-host-careless-")
    project = base / "project"
    dirs = StateDir(project / ".flaskprod")
    dirs.prepare()
    port = free_port()
    # as nobody (Debian's group for it is nogroup), via setpriv like stack.process does
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    app = process.start(
        [
            *(as_nobody if os.geteuid() == 0 else []),
            *gunicorn_executable(),
            "--bind",
            f"0.0.0.0:{port}",
            "--workers",
            "1",
            "--chdir",
            str(PLAIN_APP),
            "--no-control-socket",
            "app:app",
        ],
        name="plainapp",
        log_path=base / "gunicorn.log",
        die_with_parent=True,
    )
    try:
        app.wait_ready(lambda: _listening(port), timeout=30)
        (dirs.nginx / "nginx.conf").write_text("events {}\nhttp { server { listen x; } }\n")
        secret = dirs.root / "secret_key"
        secret.write_text("not-so-secret\n")
        secret.chmod(0o644)
        ca = ensure_ca(base / "ca")
        cert, _ = _leaf(ca, base / "ca", "soon", names=["localhost"], days=3)
        dirs.tls.mkdir(exist_ok=True)
        shutil.copy(cert, dirs.tls / "server.pem")
        dead = process.start(["true"], name="gone", log_path=base / "gone.log")
        dead.stop()
        https_port, http_port = free_ports(2)
        state = StackState(
            project=str(project),
            started_at=0.0,
            supervisor_pid=None,
            url=f"https://localhost:{https_port}/",
            http_port=http_port,
            https_port=https_port,
            services=[
                ServiceRecord("gunicorn", app.pid, app.started, f"0.0.0.0:{port}", ""),
                ServiceRecord("nginx", dead.pid, dead.started, "127.0.0.1:1", ""),
            ],
        )
        dirs.write(state)
        yield project
    finally:
        app.stop()
        shutil.rmtree(base, ignore_errors=True)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.covers(
    "HST001:fail",
    "HST003:fail",
    "HST005:fail",
    "HST006:pass",
    "HST007:fail",
    "HST009:fail",
)
def test_the_careless_deployment(careless: Path) -> None:
    findings = host(careless)
    found = by_id(findings)
    text = describe(findings)
    assert "nginx -t:" in found["HST001"][0].message, text
    assert "nginx of the local stack is not running" in found["HST003"][0].message, text
    assert "listens on 0.0.0.0:" in found["HST005"][0].message, text
    assert "HST006" not in found, text  # gunicorn runs as nobody, no nginx workers
    assert "secret_key is mode 0o644" in found["HST007"][0].message, text
    soon = found["HST009"][0]
    assert "expires in 2." in soon.message or "expires in 3." in soon.message, text
    assert soon.level == Level.ERROR
    # the site is down: the 502 walk names nginx as the first broken link
    assert "HST020" in found, text
    assert found["HST020"][0].message.startswith("nginx: nothing answers"), text


# -- hand-made nginx -> gunicorn pairs for the walk ---------------------------------------

_PAIR_CONF = """
daemon off;
worker_processes 1;
pid {nginx}/nginx.pid;
error_log {nginx}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {nginx}/temp;
    proxy_temp_path {nginx}/temp;
    fastcgi_temp_path {nginx}/temp;
    uwsgi_temp_path {nginx}/temp;
    scgi_temp_path {nginx}/temp;
    include {nginx}/site.conf;
}}
"""
_PAIR_SITE = """
upstream app {{ server unix:{upstream}; }}
server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{ proxy_pass http://app; }}
}}
"""


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[object]:
    """make(upstream_name, socket_folder_mode) -> project: nginx (workers as nobody when
    root) proxying to ``run/<upstream_name>`` while gunicorn binds ``run/app.sock``; the
    project's state.json records both, as `flaskprod up` would."""
    started: list[process.Process] = []
    base = _traversable_dir("flaskprod-host-pair-")

    def make(upstream: str, socket_mode: int) -> Path:
        project = base / f"p{len(started)}"
        dirs = StateDir(project / ".flaskprod")
        dirs.prepare()
        (dirs.nginx / "temp").mkdir()
        sock = dirs.run / "app.sock"
        app = process.start(
            [
                *gunicorn_executable(),
                "--bind",
                f"unix:{sock}",
                "--workers",
                "1",
                "--chdir",
                str(PLAIN_APP),
                "--no-control-socket",
                "app:app",
            ],
            name="pair-gunicorn",
            log_path=base / f"g{len(started)}.log",
            die_with_parent=True,
        )
        started.append(app)
        app.wait_ready(sock.exists, timeout=30)
        dirs.run.chmod(socket_mode)
        ca = ensure_ca(dirs.tls)
        port = free_port()
        (dirs.nginx / "site.conf").write_text(
            _PAIR_SITE.format(
                upstream=dirs.run / upstream, port=port, cert=ca.server_cert, key=ca.server_key
            )
        )
        (dirs.nginx / "nginx.conf").write_text(_PAIR_CONF.format(nginx=dirs.nginx))
        nginx = process.start(
            [NGINX, "-p", str(dirs.nginx), "-c", str(dirs.nginx / "nginx.conf")],
            name="pair-nginx",
            log_path=base / f"n{len(started)}.log",
            die_with_parent=True,
        )
        started.append(nginx)
        nginx.wait_ready(lambda: _listening(port), timeout=15)
        services = [
            ServiceRecord("gunicorn", app.pid, app.started, f"unix:{sock}", ""),
            ServiceRecord("nginx", nginx.pid, nginx.started, f"127.0.0.1:{port}", ""),
        ]
        dirs.write(StackState(str(project), 0.0, None, "", free_port(), port, services))
        return project

    try:
        yield make
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_the_walk_names_a_wrong_socket_path(pair: Any) -> None:
    project = pair("gunicorn.sock", 0o755)  # nginx looks for run/gunicorn.sock
    findings = host(project)
    walk = [f for f in findings if f.id == "HST020"]
    assert walk, describe(findings)
    assert "gunicorn.sock does not exist; gunicorn binds unix:" in walk[0].message
    assert walk[0].hint.startswith("make nginx's upstream and gunicorn's bind the same")
    assert "HST004" not in ids(findings), describe(findings)  # gunicorn's own socket is fine


@pytest.mark.covers("HST004:fail")
def test_a_socket_nginx_workers_cannot_reach(pair: Any) -> None:
    # As root, nginx's workers drop to nobody: another user than gunicorn's (root).
    assert os.geteuid() == 0, "this test runs nginx's workers as another user: run as root"
    project = pair("app.sock", 0o700)  # run/ closed to nginx's workers (nobody)
    findings = host(project)
    found = by_id(findings)
    text = describe(findings)
    assert "cannot connect" in found["HST004"][0].message, text
    assert "is not searchable by uid" in found["HST004"][0].message, text
    walk = found["HST020"][0]
    assert walk.message.startswith("proxy: gunicorn answers directly"), text


# -- server mode: a stand-in /etc -------------------------------------------------------


@pytest.fixture
def server_project(tmp_path: Path) -> Path:
    project = tmp_path / "shop"
    shutil.copytree(
        SHOP, project, ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__")
    )
    return project


@pytest.mark.covers("HST002:fail", "HST002:pass")
def test_enabled_site_drift(server_project: Path, tmp_path: Path) -> None:
    enabled = tmp_path / "root" / "etc" / "nginx" / "sites-enabled" / "shop.conf"
    enabled.parent.mkdir(parents=True)
    kit = (server_project / "deploy" / "nginx" / "shop.conf").read_text()
    enabled.write_text(kit)
    same = host(server_project, host_root=str(tmp_path / "root"))
    assert "HST002" not in ids(same), describe(same)
    enabled.write_text(kit.replace("client_max_body_size 10m;", "client_max_body_size 500m;"))
    drifted = [
        f for f in host(server_project, host_root=str(tmp_path / "root")) if f.id == "HST002"
    ]
    assert drifted and "client_max_body_size 500m;" in drifted[0].message, describe(drifted)


def test_certificate_renewal_timer(server_project: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    missing = [f for f in host(server_project, host_root=str(root)) if f.id == "HST009"]
    assert "no certbot timer or cron job renews the certificate" in [f.message for f in missing], (
        describe(missing)
    )
    (root / "etc" / "cron.d").mkdir()
    (root / "etc" / "cron.d" / "certbot").write_text("0 */12 * * * root certbot -q renew\n")
    renewed = [f for f in host(server_project, host_root=str(root)) if f.id == "HST009"]
    assert not [f for f in renewed if "timer" in f.message], describe(renewed)


def _stand_in_ufw(folder: Path, allowed: list[str]) -> None:
    """A recording stand-in for ufw (no firewall may be changed on this machine)."""
    lines = "\n".join(f"{port:<27}ALLOW       Anywhere" for port in allowed)
    script = folder / "ufw"
    script.write_text(
        "#!/bin/sh\ncat <<'EOF'\nStatus: active\n\nTo                         Action      From\n"
        f"--                         ------      ----\n{lines}\nEOF\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


@pytest.mark.covers("HST008:fail", "HST008:pass")
def test_firewall_ports(
    server_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    _stand_in_ufw(bin_dir, ["22/tcp", "80/tcp", "443/tcp", "5432/tcp"])
    wide = [f for f in host(server_project) if f.id == "HST008"]
    assert wide and wide[0].message == "ufw allows ports 5432", describe(wide)
    _stand_in_ufw(bin_dir, ["22/tcp", "80/tcp", "443"])
    narrow = [f for f in host(server_project) if f.id == "HST008"]
    assert not narrow, describe(narrow)


# -- LAST: the 502 walk (freezes, then stops the stack's gunicorn) ----------------------


def test_the_walk_names_a_hung_gunicorn(shop: Shop) -> None:
    """gunicorn frozen (SIGSTOP to its process group: master and workers): the socket
    exists and accepts, nothing answers on it; nginx waits."""
    state = shop.dirs.read()
    assert state is not None
    gunicorn = state.service("gunicorn")
    assert gunicorn is not None and gunicorn.alive()
    os.killpg(gunicorn.pid, signal.SIGSTOP)  # its own group: started in a new session
    try:
        findings = host(shop.project, select=("HST020",))
    finally:
        if gunicorn.alive():
            os.killpg(gunicorn.pid, signal.SIGCONT)
    walk = [f for f in findings if f.id == "HST020"]
    assert walk, describe(findings)
    assert walk[0].message.startswith("gunicorn: unix:"), describe(walk)
    assert "no answer" in walk[0].message or "no HTTP answer" in walk[0].message
    assert "after: nginx ok -> upstream ok" in walk[0].message


@pytest.mark.covers("HST020:fail", "HST004:fail")
def test_the_502_walk_with_the_upstream_stopped(shop: Shop) -> None:
    state = shop.dirs.read()
    assert state is not None
    gunicorn = state.service("gunicorn")
    assert gunicorn is not None and gunicorn.stop(15)
    findings = host(shop.project)
    found = by_id(findings)
    text = describe(findings)
    walk = found["HST020"][0]
    assert walk.message.startswith("socket: "), text
    # the live slot's socket, named in nginx's upstream include (up's blue/green switch)
    assert "gunicorn-a.sock does not exist" in walk.message
    assert "after: nginx ok -> upstream ok" in walk.message
    assert "start gunicorn" in walk.hint
    assert "does not exist" in found["HST004"][0].message, text
    assert "gunicorn of the local stack is not running" in found["HST003"][0].message


def test_a_deploy_host_is_checked_in_its_live_release_slot(
    server_project: Path, tmp_path: Path
) -> None:
    """'flaskprod deploy' runs the app as shop@<slot> on /run/shop-<slot>/: the include
    nginx's upstream reads names the live one."""
    nginx = tmp_path / "root" / "etc" / "nginx"
    nginx.mkdir(parents=True)
    (nginx / "shop-upstream.conf").write_text(
        "# Written by flaskprod deploy: the live release slot is b.\n"
        "server unix:/run/shop-b/granian.sock fail_timeout=0;\n"
    )
    messages = [f.message for f in host(server_project, host_root=str(tmp_path / "root"))]
    sockets = [m for m in messages if "granian.sock" in m]
    assert sockets and all("/run/shop-b/granian.sock" in m for m in sockets), messages
