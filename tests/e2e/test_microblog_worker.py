"""microblog's RQ worker (its Procfile's ``worker: rq worker microblog-tasks``) is a
first-class process: ``init`` writes it in the spec and renders it in every target,
``up`` runs it with microblog's own venv beside gunicorn and it registers in the
stack's Redis; killed mid-job (SIGKILL), it is restarted by its keeper and the job is
not lost; ``down`` stops it by pid before Redis."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml
from flaskprod_cli import run_flaskprod
from real_projects import copy_project

from flaskprod.stack.ports import free_ports
from flaskprod.stack.process import is_alive
from flaskprod.stack.state import children_of

QUEUE = "microblog-tasks"
#: Enqueues time.sleep(N) on microblog's queue with microblog's own rq; prints the job id.
ENQUEUE = (
    "import sys, redis, rq; q = rq.Queue(sys.argv[2], connection=redis.from_url(sys.argv[1]));"
    " print(q.enqueue('time.sleep', float(sys.argv[3])).id)"
)
#: A job's status as microblog's rq reads it.
STATUS = (
    "import sys, redis, rq; from rq.job import Job;"
    " print(Job.fetch(sys.argv[2], connection=redis.from_url(sys.argv[1])).get_status())"
)


@dataclass
class Stack:
    root: Path
    init_output: str
    up_output: str
    redis_url: str

    def state(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.root / ".flaskprod/state.json").read_text())
        return data

    def keeper_pid(self) -> int:
        services = self.state()["services"]
        assert isinstance(services, list)
        (record,) = [s for s in services if s["name"] == "process-worker"]
        return int(record["pid"])

    def rq(self, code: str, *args: str) -> str:
        python = str(self.root / ".venv/bin/python")
        result = subprocess.run(
            [python, "-c", code, self.redis_url, *args],
            capture_output=True, text=True, timeout=30, check=True, cwd=self.root,
        )  # fmt: skip
        return result.stdout.strip()


def workers(client: redis.Redis) -> set[str]:
    return {name.decode() for name in client.smembers("rq:workers")}


def wait_for(check: object, timeout: float, what: str) -> float:
    """Seconds until ``check()`` is true, polled every 0.1 s; fails after ``timeout``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - began
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout:g}s")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    base = Path(tempfile.mkdtemp(prefix="flaskprod-worker-"))
    base.chmod(0o755)  # nginx's workers and the postgres user traverse it
    root = copy_project("microblog", base)
    init = run_flaskprod("init", str(root))
    assert init.returncode == 0, init.stderr
    https_port, http_port = free_ports(2)
    up = run_flaskprod(
        "up", str(root), "-d", "--https-port", str(https_port), "--http-port", str(http_port),
        timeout=300,
    )  # fmt: skip
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        state = json.loads((root / ".flaskprod/state.json").read_text())
        yield Stack(root, init.stdout, up.stdout, state["env"]["REDIS_URL"])
    finally:
        down = run_flaskprod("down", str(root))
        assert down.returncode == 0, down.stderr
        shutil.rmtree(base)


def test_init_writes_the_worker_and_renders_it_everywhere(stack: Stack) -> None:
    root = stack.root
    spec = tomllib.loads((root / "flaskprod.toml").read_text())
    assert spec["processes"]["worker"]["command"] == f"rq worker {QUEUE}"
    assert spec["processes"]["worker"]["kind"] == "rq"
    assert spec["redis"]["maxmemory_policy"] == "noeviction"  # a queue is never evicted
    assert f"process worker: rq worker {QUEUE} (rq, from Procfile)" in stack.init_output
    unit = (root / "deploy/systemd/microblog-worker.service").read_text().splitlines()
    settings = (
        "--with-scheduler --job-monitoring-interval 5 --worker-ttl 30 --maintenance-interval 15"
    )
    assert (
        f"ExecStart=/srv/microblog/.venv/bin/rq worker --url ${{REDIS_URL}} {settings} {QUEUE}"
        in unit
    )
    k8s = yaml.safe_load((root / "deploy/k8s/worker-worker.yaml").read_text())
    assert k8s["kind"] == "Deployment"
    compose = yaml.safe_load((root / "deploy/compose.yaml").read_text())
    assert compose["services"]["worker"]["command"][:2] == ["rq", "worker"]
    procfile = (root / "deploy/Procfile").read_text().splitlines()
    assert f'worker: rq worker --url "$REDIS_URL" {settings} {QUEUE}' in procfile


