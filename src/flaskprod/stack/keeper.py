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
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from types import FrameType

#: A run shorter than this counts as a failure to start (backoff, then give up).
QUICK = 5.0
MAX_QUICK_FAILURES = 10


def say(name: str, text: str) -> None:
    print(f"keeper[{name}]: {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flaskprod.stack.keeper")
    parser.add_argument("--name", required=True)
    parser.add_argument("--stop-timeout", type=float, default=60.0)
    parser.add_argument("--give-up-after", type=int, default=MAX_QUICK_FAILURES)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    stopping: list[int] = []
    restart: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        (restart if signum == signal.SIGHUP else stopping).append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    delay, quick_failures, runs = 1.0, 0, 0
    while not stopping:
        runs += 1
        began = time.monotonic()
        child = subprocess.Popen(command, start_new_session=True, stdin=subprocess.DEVNULL)
        say(args.name, f"started pid {child.pid} (run {runs}): {' '.join(command)}")
        while child.poll() is None and not stopping and not restart:
            time.sleep(0.1)
        if stopping:
            return _stop(args.name, child, args.stop_timeout)
        if restart:
            restart.clear()
            say(args.name, "HUP: restarting the worker (new code)")
            _stop(args.name, child, args.stop_timeout)
            delay, quick_failures = 1.0, 0
            continue
        code = child.returncode
        lasted = time.monotonic() - began
        how = f"killed by signal {-code}" if code < 0 else f"exited with {code}"
        quick_failures = quick_failures + 1 if lasted < QUICK else 0
        if quick_failures >= args.give_up_after:
            say(args.name, f"{how} {quick_failures} times within {QUICK:g}s of starting: giving up")
            return 1
        delay = min(delay * 2, 10.0) if lasted < QUICK else 1.0
        say(args.name, f"pid {child.pid} {how} after {lasted:.1f}s: restarting in {delay:g}s")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.1)
    return 0


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
