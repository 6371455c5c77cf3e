"""Keep one worker process running, as systemd's ``Restart=always`` does on a server.

``python -m flaskprod.stack.keeper --name worker --stop-timeout 60 -- rq worker ...``
runs the command in a session of its own and restarts it when it exits or is killed
(after 1 s, doubling to 10 s while it keeps failing within seconds; it gives up after
10 quick failures in a row). TERM or INT to the keeper is passed to the worker's main
process only, which is RQ's and Celery's warm shutdown (the job in progress finishes);
after ``--stop-timeout`` seconds its whole session is killed. HUP restarts the worker
the same way (``flaskprod reload``: new code, the current job finished first).
``flaskprod up`` starts one keeper per process, ``down`` stops it by pid. Standard
library only.

``--schedule '30 6 * * 1-5'`` (a spec process with a ``schedule``): the command is run
at each time the cron schedule names (a leading sixth field counts seconds), never two
runs at once; each run's output goes to the keeper's log, and ``--status-file`` holds
the last run (start, exit, seconds) and the next one for ``flaskprod status``. TERM
stops a run in progress as it stops a worker.

The worker runs in a session of its own (a TERM to the keeper's group, or Ctrl-C in
``up``'s terminal, must not reach it before the keeper has decided how to stop it), so it
would outlive a keeper killed by SIGKILL (the OOM killer, ``kill -9``), with nobody left
to stop it. Linux's parent-death signal closes that gap: the worker is sent TERM (its
warm shutdown) the moment its keeper dies, however it dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from flaskprod.spec.processes import check_schedule, next_run

#: prctl(2) option: the signal the calling process gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: A run shorter than this counts as a failure to start (backoff, then give up).
QUICK = 5.0
MAX_QUICK_FAILURES = 10


def say(name: str, text: str) -> None:
    print(f"keeper[{name}]: {text}", flush=True)


@dataclass
class Signals:
    """What the keeper was asked, by signal, while it waited."""

    stopping: list[int] = field(default_factory=list)
    restart: list[int] = field(default_factory=list)

    def install(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            (self.restart if signum == signal.SIGHUP else self.stopping).append(signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flaskprod.stack.keeper")
    parser.add_argument("--name", required=True)
    parser.add_argument("--stop-timeout", type=float, default=60.0)
    parser.add_argument("--give-up-after", type=int, default=MAX_QUICK_FAILURES)
    parser.add_argument("--schedule", help="cron (optionally a leading seconds field)")
    parser.add_argument("--status-file", type=Path, help="scheduled: last and next run (JSON)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    signals = Signals()
    signals.install()
    if args.schedule:
        try:
            check_schedule(args.schedule)
        except ValueError as error:
            parser.error(f"--schedule: {error}")
        return _scheduled(args, command, signals)
    return _keep(args, command, signals)


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with(os.getpid()),  # the keeper has no threads: safe to fork-run
    )


def _how(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exited with {code}"


def _keep(args: argparse.Namespace, command: list[str], signals: Signals) -> int:
    """A long-running worker: started again whenever it ends."""
    delay, quick_failures, runs = 1.0, 0, 0
    while not signals.stopping:
        runs += 1
        began = time.monotonic()
        child = _start(command)
        say(args.name, f"started pid {child.pid} (run {runs}): {' '.join(command)}")
        while child.poll() is None and not signals.stopping and not signals.restart:
            time.sleep(0.1)
        if signals.stopping:
            return _stop(args.name, child, args.stop_timeout)
        if signals.restart:
            signals.restart.clear()
            say(args.name, "HUP: restarting the worker (new code)")
            _stop(args.name, child, args.stop_timeout)
            delay, quick_failures = 1.0, 0
            continue
        lasted = time.monotonic() - began
        how = _how(child.returncode)
        quick_failures = quick_failures + 1 if lasted < QUICK else 0
        if quick_failures >= args.give_up_after:
            say(args.name, f"{how} {quick_failures} times within {QUICK:g}s of starting: giving up")
            return 1
        delay = min(delay * 2, 10.0) if lasted < QUICK else 1.0
        say(args.name, f"pid {child.pid} {how} after {lasted:.1f}s: restarting in {delay:g}s")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not signals.stopping:
            time.sleep(0.1)
    return 0


def _scheduled(args: argparse.Namespace, command: list[str], signals: Signals) -> int:
    """A scheduled command: run at each time its schedule names, one run at a time (a
    time that comes while a run is still going is skipped, as a systemd timer does with
    its oneshot unit and Kubernetes with ``concurrencyPolicy: Forbid``)."""
    status = Status(args.status_file, args.schedule)
    try:
        due = next_run(args.schedule, datetime.now())
    except ValueError as error:
        say(args.name, str(error))
        return 1
    while not signals.stopping:
        status.update(next_run=due.isoformat(sep=" "), running_pid=None)
        say(args.name, f"next run {due:%Y-%m-%d %H:%M:%S}: {' '.join(command)}")
        while datetime.now() < due and not signals.stopping:
            if signals.restart:
                signals.restart.clear()
                say(args.name, "HUP: the next run starts the new code")
            time.sleep(0.1)
        if signals.stopping:
            break
        began, started = time.monotonic(), datetime.now()
        child = _start(command)
        runs = status.data.get("runs", 0) + 1
        status.update(runs=runs, running_pid=child.pid, last_start=f"{started:%H:%M:%S}")
        say(args.name, f"run {runs} started: pid {child.pid}")
        while child.poll() is None and not signals.stopping:
            time.sleep(0.1)
        if signals.stopping:
            _stop(args.name, child, args.stop_timeout)
            status.update(running_pid=None, last_exit=child.returncode)
            break
        lasted = time.monotonic() - began
        say(args.name, f"run {runs} (pid {child.pid}) {_how(child.returncode)} after {lasted:.1f}s")
        skipped, due = _skipped(args.schedule, due, datetime.now())
        if skipped:
            say(args.name, f"{skipped} run(s) due while it ran skipped (one run at a time)")
        status.update(
            last_exit=child.returncode,
            last_seconds=round(lasted, 1),
            skipped=status.data.get("skipped", 0) + skipped,
        )
    status.update(running_pid=None, next_run=None)
    return 0


def _skipped(schedule: str, due: datetime, now: datetime) -> tuple[int, datetime]:
    """How many times the schedule fired during a run that began at ``due`` and ended
    ``now``, and its first time after now."""
    skipped, upcoming = 0, next_run(schedule, due)
    while upcoming <= now and skipped < 10_000:
        skipped += 1
        upcoming = next_run(schedule, upcoming)
    if upcoming <= now:
        upcoming = next_run(schedule, now)
    return skipped, upcoming


class Status:
    """The scheduled process's last and next run, as JSON for ``flaskprod status``
    (written whole, then renamed: a reader never sees half of it)."""

    def __init__(self, path: Path | None, schedule: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {"schedule": schedule, "runs": 0, "skipped": 0}

    def update(self, **values: Any) -> None:
        self.data.update(values)
        if self.path is None:
            return
        part = self.path.with_name(f".{self.path.name}.part")
        part.write_text(json.dumps(self.data))
        part.replace(self.path)


def _die_with(keeper: int) -> Callable[[], None]:
    """Runs in the forked child before it execs the worker: TERM to it when the keeper
    dies (kept across exec). A keeper already gone before prctl took effect would never
    signal: the child then exits at once instead of running unwatched."""
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            os._exit(111)
        if os.getppid() != keeper:
            os._exit(112)

    return arm


def _stop(name: str, child: subprocess.Popen[bytes], timeout: float) -> int:
    """TERM to the worker's main process (warm shutdown), then its session is killed."""
    say(name, f"stopping pid {child.pid} (TERM: the job in progress may finish, {timeout:g}s)")
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        say(name, f"pid {child.pid} still runs after {timeout:g}s: killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)  # a work horse left behind
    say(name, f"pid {child.pid} stopped ({child.returncode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
