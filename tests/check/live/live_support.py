"""Real servers for the live and host checks.

- :func:`start_shop` runs ``flaskprod up -d`` on a copy of examples/shop (free ports,
  its own state folder; its default server, granian, or gunicorn when asked) and
  ``flaskprod down`` at the end; every pid is checked gone.
- :class:`BadSites` is ONE nginx with several deliberately misconfigured servers in
  front of ONE careless gunicorn app (badapp/app.py), all on loopback, stopped by pid.
- :func:`run_live` runs the checker's live/host layers in-process and returns findings.
"""

from __future__ import annotations

import datetime
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flaskprod_cli import run_flaskprod as flaskprod

from flaskprod.check.model import Finding, Level
from flaskprod.check.runner import CheckOptions, CheckResult, run_checks
from flaskprod.stack import process
from flaskprod.stack.ca import LocalCA, ensure_ca
from flaskprod.stack.gunicorn import gunicorn_executable, socket_accepts
from flaskprod.stack.ports import free_ports
from flaskprod.stack.state import StateDir

REPO = Path(__file__).resolve().parents[3]
SHOP = REPO / "examples" / "shop"
BADAPP = Path(__file__).resolve().parent / "badapp"
if str(REPO) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench.shop_gunicorn import switch_to_gunicorn  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def run_live(root: Path, **options: Any) -> CheckResult:
    """The live and/or host layers on ``root`` (a project folder), as the CLI runs them."""
    layers = tuple(
        layer
        for layer, wanted in (("live", "url" in options), ("host", options.pop("host", False)))
        if wanted
    )
    select = tuple(options.pop("select", ()))
    return run_checks(
        CheckOptions(root=root, no_import=True, layers=layers, select=select, options=options)
    )


def ids(findings: list[Finding], at_least: Level = Level.INFO) -> set[str]:
    return {f.id for f in findings if f.level >= at_least}


def describe(findings: list[Finding]) -> list[str]:
    return [f"{f.id} {f.level}: {f.message}" for f in findings]


def _traversable_dir(prefix: str) -> Path:
    # nginx workers (nobody) and PostgreSQL (postgres) must traverse it.
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    return base


# -- the shop under `flaskprod up` ------------------------------------------------------


@dataclass
class Shop:
    project: Path
    https_port: int
    http_port: int

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def dirs(self) -> StateDir:
        return StateDir(self.project / ".flaskprod")

    @property
    def ca(self) -> Path:
        return self.dirs.tls / "ca.pem"


def start_shop(prefix: str, *, gunicorn: bool = False, seed: bool = False) -> Iterator[Shop]:
    """The shop under ``flaskprod up -d``; ``gunicorn``: with server.kind = "gunicorn";
    ``seed``: with its catalogue (``flask seed``: products with uploaded images)."""
    if not Path(NGINX).is_file():
        pytest.fail("nginx is not installed (apt-get install nginx)", pytrace=False)
    base = _traversable_dir(prefix)
    project = base / "shop"
    shutil.copytree(
        SHOP,
        project,
        ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__", "*.pyc"),
    )
    if gunicorn:
        switch_to_gunicorn(project)
    shop = Shop(project, *free_ports(2))
    up = flaskprod(
        "up",
        str(project),
        "-d",
        "--https-port",
        str(shop.https_port),
        "--http-port",
        str(shop.http_port),
        "--timeout",
        "90",
        *(("--release", "flask seed") if seed else ()),
    )
    try:
        if up.returncode != 0:
            pytest.fail(f"flaskprod up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
        yield shop
    finally:
        recorded = shop.dirs.read()
        flaskprod("down", str(project))
        leftovers = [r for r in (recorded.services if recorded else []) if r.alive()]
        for record in leftovers:
            record.stop(10)
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"flaskprod down left {[r.name for r in leftovers]} running"


# -- the misconfigured sites ------------------------------------------------------------


def _leaf(
    ca: LocalCA, folder: Path, name: str, *, names: list[str], days: float
) -> tuple[Path, Path]:
    """A certificate for ``names`` signed by the local CA, valid ``days`` from now
    (negative: already expired)."""
    ca_cert = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    end = now + datetime.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, end) - datetime.timedelta(days=30))
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


