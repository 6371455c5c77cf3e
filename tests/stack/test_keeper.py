"""The keeper of `up`'s processes (flaskprod.stack.keeper), on real child processes:
a killed worker is started again, TERM reaches the worker's main process only and the
keeper waits for it (warm shutdown), HUP restarts it, and a worker that cannot start
is given up on after a bounded number of quick failures."""

from __future__ import annotations

import contextlib
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
    wait_for(lambda: "worker: ready" in log.read_text())
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
