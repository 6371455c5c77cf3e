"""A scheduled process of the spec under `flaskprod up`: its keeper runs it at each time
its cron schedule names (here every minute: the run comes within 60 s), `logs -f`
follows its output, `status` shows its last run (exit) and the next one, `down` stops
it. One run at a time and the schedule's arithmetic are proven fast, in seconds, in
tests/stack/test_keeper.py and tests/spec/test_processes.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flaskprod_cli import FLASKPROD, run_flaskprod
from real_projects import venv_with

from flaskprod.stack.ports import free_ports

pytestmark = pytest.mark.services

APP = (
    'from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get("/")\n'
    'def index():\n    return "hi"\n'
)
#: The scheduled command: says when it ran, takes a second, fails (its exit is shown).
TICK = (
    "import sys, time\nprint('tick: ran at', time.strftime('%H:%M:%S'), flush=True)\n"
    "time.sleep(1)\nsys.exit(3)\n"
)
PROCESS = '[processes.tick]\ncommand = "python tick.py"\nschedule = "* * * * *"\nstop_timeout = 5\n'
#: The venv of tests/stack/test_up_processes.py (the same cache entry): Flask, granian.
VENV = ["flask==3.1.3", "granian==2.8.7", "celery==5.4.0"]
WIDE = {**os.environ, "COLUMNS": "200"}


@pytest.fixture
def project() -> Iterator[Path]:
    """A plain Flask app (SQLite, no Redis) with one scheduled process."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-sched-"))
    base.chmod(0o755)
    root = base / "tick-app"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "tick.py").write_text(TICK)
    (root / ".venv").symlink_to(venv_with("celery-tiny", VENV))
    result = run_flaskprod("init", str(root), "--name", "tick-app")
    assert result.returncode == 0, result.stdout + result.stderr
    spec = root / "flaskprod.toml"
    text = spec.read_text().replace('engine = "postgresql"', 'engine = "sqlite"')
    text = text.replace("[redis]\nenabled = true", "[redis]\nenabled = false")
    spec.write_text(text.replace("[ignore]", f"{PROCESS}\n[ignore]"))
    yield root
    if (root / ".flaskprod/state.json").exists():
        run_flaskprod("down", str(root))
    shutil.rmtree(base, ignore_errors=True)


def status(root: Path) -> str:
    result = run_flaskprod("status", str(root), env=WIDE)
    assert result.returncode == 0, result.stdout + result.stderr
    (row,) = [line for line in result.stdout.splitlines() if "process-tick" in line]
    return row


def test_up_runs_a_scheduled_process_on_its_schedule(project: Path) -> None:
    https, http = free_ports(2)
    up = run_flaskprod(
        "up", str(project), "-d", "--https-port", str(https), "--http-port", str(http)
    )
    assert up.returncode == 0, up.stdout + up.stderr
    said = up.stdout + up.stderr
    assert re.search(
        r"tick: python tick\.py \(keeper pid \d+, scheduled '\* \* \* \* \*', one", said
    )
    row = status(project)
    assert "cron '* * * * *'" in row
    assert re.search(r"next run \d\d:\d\d:00", row), row
    # `logs -f tick`, started before the run, shows its output as it comes
    with subprocess.Popen(
        [FLASKPROD, "logs", str(project), "tick", "-f", "-n", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    ) as follow:  # fmt: skip
        assert follow.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 75  # the next minute, and the run's second
        os.set_blocking(follow.stdout.fileno(), False)
        while not any("tick: ran at" in line for line in seen):
            assert time.monotonic() < deadline, f"no run within 75 s: {seen}"
            line = follow.stdout.readline()
            if line:
                seen.append(line)
            else:
                time.sleep(0.2)
        follow.send_signal(signal.SIGINT)
        follow.wait(10)
    (ran,) = [line for line in seen if "tick: ran at" in line]
    assert line_time(ran).endswith((":00", ":01")), ran  # on the minute
    assert ran.startswith("tick | ")
    deadline = time.monotonic() + 10
    while "last " not in (row := status(project)):
        assert time.monotonic() < deadline, row
        time.sleep(0.5)
    assert re.search(r"last \d\d:\d\d:0[01]: exit 3 \(1\.\ds\), next \d\d:\d\d:00", row), row
    logs = run_flaskprod("logs", str(project), "tick", "-n", "10").stdout
    assert "keeper[tick]: run 1 (pid" in logs and "exited with 3 after 1." in logs, logs
    down = run_flaskprod("down", str(project))
    assert down.returncode == 0 and "process-tick: stopped" in down.stdout + down.stderr


def line_time(line: str) -> str:
    return line.rsplit(" ", 1)[1].strip()
