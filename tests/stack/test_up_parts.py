"""The parts of `flaskprod up` on their own: the local CA, the nginx overlay of the
real rendered site, and the state folder (atomic state.json, pid identity)."""

from __future__ import annotations

import os
import signal
import ssl
import stat
import subprocess
import time
from pathlib import Path

import crossplane
import pytest
from cryptography import x509

from flaskprod.errors import ProjectError
from flaskprod.kit.render import render_kit
from flaskprod.spec.model import Spec
from flaskprod.stack.ca import ensure_ca, spki_sha256
from flaskprod.stack.nginx import Overlay, find_nginx, overlay_site, parse_site, prepare_nginx
from flaskprod.stack.nginx import test_config as nginx_test_config
from flaskprod.stack.process import start_time
from flaskprod.stack.state import ServiceRecord, StackState, StateDir
from flaskprod.stack.up import live_state

# -- the local CA ----------------------------------------------------------------------------


def test_ca_is_made_once_and_reused_with_private_keys_0600(tmp_path: Path) -> None:
    first = ensure_ca(tmp_path / "tls")
    contents = {p: p.read_bytes() for p in (first.ca_cert, first.ca_key, first.server_cert)}
    second = ensure_ca(tmp_path / "tls")
    assert {p: p.read_bytes() for p in contents} == contents  # reused, not re-made
    for key in (second.ca_key, second.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_server_certificate_covers_localhost_and_verifies_against_the_ca(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    leaf, issuer = x509.load_pem_x509_certificates(ca.server_cert.read_bytes())
    root = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    assert issuer == root
    leaf.verify_directly_issued_by(root)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert len(spki_sha256(ca.server_cert)) == 44  # base64 of a SHA-256
    # What clients do: a context with only our CA accepts the chain nginx sends.
    context = ssl.create_default_context(cafile=str(ca.ca_cert))
    assert context.cert_store_stats()["x509_ca"] == 1


def test_a_broken_server_certificate_is_reissued_by_the_same_ca(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path)
    root = ca.ca_cert.read_bytes()
    ca.server_cert.write_text("not a certificate")
    again = ensure_ca(tmp_path)
    assert again.ca_cert.read_bytes() == root
    x509.load_pem_x509_certificates(again.server_cert.read_bytes())


# -- the nginx overlay of the real rendered site -------------------------------------------


@pytest.fixture
def rendered_site(tmp_path: Path) -> tuple[Spec, Path]:
    spec = Spec.model_validate({"app": {"target": "wsgi:app", "name": "shop"}})
    files = render_kit(spec, {"static_dir": "static"})
    site = tmp_path / "deploy" / "nginx" / "shop.conf"
    site.parent.mkdir(parents=True)
    site.write_text(files["deploy/nginx/shop.conf"])
    return spec, site


def _overlay(tmp_path: Path, spec: Spec) -> Overlay:
    state = tmp_path / ".flaskprod"
    ca = ensure_ca(state / "tls")
    (state / "logs").mkdir()
    (tmp_path / "static").mkdir(exist_ok=True)
    return Overlay(
        https_port=18443,
        http_port=18080,
        certificate=ca.server_cert,
        certificate_key=ca.server_key,
        socket_from=spec.socket_path,
        socket_to=state / "run" / "gunicorn.sock",
        folders=((spec.static_dir, tmp_path / "static"), (spec.media_dir, state / "media")),
        logs=state / "logs",
        prefix=state / "nginx",
        canonical_domain="localhost",
    )


def _directives(parsed: list[dict[str, object]], name: str) -> list[list[str]]:
    found: list[list[str]] = []
    for directive in parsed:
        if directive["directive"] == name:
            found.append(list(directive["args"]))  # type: ignore[call-overload]
        found += _directives(directive.get("block", []), name)  # type: ignore[arg-type]
    return found


def test_overlay_changes_only_what_a_dev_machine_needs(
    tmp_path: Path, rendered_site: tuple[Spec, Path]
) -> None:
    spec, site = rendered_site
    overlay = _overlay(tmp_path, spec)
    original = parse_site(site)
    before = crossplane.build(original)
    changed = overlay_site(original, overlay)
    assert crossplane.build(original) == before  # the input is not modified

    listens = _directives(changed, "listen")
    assert listens and all(a[0].split(":")[-1] in ("18443", "18080") for a in listens)
    assert all(a[0].startswith(("127.0.0.1:", "[::1]:")) for a in listens)
    assert _directives(changed, "ssl_certificate") == [[str(overlay.certificate)]]
    assert _directives(changed, "ssl_stapling") == []
    assert [f"unix:{overlay.socket_to}"] == _directives(changed, "server")[0][:1]
    aliases = [a[0] for a in _directives(changed, "alias")]
    assert f"{tmp_path}/static/" in aliases and f"{tmp_path}/.flaskprod/media/" in aliases
    assert ["301", "https://$host:18443$request_uri"] in _directives(changed, "return")
    assert ["Host", "$host:$server_port"] in _directives(changed, "proxy_set_header")
    caches = _directives(changed, "proxy_cache_path")
    assert caches and all(c[0] == str(overlay.prefix / "cache") for c in caches)
    # What is not a machine difference stays exactly as rendered.
    for name in ("ssl_protocols", "add_header", "client_max_body_size", "limit_req_zone"):
        assert _directives(changed, name) == _directives(original, name), name


def test_effective_config_passes_nginx_t(tmp_path: Path, rendered_site: tuple[Spec, Path]) -> None:
    spec, site = rendered_site
    files = prepare_nginx(site, _overlay(tmp_path, spec))
    nginx_test_config(find_nginx(), files)  # raises with nginx's own message otherwise
    assert "include" in files.wrapper and str(files.site) in files.wrapper
    diff = files.diff("deploy/nginx/shop.conf")
    changed = [line for line in diff.splitlines() if line[:1] in "+-"]
    assert "+    listen 127.0.0.1:18443 ssl http2;" in changed
    assert not [line for line in changed if "ssl_protocols" in line or "add_header" in line]


def test_a_broken_site_is_refused_with_nginx_s_reason(
    tmp_path: Path, rendered_site: tuple[Spec, Path]
) -> None:
    spec, site = rendered_site
    site.write_text(site.read_text().replace("client_max_body_size", "client_max_body_sise"))
    files = prepare_nginx(site, _overlay(tmp_path, spec))
    with pytest.raises(ProjectError, match="client_max_body_sise"):
        nginx_test_config(find_nginx(), files)


# -- state --------------------------------------------------------------------------------


def test_state_json_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    dirs = StateDir(tmp_path / ".flaskprod")
    state = StackState("p", 1.0, None, "https://localhost:8443/", 8080, 8443)
    state.services.append(ServiceRecord("nginx", 1, 2, "127.0.0.1:8443", "/x.log"))
    dirs.write(state)
    assert dirs.read() == state
    assert [p.name for p in dirs.root.iterdir()] == ["state.json"]  # no temp file left
    assert stat.S_IMODE(dirs.state_file.stat().st_mode) == 0o600  # may hold DATABASE_URL


def test_secret_key_is_made_once_0600(tmp_path: Path) -> None:
    dirs = StateDir(tmp_path)
    key = dirs.secret_key()
    assert len(key) >= 32 and dirs.secret_key() == key
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600


def test_a_recycled_pid_is_not_ours_and_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        started = start_time(other.pid)
        assert started is not None
        # The pid is right, the start time is another process's: pid reuse.
        stranger = ServiceRecord("gunicorn", other.pid, started - 1, "", "")
        assert not stranger.alive()
        assert not stranger.stop(1.0)
        assert not stranger.send(signal.SIGTERM)
        time.sleep(0.1)
        assert other.poll() is None  # untouched
        assert ServiceRecord("gunicorn", other.pid, started, "", "").alive()
    finally:
        other.kill()
        other.wait()


def test_stale_state_is_removed_with_a_message(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dirs = StateDir(tmp_path)
    state = StackState("p", 1.0, None, "u", 1, 2)
    state.services.append(ServiceRecord("nginx", gone.pid, 12345, "", ""))
    dirs.write(state)
    said: list[str] = []
    assert live_state(dirs, said.append) is None
    assert not dirs.state_file.exists()
    assert said and "stale" in said[0] and str(gone.pid) in said[0]


def test_socket_path_falls_back_when_too_long(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 100)
    path = StateDir(deep).socket_path("gunicorn.sock")
    assert len(os.fsencode(path)) <= 107 and path.name == "gunicorn.sock"


# -- the app server's command ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gunicorn", "granian"])
def test_the_app_server_command_follows_server_kind(tmp_path: Path, kind: str) -> None:
    """One lifecycle, two commands: gunicorn runs the rendered config with up's flags;
    granian runs the kit's own flags (spec/servers.py) with the worker count up
    computes, on a socket in the state folder named after the server. Both come from
    the project's environment (here none: flaskprod's own, the fallback)."""
    from flaskprod.spec.servers import Listen, granian_flags
    from flaskprod.stack.up import Stack, UpOptions

    server: dict[str, object] = {"kind": kind, "workers": 2}
    spec = Spec.model_validate({"app": {"target": "wsgi:app", "name": "shop"}, "server": server})
    stack = Stack(spec, UpOptions(project=tmp_path, state_dir=tmp_path / "state"), lambda _: None)
    argv = stack.server_command()
    sock = stack.socket_path()
    assert sock.name == f"{kind}-a.sock"  # slot a: a reload starts the new code on b
    if kind == "gunicorn":
        assert Path(argv[0]).name == "gunicorn" and f"unix:{sock}" in argv
        assert argv[argv.index("--config") + 1].endswith("deploy/gunicorn.conf.py")
        return
    launcher = argv.index("--workers")
    assert Path(argv[launcher - 1]).name == "granian" and argv[-1] == "wsgi:app"
    assert argv[launcher + 1] == "2"  # server.workers (WEB_CONCURRENCY would win)
    # exactly the kit's flags, listening on up's socket instead of /run/shop/
    assert argv[launcher + 2 : -1] == granian_flags(spec, Listen(uds=str(sock)), workers=False)
    if os.geteuid() == 0:  # nginx's workers reach the 0660 socket through its group
        assert argv[0] == "setpriv" and argv[1].startswith("--regid=")
