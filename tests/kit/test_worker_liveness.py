"""The kit's worker Deployments carry an exec livenessProbe (check's K8S009): an RQ
worker's is run here against a real Redis and a real ``rq worker``, before and after
the worker registers; a Celery worker's pings its own node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kit_tools import ToolFinder, run

from flaskprod.check.runner import CheckOptions, run_checks
from flaskprod.kit.artifacts import worker_liveness

PROCESSES = {
    "worker": {"command": "rq worker shop-jobs"},
    "tasks": {"command": "celery -A shop.tasks:celery worker"},
    "beat": {"command": "celery -A shop.tasks:celery beat"},
    "mailer": {"command": "flask send-mail --forever"},
}


@pytest.fixture(scope="module")
def kit(make_kit: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    sections = {"processes": PROCESSES, "redis": {"maxmemory_policy": "noeviction"}}
    return make_kit(tmp_path_factory.mktemp("liveness"), sections, {})


def container(kit: Any, process: str) -> dict[str, Any]:
    manifest = yaml.safe_load(kit.path(f"deploy/k8s/worker-{process}.yaml").read_text())
    found: dict[str, Any] = manifest["spec"]["template"]["spec"]["containers"][0]
    return found


def test_queue_workers_get_an_exec_probe_and_k8s_validates(kit: Any, tool: ToolFinder) -> None:
    binary = tool("kubernetes-validate", "pip install kubernetes-validate (make setup)")
    files = [kit.path(f"deploy/k8s/worker-{name}.yaml") for name in PROCESSES]
    result = run([str(binary), "--strict", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr
    rq = container(kit, "worker")["livenessProbe"]
    assert rq["exec"]["command"][:2] == ["python", "-c"]
    assert "os.environ['REDIS_URL']" in rq["exec"]["command"][2]
    celery = container(kit, "tasks")["livenessProbe"]["exec"]["command"]
    assert celery == [
        "sh",
        "-c",
        "celery -A shop.tasks:celery inspect ping --destination celery@$HOSTNAME --timeout 10",
    ]
    # a scheduler and a command of the project's own: no probe the kit could know
    assert "livenessProbe" not in container(kit, "beat")
    assert "livenessProbe" not in container(kit, "mailer")


def test_the_rendered_workers_pass_k8s009(kit: Any) -> None:
    result = run_checks(CheckOptions(root=kit.root, select=("K8S009",), no_import=True))
    assert result.rules_run == ["K8S009"]
    assert not result.findings, [f.message for f in result.findings]


def test_the_liveness_command_follows_the_workers_connection() -> None:
    named = worker_liveness("rq", ["rq", "worker", "--url", "redis://cache:6379/1", "q"])
    assert named is not None and "Redis.from_url('redis://cache:6379/1'" in named[2]
    assert worker_liveness("rq", ["rq", "worker", "-c", "settings", "q"]) is None
    own_name = worker_liveness("celery", ["celery", "-A", "a", "worker", "-n", "w1@%h"])
    assert own_name == ["sh", "-c", "celery -A a inspect ping --timeout 10"]
    assert worker_liveness("command", ["flask", "x"]) is None


def probe_exit(command: list[str], redis_url: str) -> int:
    env = {**os.environ, "REDIS_URL": redis_url}
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    return done.returncode


def test_the_rq_probe_fails_without_this_pods_worker_and_passes_with_it(
    kit: Any, redis_url: str, tmp_path: Path
) -> None:
    command = container(kit, "worker")["livenessProbe"]["exec"]["command"]
    command = [sys.executable, *command[1:]]  # the image's python: the venv's here
    assert probe_exit(command, redis_url) == 1  # no worker registered
    rq = Path(sys.executable).parent / "rq"
    log = (tmp_path / "rq.log").open("w")
    worker = subprocess.Popen(
        [str(rq), "worker", "--url", redis_url, "--worker-ttl", "30", "liveness-test"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while probe_exit(command, redis_url) != 0:
            assert worker.poll() is None, (tmp_path / "rq.log").read_text()
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    assert probe_exit(command, redis_url) == 1  # a worker that stopped unregisters