_NGINX_CONF = """
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log notice;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {d}/temp/client;
    proxy_temp_path {d}/temp/proxy;
    fastcgi_temp_path {d}/temp/fastcgi;
    uwsgi_temp_path {d}/temp/uwsgi;
    scgi_temp_path {d}/temp/scgi;
    upstream badapp {{ server unix:{sock}; }}

    # careless: no redirect on http, the version in Server, no HSTS, weak headers,
    # TLS 1.0/1.1 and no 1.3, no body limit, everything (static too) from the app
    server {{
        listen 127.0.0.1:{careless_http};
        server_name localhost;
        location / {{ proxy_pass http://badapp; proxy_set_header Host $http_host; }}
    }}
    server {{
        listen 127.0.0.1:{careless_https} ssl;
        server_name localhost;
        server_tokens on;
        ssl_certificate {good_cert};
        ssl_certificate_key {good_key};
        ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
        ssl_ciphers DEFAULT:@SECLEVEL=0;
        client_max_body_size 0;
        add_header X-Frame-Options DENY always;
        add_header Content-Security-Policy
            "default-src 'self'; script-src 'self' 'unsafe-inline'" always;
        add_header Referrer-Policy unsafe-url always;
        location / {{ proxy_pass http://badapp; proxy_set_header Host $http_host; }}
    }}

    # off-host: http redirects to another host and drops the path; expired certificate
    server {{
        listen 127.0.0.1:{offhost_http};
        return 301 https://127.0.0.1:{expired_https}/;
    }}
    server {{
        listen 127.0.0.1:{expired_https} ssl;
        ssl_certificate {expired_cert};
        ssl_certificate_key {expired_key};
        return 200 "expired";
    }}
    # http hop: http -> another http URL -> https
    server {{
        listen 127.0.0.1:{hop_http};
        return 301 http://localhost:{hop2_http}$request_uri;
    }}
    server {{
        listen 127.0.0.1:{hop2_http};
        return 301 https://localhost:{good_https}$request_uri;
    }}
    server {{
        listen 127.0.0.1:{wrong_name_https} ssl;
        ssl_certificate {wrong_cert};
        ssl_certificate_key {wrong_key};
        return 200 "wrong name";
    }}
    server {{
        listen 127.0.0.1:{soon_https} ssl;
        ssl_certificate {soon_cert};
        ssl_certificate_key {soon_key};
        return 200 "expires soon";
    }}
    # the body limit left to the app: nginx streams the body through
    server {{
        listen 127.0.0.1:{app_limit_https} ssl;
        server_name localhost;
        ssl_certificate {good_cert};
        ssl_certificate_key {good_key};
        client_max_body_size 0;
        proxy_request_buffering off;
        location / {{ proxy_pass http://badapp; proxy_set_header Host $http_host; }}
    }}
    # a good TLS setup whose upstreams are broken
    server {{
        listen 127.0.0.1:{good_https} ssl;
        server_name localhost;
        ssl_certificate {good_cert};
        ssl_certificate_key {good_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "good"; }}
    }}
    server {{
        listen 127.0.0.1:{dead_upstream_https} ssl;
        ssl_certificate {good_cert};
        ssl_certificate_key {good_key};
        location / {{ proxy_pass http://127.0.0.1:{dead_port}; }}
    }}
    server {{
        listen 127.0.0.1:{wrong_socket_https} ssl;
        ssl_certificate {good_cert};
        ssl_certificate_key {good_key};
        location / {{ proxy_pass http://unix:{wrong_sock}:; }}
    }}
}}
"""

PORTS = (
    "careless_http",
    "careless_https",
    "offhost_http",
    "expired_https",
    "hop_http",
    "hop2_http",
    "wrong_name_https",
    "soon_https",
    "good_https",
    "dead_upstream_https",
    "wrong_socket_https",
    "dead_port",
    "app_limit_https",
)


@dataclass
class BadSites:
    folder: Path
    ca: Path
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"https://localhost:{self.ports[name]}"

    def http(self, name: str) -> str:
        return f"http://localhost:{self.ports[name]}"


def start_bad_sites() -> Iterator[BadSites]:
    if not Path(NGINX).is_file():
        pytest.fail("nginx is not installed (apt-get install nginx)", pytrace=False)
    folder = _traversable_dir("flaskprod-live-bad-")
    started: list[process.Process] = []
    try:
        ca = ensure_ca(folder / "tls")
        sock = folder / "badapp.sock"
        values: dict[str, object] = {"d": folder, "sock": sock, "wrong_sock": folder / "nope.sock"}
        values["good_cert"], values["good_key"] = ca.server_cert, ca.server_key
        for name, names, days in (
            ("expired", ["localhost", "127.0.0.1"], -2),
            ("wrong", ["wrong.example"], 365),
            ("soon", ["localhost"], 3),
        ):
            values[f"{name}_cert"], values[f"{name}_key"] = _leaf(
                ca, folder / "tls", name, names=names, days=days
            )
        sites = BadSites(folder, ca.ca_cert, dict(zip(PORTS, free_ports(len(PORTS)), strict=True)))
        values.update(sites.ports)
        for kind in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / "temp" / kind).mkdir(parents=True)
        conf = folder / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(**values))
        app = process.start(
            [
                *gunicorn_executable(),
                "--bind",
                f"unix:{sock}",
                "--workers",
                "2",
                "--threads",
                "8",
                "--chdir",
                str(BADAPP),
                "--no-control-socket",
                "app:app",
            ],
            name="badapp",
            log_path=folder / "gunicorn.log",
            die_with_parent=True,
        )
        started.append(app)
        app.wait_ready(lambda: socket_accepts(sock), timeout=30)
        nginx = process.start(
            [NGINX, "-p", str(folder), "-c", str(conf)],
            name="nginx",
            log_path=folder / "nginx.log",
            die_with_parent=True,
        )
        started.append(nginx)
        nginx.wait_ready(lambda: _accepts(sites.ports["careless_https"]), timeout=15)
        yield sites
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _accepts(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
