"""The spec's processes under ``flaskprod up``: each long-running one is started beside
the app server (once it is healthy), kept running by :mod:`flaskprod.stack.keeper`,
recorded in ``state.json`` as ``process-<name>`` and stopped by pid (TERM: RQ's and
Celery's warm shutdown). A scheduled one (``schedule``) is run by its keeper at each
time the schedule names, one run at a time; ``status`` shows its last and next run.

Before anything starts, every process is checked: its program is installed in the
project's virtualenv, a Celery app imports. A failure is one line naming the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from flaskprod.errors import EnvironmentProblem, ProjectError
from flaskprod.spec.flask_cli import flask_env
from flaskprod.spec.interpreter import ProjectPython
from flaskprod.spec.model import SPEC_FILENAME, ProcessSection, Spec
from flaskprod.spec.processes import celery_app, process_argv

#: state.json's name of a process's keeper (and its log's).
PREFIX = "process-"
#: Imports a Celery app as ``celery -A`` does.
_CELERY_IMPORT = "import sys; from celery.app.utils import find_app; find_app(sys.argv[1])"


class MissingProgram(EnvironmentProblem):
    """A process's program is not installed in the project's virtualenv (exit 3)."""


class ProcessImportFailed(ProjectError):
    """A process's Celery app does not import (exit 2)."""


def record_name(process: str) -> str:
    return f"{PREFIX}{process}"


#: state.json's address of a scheduled process (its keeper's record): the schedule.
SCHEDULED = "cron "


def record_address(process: ProcessSection) -> str:
    """What ``status`` shows in the address column: the kind, or the schedule."""
    return f"{SCHEDULED}'{process.schedule}'" if process.schedule else process.kind


def is_scheduled(address: str) -> bool:
    return address.startswith(SCHEDULED)


def status_file(log: Path) -> Path:
    """Where a scheduled process's keeper writes its last and next run: beside its log."""
    return log.with_suffix(".status.json")


def scheduled_health(log: Path) -> str:
    """``status``'s health of a scheduled process: the run in progress or the last one
    (start, exit, seconds), and the next."""
    try:
        data = json.loads(status_file(log).read_text())
    except (OSError, ValueError):
        return "starting"
    upcoming = str(data.get("next_run") or "-").rpartition(" ")[2]
    if data.get("running_pid"):
        return f"run {data['runs']} running (pid {data['running_pid']}, {data['last_start']})"
    if not data.get("runs"):
        return f"next run {upcoming}"
    code = data.get("last_exit")
    ended = "exit 0" if code == 0 else (f"exit {code}" if code > 0 else f"signal {-code}")
    return f"last {data['last_start']}: {ended} ({data.get('last_seconds')}s), next {upcoming}"


def process_command(
    name: str, process: ProcessSection, python: ProjectPython, redis_url: str | None
) -> list[str]:
    """The argv of a process in the project's virtualenv; MissingProgram (one line)
    when its program is not there."""
    argv = process_argv(process.kind, process.argv, process.concurrency, redis_url)
    if argv[0] == "flask":
        return [str(python.executable), "-m", "flask", *argv[1:]]
    if argv[0] in {"python", "python3"}:
        return [str(python.executable), *argv[1:]]
    program = python.executable.parent / argv[0]
    if not program.is_file():
        venv = python.executable.parent.parent
        raise MissingProgram(
            f"{SPEC_FILENAME}: processes.{name}: '{argv[0]}' is not installed in {venv} "
            f"(command = {process.command!r})",
            hint=f"add {argv[0]} to the project's requirements and install them, or fix "
            f"processes.{name}.command",
        )
    return [str(program), *argv[1:]]


def check_processes(
    spec: Spec, python: ProjectPython, env: Mapping[str, str], cwd: Path
) -> dict[str, list[str]]:
    """Every process's argv, each checked (a Celery app is imported)."""
    commands: dict[str, list[str]] = {}
    for name, process in sorted(spec.processes.items()):
        commands[name] = process_command(name, process, python, env.get("REDIS_URL"))
        app = celery_app(process.argv) if process.kind.startswith("celery") else None
        if app:
            _import_celery(name, app, python, env, cwd)
    return commands


def _import_celery(
    name: str, app: str, python: ProjectPython, env: Mapping[str, str], cwd: Path
) -> None:
    try:
        result = subprocess.run(
            [str(python.executable), "-c", _CELERY_IMPORT, app],
            cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ProcessImportFailed(
            f"processes.{name}: importing the Celery app {app} took over 60s"
        ) from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ProcessImportFailed(
            f"{SPEC_FILENAME}: processes.{name}: the Celery app {app} does not import: "
            f"{lines[-1] if lines else f'exit {result.returncode}'}",
            hint=f"fix the app, or the -A of processes.{name}.command",
        )


def keeper_command(name: str, process: ProcessSection, argv: list[str], log: Path) -> list[str]:
    """flaskprod's own interpreter runs the keeper; the keeper runs the project's argv
    (on its schedule, when it has one)."""
    when = []
    if process.schedule:
        when = ["--schedule", process.schedule, "--status-file", str(status_file(log))]
    return [
        sys.executable, "-m", "flaskprod.stack.keeper", "--name", name,
        "--stop-timeout", str(process.stop_timeout), *when, "--", *argv,
    ]  # fmt: skip


def process_env(spec: Spec, env: Mapping[str, str]) -> dict[str, str]:
    """The app's environment, plus FLASK_APP (a task module may build the app)."""
    return {**env, **flask_env(spec.app.target), "PYTHONUNBUFFERED": "1"}
