"""The shop's RQ worker under systemd on a real lab host, killed mid-job and stopped.

The shop is deployed as a user does (``flaskprod deploy``); the worker unit the kit
renders runs its thumbnail job. Killed mid-job, the worker is restarted by systemd and
the job retried by RQ within its bound (the unit's RQ settings); stopped, it finishes
the job first. To hold a job in progress for as long as a test needs,
the image is a FIFO in the media folder: the job's ``Image.open`` blocks reading it
until the test writes the PNG into it (a slow disk, in effect) — the real job, the real
worker, nothing patched. RQ's state is read raw from the host's Redis (``ZRANGE``,
``HGET``): RQ's own registry methods would clean up abandoned jobs themselves and hide
whether the worker did.

One host for the module; the tests run in order, each leaving the worker running.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from flaskprod.lab import Lab, LabHost
from flaskprod.lab.pebble import Pebble

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is imported as a package from the checkout
    sys.path.insert(0, str(REPO))

from bench.deploy_host import shop_repository  # noqa: E402

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
UNIT = "shop-worker.service"
MEDIA = "/var/lib/shop/media"
QUEUE = "shop-jobs"

#: Enqueues a thumbnail the shop's own way (shop.jobs.enqueue_thumbnail, in an app context).
_ENQUEUE = """
import sys
from wsgi import app
from shop.jobs import enqueue_thumbnail
with app.app_context():
    print(enqueue_thumbnail(sys.argv[1]))
"""
#: The thumbnail job of one file, read raw from Redis (no RQ registry method: those clean up).
_PROBE = """
import json, os, sys
from redis import Redis
r = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
name, q = sys.argv[1], sys.argv[2]
found = None
for key in r.scan_iter("rq:job:*", count=1000):
    if key.count(":") != 2 or r.type(key) != "hash":
        continue
    if f"make_thumbnail('{name}'" in (r.hget(key, "description") or ""):
        found = key.split(":")[2]
if found is None:
    print(json.dumps(None)); sys.exit()
