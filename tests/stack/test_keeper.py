"""The keeper of `up`'s processes (flaskprod.stack.keeper), on real child processes:
a killed worker is started again, TERM reaches the worker's main process only and the
keeper waits for it (warm shutdown), HUP restarts it, and a worker that cannot start
is given up on after a bounded number of quick failures."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flaskprod.stack.state import children_of

#: A worker that records TERM, then takes 0.5 s to finish its "job" (a warm shutdown).
WORKER = """
import signal, sys, time
def stop(*_):
    print("worker: TERM, finishing the job", flush=True)
    time.sleep(0.5)
    print("worker: done", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("worker: ready", flush=True)
while True:
    time.sleep(0.1)
"""


def keeper(log: Path, *argv: str, give_up: int = 10) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flaskprod.stack.keeper", "--name", "w", "--stop-timeout",
             "5", "--give-up-after", str(give_up), "--", *argv],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_for(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    pytest.fail(f"not within {timeout:g}s")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "keeper.log"
    proc = keeper(log, sys.executable, "-c", WORKER)
    yield proc, log
    if proc.poll() is None:
        # The keeper starts its worker in a session of its own: TERM the keeper (a warm
        # stop of its worker); should that fail, kill the worker too, by pid.
        workers = children_of(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_killed_worker_is_started_again(running: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, log = running
    wait_for(lambda: children_of(proc.pid))
    (first,) = children_of(proc.pid)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: children_of(proc.pid) not in ([], [first]))
    assert f"pid {first} killed by signal 9" in log.read_text()


def test_term_is_a_warm_shutdown_and_hup_a_restart(
    running: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, log = running
    wait_for(lambda: "\nworker: ready\n" in log.read_text())  # not the echoed command
    (first,) = children_of(proc.pid)
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: children_of(proc.pid) not in ([], [first]))
    assert "\nworker: done\n" in log.read_text()  # the old one finished its job first
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    text = log.read_text()
    assert text.splitlines().count("worker: done") == 2 and "killing it" not in text


def test_a_worker_that_cannot_start_is_given_up(tmp_path: Path) -> None:
    log = tmp_path / "keeper.log"
    proc = keeper(log, "false", give_up=2)
    assert proc.wait(30) == 1
    assert "exited with 1 2 times within 5s of starting: giving up" in log.read_text()


def test_a_keeper_killed_by_sigkill_takes_its_worker_with_it(
    running: tuple[subprocess.Popen[bytes], Path],
) -> None:
    """The worker is in a session of its own, so nothing of the keeper's group reaches
    it; the parent-death signal does: TERM (a warm shutdown) as the keeper dies."""
    proc, log = running
    wait_for(lambda: "\nworker: ready\n" in log.read_text())  # not the echoed command
    (worker,) = children_of(proc.pid)
    assert os.getsid(worker) != os.getsid(proc.pid)  # its own session
    proc.kill()
    proc.wait(10)
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker), timeout=10)
    text = log.read_text()
    assert "worker: TERM, finishing the job" in text and "\nworker: done\n" in text


def _zombie(pid: int) -> bool:
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


#: A scheduled command that takes 3 s, records when it ran, and fails (exit 3).
JOB = """
import sys, time
began = time.time()
print("job: running", flush=True)
time.sleep(3)
with open(sys.argv[1], "a") as out:
    out.write(f"{began} {time.time()}\\n")
sys.exit(3)
"""


def test_a_scheduled_command_runs_on_its_schedule_one_run_at_a_time(tmp_path: Path) -> None:
    """Every 2 s (a leading seconds field), a 3 s command: it starts on the even
    seconds, the time that comes while it runs is skipped (no overlap, as
    concurrencyPolicy: Forbid), its output is in the keeper's log and its last run in
    the status file."""
    log, runs, status = tmp_path / "keeper.log", tmp_path / "runs", tmp_path / "status.json"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flaskprod.stack.keeper", "--name", "tick",
             "--stop-timeout", "5", "--schedule", "*/2 * * * * *", "--status-file",
             str(status), "--", sys.executable, "-c", JOB, str(runs)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: runs.exists() and len(runs.read_text().splitlines()) >= 3, timeout=25)
        wait_for(lambda: json.loads(status.read_text())["running_pid"] is None, timeout=5)
        done = json.loads(status.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    spans = [tuple(map(float, line.split())) for line in runs.read_text().splitlines()]
    for (_, ended), (began, _) in itertools.pairwise(spans):
        assert began >= ended, spans  # never two runs at once
        assert round(began) % 2 == 0  # on the schedule's times
    assert all(b - a >= 3.5 for (a, _), (b, _) in itertools.pairwise(spans))  # :02 skipped
    text = log.read_text()
    assert text.count("job: running") >= 3 and "exited with 3 after 3." in text
    assert "1 run(s) due while it ran skipped (one run at a time)" in text
    assert done["last_exit"] == 3 and done["runs"] >= 3 and done["skipped"] >= 2
    assert done["schedule"] == "*/2 * * * * *" and done["next_run"]