def test_up_runs_it_with_microblogs_venv_and_it_registers_in_redis(stack: Stack) -> None:
    assert f"worker: rq worker {QUEUE} (keeper pid" in stack.up_output
    client = redis.Redis.from_url(stack.redis_url)
    wait_for(lambda: workers(client), 20, "microblog's worker registered in the stack's Redis")
    (name,) = workers(client)
    assert client.hget(name, "queues") == QUEUE.encode()
    (worker,) = children_of(stack.keeper_pid())
    argv = Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")
    assert str(stack.root / ".venv/bin").encode() in argv[0] + argv[1]  # microblog's own rq
    status = run_flaskprod("status", str(stack.root), env={**os.environ, "COLUMNS": "200"})
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"worker pid {worker}" in status.stdout
    logs = run_flaskprod("logs", str(stack.root), "worker")
    assert logs.returncode == 0 and QUEUE in logs.stdout, logs.stdout + logs.stderr


def test_a_worker_killed_mid_job_is_restarted_and_the_job_is_not_lost(stack: Stack) -> None:
    """The fault "worker process killed": SIGKILL to the worker's main process while its
    work horse runs a 3 s job. Its keeper starts a new worker; the job finishes."""
    client = redis.Redis.from_url(stack.redis_url)
    wait_for(lambda: workers(client), 20, "a worker")
    job = stack.rq(ENQUEUE, QUEUE, "3")
    wait_for(lambda: stack.rq(STATUS, job) == "started", 15, "the job started")
    (worker,) = children_of(stack.keeper_pid())
    before = workers(client)
    os.kill(worker, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: children_of(stack.keeper_pid()) not in ([], [worker]), 15, "a new worker pid")
    wait_for(lambda: workers(client) - before, 20, "the new worker registered")
    restarted = time.monotonic() - killed
    wait_for(lambda: stack.rq(STATUS, job) == "finished", 20, "the job finished")
    print(f"worker killed mid-job: new worker registered after {restarted:.1f}s; job finished")
    log = (stack.root / ".flaskprod/logs/process-worker.log").read_text()
    assert f"pid {worker} killed by signal 9" in log


def test_the_queue_redis_never_evicts_and_persists(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.config_get("appendonly") == {"appendonly": "yes"}


def test_reload_restarts_the_worker_once_the_app_server_is_healthy(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    wait_for(lambda: children_of(stack.keeper_pid()), 20, "a worker")
    (old,) = children_of(stack.keeper_pid())
    reload = run_flaskprod("reload", str(stack.root), timeout=180)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    lines = reload.stdout.splitlines()
    restarting = lines.index("worker: restarting on the new code (its current job finishes first)")
    # the new code's gunicorn first, serving on its slot (ready), then the worker
    served = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("gunicorn: slot ") and " serving (" in line
    )
    assert served < restarting
    wait_for(lambda: children_of(stack.keeper_pid()) not in ([], [old]), 20, "a new worker")
    wait_for(lambda: len(workers(client)) == 1, 20, "one registered worker")
    log = (stack.root / ".flaskprod/logs/process-worker.log").read_text()
    assert f"stopping pid {old} (TERM" in log  # warm shutdown, not a kill


def test_down_stops_the_worker_by_pid(tmp_path: Path) -> None:
    """A stack of its own (the module's must keep running for the tests above)."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-worker-down-"))
    base.chmod(0o755)
    root = copy_project("microblog", base)
    try:
        assert run_flaskprod("init", str(root)).returncode == 0
        https_port, http_port = free_ports(2)
        up = run_flaskprod(
            "up", str(root), "-d", "--https-port", str(https_port),
            "--http-port", str(http_port), timeout=300,
        )  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((root / ".flaskprod/state.json").read_text())
        (keeper,) = [s["pid"] for s in state["services"] if s["name"] == "process-worker"]
        wait_for(lambda: children_of(keeper), 10, "the worker")
        (worker,) = children_of(keeper)
        down = run_flaskprod("down", str(root))
        assert down.returncode == 0, down.stderr
        lines = down.stdout.splitlines()
        assert lines[0] == f"process-worker: stopped (pid {keeper})", down.stdout  # first
        assert not is_alive(keeper) and not is_alive(worker)
        log = (root / ".flaskprod/logs/process-worker.log").read_text()
        assert f"stopping pid {worker} (TERM" in log
    finally:
        run_flaskprod("down", str(root))
        shutil.rmtree(base)
