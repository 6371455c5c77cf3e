"""Fixtures of the kit's tests: a small sample Flask project, a spec whose every server
path points into a temp folder, and the kit rendered from it and written there.

- ``sample_project`` (session): the project folder (``sample/`` package with a
  ``create_app()`` factory using ``Production``, static files, requirements.txt).
- ``kit_spec`` (session): the :class:`Spec` of that project (paths in the temp folder,
  own self-signed certificate made with ``cryptography``).
- ``kit`` (session): :class:`RenderedKit`, the kit rendered and written into the project.
- ``make_kit(tmp, sections, project)`` (session factory): the same for a spec variant.
- ``sample_env`` (session): an environment in which the sample app imports.
- ``tool(name, install)``: the path of a validation tool, or the test FAILS saying what
  to install.
"""

from __future__ import annotations

import datetime
import os
import shutil
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flaskprod.kit.render import render_kit
from flaskprod.spec.model import Spec

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DATA = Path(__file__).parent / "data"

NAME = "sample"
#: An upload stored as the shop stores them (uuid4().hex), for the media cache tests.
UPLOAD_UUID = "3f2a9c1e0b7d4a55a1b2c3d4e5f60718"
DOMAINS = ["sample.test", "www.sample.test"]

SAMPLE_INIT = '''\
"""A tiny Flask app shaped like a real one: factory, static files, API, login."""

from flask import Flask, jsonify, request

from flaskprod import Production


def create_app():
    app = Flask(__name__)
    Production(app)

    @app.get("/")
    def index():
        return "sample home"

    @app.route("/login", methods=["GET", "POST"])
    def login():
        return "login form"

    @app.get("/api/items")
    def items():
        return jsonify(items=[1, 2, 3])

    @app.get("/whoami")
    def whoami():
        return jsonify(scheme=request.scheme, remote=request.remote_addr, host=request.host)

    @app.post("/upload")
    def upload():
        return jsonify(size=len(request.get_data()))

    return app
'''

INSTALLS = {
    "requirements.txt": "flask>=3.0\ngunicorn>=22\nflaskprod\n",
    "sample/static/app.css": "body { color: #222; }\n",
    "sample/static/img/dot.svg": '<svg xmlns="http://www.w3.org/2000/svg"/>\n',
    "sample/__init__.py": SAMPLE_INIT,
    "wsgi.py": "from sample import create_app\n\napp = create_app()\n",
}


@dataclass(frozen=True)
class RenderedKit:
    root: Path  # the project root (spec.app.root), where the kit was written
    spec: Spec
    files: dict[str, str]  # relative output path -> text
    tmp: Path  # the temp folder holding the project and the "server" folders

    def path(self, relative: str) -> Path:
        return self.root / relative

    def text(self, relative: str) -> str:
        return self.files[relative]


def find_tool(name: str, install: str) -> Path:
    """A tool from the venv, .tools or PATH; FAIL (never skip) naming how to install it."""
    for candidate in (VENV_BIN / name, REPO / ".tools/node_modules/.bin" / name):
        if candidate.exists():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    pytest.fail(f"{name} is missing: {install}", pytrace=False)


@pytest.fixture(scope="session")
def tool() -> Callable[[str, str], Path]:
    return find_tool


def make_certificate(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate for ``hosts`` (and 127.0.0.1), valid for a day."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in hosts]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("kit") / "project"
    for relative, text in INSTALLS.items():
        target = project / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return project


def sample_spec(tmp: Path, **sections: dict[str, object]) -> Spec:
    """The sample's spec, every server path inside ``tmp`` (sections override)."""
    data: dict[str, dict[str, object]] = {
        "app": {"target": "sample:create_app()", "name": NAME, "domains": DOMAINS,
                "root": str(tmp / "project")},
        "server": {"kind": "gunicorn", "bind": f"unix:{tmp}/run/{NAME}.sock", "workers": 2,
                   "threads": 2},
        "paths": {"static_dir": "sample/static", "media_dir": str(tmp / "media")},
        "tls": {"mode": "own", "certificate": str(tmp / "tls/fullchain.pem"),
                "certificate_key": str(tmp / "tls/privkey.pem"),
                "acme_webroot": str(tmp / "acme")},
        "backup": {"dir": str(tmp / "backups")},
        "deploy": {"venv": str(tmp / "venv"), "log_dir": str(tmp / "log"),
                   "env_file": str(tmp / "etc" / f"{NAME}.env")},
    }  # fmt: skip
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return Spec.model_validate(data)


def write_kit(root: Path, files: dict[str, str], spec: Spec) -> None:
    from flaskprod.kit.artifacts import artifacts_for

    modes = {artifact.output: artifact.mode for artifact in artifacts_for(spec)}
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(modes.get(relative, 0o644))


def build_kit(
    tmp: Path, sections: dict[str, dict[str, object]], project: dict[str, object]
) -> RenderedKit:
    """Render the sample project's kit for a spec variant into ``tmp``, with the
    server folders, certificate and ExecStart stub the tools look for."""
    root = tmp / "project"
    for relative, text in INSTALLS.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    spec = sample_spec(tmp, **sections)
    files = render_kit(spec, project)
    write_kit(root, files, spec)
    for folder in ("run", "media", "log", "backups", "acme/.well-known/acme-challenge", "etc"):
        (tmp / folder).mkdir(parents=True, exist_ok=True)
    (tmp / "media/hello.txt").write_text("uploaded\n")
    (tmp / f"media/{UPLOAD_UUID}.txt").write_text("uploaded under a uuid4 name\n")
    (tmp / "acme/.well-known/acme-challenge/token123").write_text("challenge-ok\n")
    make_certificate(tmp / "tls", DOMAINS)
    shutil.copy(root / "deploy/.env.example", tmp / "etc" / f"{spec.app.name}.env")
    # ExecStart must name an existing executable for systemd-analyze verify (gunicorn;
    # granian's line is /bin/sh's).
    for executable in ("gunicorn", "python"):
        stub = tmp / "venv/bin" / executable
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return RenderedKit(root=root, spec=spec, files=files, tmp=tmp)


@pytest.fixture(scope="session")
def make_kit() -> Callable[..., RenderedKit]:
    """``make_kit(tmp, sections={...}, project={...})``: a rendered spec variant."""

    def make(
        tmp: Path,
        sections: dict[str, dict[str, object]] | None = None,
        project: dict[str, object] | None = None,
    ) -> RenderedKit:
        return build_kit(tmp, sections or {}, project or {})

    return make


@pytest.fixture(scope="session")
def kit_spec(sample_project: Path) -> Spec:
    return sample_spec(sample_project.parent)


@pytest.fixture(scope="session")
def kit(sample_project: Path, kit_spec: Spec) -> RenderedKit:
    return build_kit(
        sample_project.parent, {}, {"requirements_file": "requirements.txt", "migrations": True}
    )


@pytest.fixture(scope="session")
def sample_env() -> dict[str, str]:
    """Environment under which the sample app imports (development profile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK", "GUNICORN"))}
    env.update({"FLASKPROD_ENV": "development", "PYTHONDONTWRITEBYTECODE": "1"})
    return env
