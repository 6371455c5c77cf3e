"""A process of the spec that cannot run stops `flaskprod up` before anything serves,
with one line naming the process: a worker command that is not installed in the
project's venv, a Celery app that does not import (with Celery installed)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from flaskprod_cli import run_flaskprod
from real_projects import venv_with

from flaskprod.errors import ExitCode
from flaskprod.stack.ports import free_ports

pytestmark = pytest.mark.services

APP = (
    'from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.get("/")\n'
    'def index():\n    return "hi"\n'
)
TASKS = 'from celery import Celery\nimport no_such_module_of_tasks\n\ncelery = Celery("tasks")\n'
#: Celery in the project's own venv, with the app server up needs (granian, init's default).
CELERY_VENV = ["flask==3.1.3", "granian==2.8.7", "celery==5.4.0"]


@pytest.fixture
def project() -> Iterator[Path]:
    """A plain Flask app (SQLite, no Redis) with its own venv holding Celery."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-proc-"))
    base.chmod(0o755)
    root = base / "tasks-app"
    root.mkdir()
    (root / "app.py").write_text(APP)
    (root / "tasks.py").write_text(TASKS)
    (root / ".venv").symlink_to(venv_with("celery-tiny", CELERY_VENV))
    result = run_flaskprod("init", str(root), "--name", "tasks-app")
    assert result.returncode == 0, result.stdout + result.stderr
    spec = root / "flaskprod.toml"
    text = spec.read_text().replace('engine = "postgresql"', 'engine = "sqlite"')
    spec.write_text(text.replace("[redis]\nenabled = true", "[redis]\nenabled = false"))
    yield root
    if (root / ".flaskprod/state.json").exists():
        run_flaskprod("down", str(root))
    shutil.rmtree(base, ignore_errors=True)


def up_with(root: Path, processes: str) -> tuple[int, str, str]:
    spec = root / "flaskprod.toml"
    spec.write_text(spec.read_text().replace("[ignore]", f"{processes}\n[ignore]"))
    https, http = free_ports(2)
    result = run_flaskprod(
        "up", str(root), "-d", "--https-port", str(https), "--http-port", str(http), timeout=180
    )
    return result.returncode, result.stdout, result.stderr


def test_a_worker_command_that_is_not_installed(project: Path) -> None:
    code, out, err = up_with(project, '[processes.mailer]\ncommand = "mail-worker --queue mail"\n')
    assert code == ExitCode.ENVIRONMENT, out + err
    first = err.strip().splitlines()[0]
    assert first == (
        f"flaskprod: error: flaskprod.toml: processes.mailer: 'mail-worker' is not installed "
        f"in {project / '.venv'} (command = 'mail-worker --queue mail') (add mail-worker to "
        "the project's requirements and install them, or fix processes.mailer.command)"
    ), err
    assert "Traceback" not in err
    assert not (project / ".flaskprod/state.json").exists()  # nothing left running


def test_a_celery_app_that_does_not_import(project: Path) -> None:
    """init found the Celery app in tasks.py (statically: it does not import)."""
    assert 'command = "celery -A tasks:celery worker"' in (project / "flaskprod.toml").read_text()
    code, out, err = up_with(project, "")
    assert code == ExitCode.USAGE, out + err
    first = err.strip().splitlines()[0]
    assert first == (
        "flaskprod: error: flaskprod.toml: processes.worker: the Celery app tasks:celery does "
        "not import: ModuleNotFoundError: No module named 'no_such_module_of_tasks' (fix the "
        "app, or the -A of processes.worker.command)"
    ), err
    assert "Traceback" not in err
    assert not (project / ".flaskprod/state.json").exists()


def test_a_scheduled_command_that_is_not_installed(project: Path) -> None:
    """up runs scheduled processes too, so their program is checked before anything starts."""
    process = '[processes.nightly]\ncommand = "nightly-report"\nschedule = "0 3 * * *"\n'
    code, out, err = up_with(project, process)
    assert code == ExitCode.ENVIRONMENT, out + err
    first = err.strip().splitlines()[0]
    assert first.startswith(
        "flaskprod: error: flaskprod.toml: processes.nightly: 'nightly-report' is not installed"
    ), err
    assert "Traceback" not in err
    assert not (project / ".flaskprod/state.json").exists()


def test_a_schedule_that_never_fires(project: Path) -> None:
    """Valid cron fields, no such day: its keeper would wait for ever."""
    process = '[processes.leap]\ncommand = "python app.py"\nschedule = "0 0 31 2 *"\n'
    code, out, err = up_with(project, process)
    assert code == ExitCode.USAGE, out + err
    assert err.strip().splitlines()[0] == (
        "flaskprod: error: flaskprod.toml: processes.leap.schedule: '0 0 31 2 *' names no day "
        "that exists (cron's day and month fields), so it would never run; e.g. '0 0 28 2 *'"
    ), err
    assert not (project / ".flaskprod/state.json").exists()