status, retries_left = r.hmget(f"rq:job:{found}", "status", "retries_left")  # text fields
print(json.dumps({
    "id": found, "status": status, "retries_left": retries_left,
    "started": any(e.split(":")[0] == found for e in r.zrange(f"rq:wip:{q}", 0, -1)),
    "failed": r.zscore(f"rq:failed:{q}", found) is not None,
    "scheduled": r.zscore(f"rq:scheduled:{q}", found) is not None,
    "queued": found in r.lrange(f"rq:queue:{q}", 0, -1),
}))
"""


@dataclass
class Worker:
    host: LabHost

    def as_shop(self, *argv: str) -> str:
        """A command as the app's user, with its env file, in the live release."""
        done = self.host.run(
            [
                "systemd-run",
                "--quiet",
                "--wait",
                "--pipe",
                "--collect",
                "-p",
                "User=shop",
                "-p",
                "EnvironmentFile=/etc/shop/shop.env",
                "-p",
                "WorkingDirectory=/srv/shop/current",
                "/srv/shop/current/.venv/bin/python",
                *argv,
            ]
        )
        return done.stdout

    def slow_thumbnail(self, name: str) -> None:
        """Queue the thumbnail of ``name``, an image that arrives only when :meth:`feed`
        writes it; returns once the worker's horse has started the job."""
        self.host.run(f"mkfifo -m 0644 {MEDIA}/{name} && chown shop:shop {MEDIA}/{name}")
        assert self.as_shop("-c", _ENQUEUE, name).strip() == "queued"
        self.wait(name, lambda job: job["started"] and job["status"] == "started", 30, "started")

    def feed(self, name: str) -> None:
        """Write the PNG into the FIFO the job is reading (blocks until it reads)."""
        image = io.BytesIO()
        Image.new("RGB", (1200, 800), "teal").save(image, format="PNG")
        self.host.run(f"base64 -d > /root/{name} <<'EOF'\n{_b64(image.getvalue())}\nEOF")
        self.host.run(f"cat /root/{name} > {MEDIA}/{name}", timeout=60)

    def job(self, name: str) -> dict[str, Any]:
        found = json.loads(self.as_shop("-c", _PROBE, name, QUEUE))
        assert found is not None, f"no job for {name}"
        return dict(found)

    def wait(
        self, name: str, done: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(name)
            if done(job):
                return job
            assert time.monotonic() < deadline, f"{name}: not {what} within {timeout:g}s: {job}"
            time.sleep(0.5)

    def show(self, *properties: str) -> dict[str, str]:
        out = self.host.run(["systemctl", "show", UNIT, *(f"-p{p}" for p in properties)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    def started(self, pid: str) -> str | None:
        """When a process started (its pid may be reused), None once it is gone (or
        dead, not yet reaped)."""
        stat = self.host.run(f"cat /proc/{pid}/stat", check=False).stdout
        fields = stat.rsplit(")", 1)[1].split() if stat else ["Z"]
        return None if fields[0] == "Z" else fields[19]

    def thumbnail_exists(self, name: str) -> bool:
        stem = name.rsplit(".", 1)[0]
        return self.host.run(f"test -s {MEDIA}/thumbs/{stem}.webp", check=False).returncode == 0


def _b64(data: bytes) -> str:
    import base64

    return base64.encodebytes(data).decode()


@pytest.fixture(scope="module")
def worker(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A fresh host with the shop deployed by ``flaskprod deploy`` (its certificate from
    Pebble in the host's network), its worker unit running."""
    folder = tmp_path_factory.mktemp("workers")
    host = lab.boot("wk1")
    try:
        pebble = Pebble.start(host, folder / "pebble")
        project = shop_repository(
            folder,
            acme_directory=pebble.directory,
            acme_ca=str(pebble.ca_file),
            acme_email="ops@example.com",
        )
        https = host.forward(443)
        roots = folder / "pebble-roots.pem"
        roots.write_text(pebble.issuing_roots())
        argv = [FLASKPROD, "deploy", str(project), "--host", host.name]
        argv += ["--ssh-config", str(lab.ssh_config)]
        argv += ["--check-url", f"https://localhost:{https}/", "--check-ca", str(roots)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        found = Worker(host)
        assert found.show("ActiveState")["ActiveState"] == "active"
        yield found
    finally:
        host.kill()


def test_the_unit_runs_rq_with_its_recovery_settings(worker: Worker) -> None:
    pid = worker.show("MainPID")["MainPID"]
    command = worker.host.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline").stdout
    for setting in (
        "--with-scheduler",
        "--job-monitoring-interval 5",
        "--worker-ttl 30",
        "--maintenance-interval 15",
    ):
        assert setting in command, command


def test_the_main_process_killed_mid_job_is_restarted_and_the_job_retried(
    worker: Worker,
) -> None:
    """SIGKILL to the worker's main process while its work horse runs the job. systemd
    kills what is left of the unit at once (KillMode=mixed: with the main process gone
    nothing waits for a TERM, the rest gets SIGKILL — the horse too, as an OOM kill of
    the unit would) and Restart= starts a new worker. The job is left in RQ's started
    registry; the new worker's registry cleanup finds it abandoned once its heartbeat
    expires and retries it (the shop's Retry(max=3)). The retry runs the job again; fed
    this time, it finishes. Never silently lost."""
    before = worker.show("MainPID", "NRestarts")
    worker.slow_thumbnail("main-kill.png")
    # its children: the work horse, and RQ's scheduler (--with-scheduler)
    children = worker.host.run(f"pgrep -P {before['MainPID']}").stdout.split()
    assert len(children) == 2, children
    began = {pid: worker.started(pid) for pid in children}
    killed = time.monotonic()
    worker.host.run(f"kill -KILL {before['MainPID']}")
    deadline = killed + 30
    while (after := worker.show("MainPID", "NRestarts", "ActiveState"))["ActiveState"] != "active":
        assert time.monotonic() < deadline, after
        time.sleep(0.5)
    print(f"worker active again {time.monotonic() - killed:.1f}s after the kill")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    assert after["MainPID"] != before["MainPID"]
    assert all(worker.started(pid) != began[pid] for pid in children)  # killed with it
    # RQ's bound with the unit's settings: the heartbeat (5 s + RQ's 60 s) expires, the
    # new worker's next cleanup (every 15 s) retries it after the retry's 1 s interval.
    job = worker.wait(
        "main-kill.png",
        lambda j: j["retries_left"] == "2" and j["started"],
        150,
        "retried and started again",
    )
    print(f"job retried and running again {time.monotonic() - killed:.1f}s after the kill")
    assert not job["failed"]
    worker.feed("main-kill.png")
    job = worker.wait("main-kill.png", lambda j: j["status"] == "finished", 30, "finished")
    assert worker.thumbnail_exists("main-kill.png")


def test_a_graceful_stop_lets_the_job_in_progress_finish(worker: Worker) -> None:
    """``systemctl stop`` (what a release's restart does first): TERM to the main process
    only, RQ's warm shutdown waits for the job, the unit stops once it finished."""
    worker.slow_thumbnail("stop.png")
    worker.host.run(["systemctl", "stop", "--no-block", UNIT])
    time.sleep(3)  # longer than RQ needs to act on TERM: it is waiting for the job
    assert worker.show("ActiveState")["ActiveState"] == "deactivating"
    assert worker.job("stop.png")["status"] == "started"
    worker.feed("stop.png")
    deadline = time.monotonic() + 30
    while worker.show("ActiveState")["ActiveState"] != "inactive":
        assert time.monotonic() < deadline, "the worker did not stop after its job"
        time.sleep(0.5)
    job = worker.job("stop.png")
    assert job["status"] == "finished" and job["retries_left"] == "3"
    assert worker.thumbnail_exists("stop.png")
    assert worker.show("Result")["Result"] == "success"  # exited by itself, not killed
    worker.host.run(["systemctl", "start", UNIT])
