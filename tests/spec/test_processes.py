"""[processes.<name>] in the spec and their detection: what a command runs, cron
schedules (and systemd's reading of them), the refusals, and the processes found in a
project's Procfile, supervisor configs, compose files, crontab and code."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from flaskprod.errors import SpecError
from flaskprod.spec.load import parse_spec
from flaskprod.spec.model import Spec
from flaskprod.spec.process_scan import scan_processes
from flaskprod.spec.processes import (
    check_cron,
    classify,
    next_run,
    on_calendar,
    process_argv,
)


def spec(processes: dict[str, dict[str, object]], **sections: dict[str, object]) -> Spec:
    data: dict[str, object] = {"app": {"target": "app:app", "name": "app"}, **sections}
    data["processes"] = processes
    data.setdefault("redis", {"maxmemory_policy": "noeviction"})
    return Spec.model_validate(data)


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("rq worker tasks", "rq"),
        ("/home/u/venv/bin/rq worker-pool -n 4 default", "rq"),
        ("rqscheduler --url redis://x", "rq-scheduler"),
        ("celery -A app.tasks worker -l info", "celery"),
        ("python -m celery --app app beat", "celery-beat"),
        ("exec celery -A app worker -B", "celery"),
        ("gunicorn app:app", None),
        ("flask db upgrade", None),
        ("rq info", None),
    ],
)
def test_classify(command: str, kind: str | None) -> None:
    assert classify(command.split()) == kind


def test_the_kind_is_read_from_the_command_and_checked() -> None:
    assert spec({"worker": {"command": "rq worker q"}}).processes["worker"].kind == "rq"
    assert spec({"job": {"command": "flask digest"}}).processes["job"].kind == "command"
    with pytest.raises(ValidationError, match="the command runs celery: set 'celery'"):
        spec({"worker": {"command": "celery -A app worker", "kind": "rq"}})


def test_an_evicting_redis_is_refused_when_a_queue_uses_it() -> None:
    with pytest.raises(ValidationError, match=r"processes\.worker keeps its jobs in Redis"):
        spec({"worker": {"command": "rq worker"}}, redis={"maxmemory_policy": "allkeys-lru"})
    # a scheduled Flask command keeps no jobs in Redis
    spec({"job": {"command": "flask digest", "schedule": "0 3 * * *"}}, redis={})


@pytest.mark.parametrize(
    ("processes", "message"),
    [
        ({"Worker": {"command": "rq worker"}}, "processes.Worker: a name of lowercase"),
        ({"web": {"command": "rq worker"}}, "not web, release"),
        ({"w": {"command": ""}}, "at least 1 character"),
        ({"w": {"command": "rq worker 'open"}}, "not a command line a shell could run"),
        ({"w": {"command": "flask x", "schedule": "every day"}}, "must be a cron schedule"),
        ({"w": {"command": "flask x", "schedule": "61 * * * *"}}, "minute field '61': 0 to 59"),
        ({"w": {"command": "rq worker", "schedule": "* * * * *"}}, "runs all the time"),
        ({"w": {"command": "rq worker", "stop_timeout": 0}}, "greater than or equal to 1"),
    ],
)
def test_bad_processes_name_the_key(processes: dict[str, dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(processes)


@pytest.mark.parametrize(
    ("cron", "calendar"),
    [
        ("*/15 * * * *", "*-*-* *:00/15:00"),
        ("0 3 * * *", "*-*-* 03:00:00"),
        ("30 6 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 06:30:00"),
        ("0 0 1 */3 *", "*-01/3-01 00:00:00"),
        ("5 4 * * 0,6", "Sun,Sat *-*-* 04:05:00"),
        ("0 8-18/2 * * *", "*-*-* 08,10,12,14,16,18:00:00"),
    ],
)
def test_cron_as_systemd_calendar(cron: str, calendar: str) -> None:
    assert on_calendar(check_cron(cron)) == calendar
    result = subprocess.run(
        ["systemd-analyze", "calendar", calendar], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr  # systemd reads it


def test_the_command_each_target_runs() -> None:
    # an RQ worker: the app's Redis and RQ's settings for a bounded recovery
    assert process_argv("rq", ["rq", "worker", "q"], None, "$R") == [
        "rq", "worker", "--url", "$R", "--with-scheduler", "--job-monitoring-interval", "5",
        "--worker-ttl", "30", "--maintenance-interval", "15", "q",
    ]  # fmt: skip
    # a command that names its connection or one of the settings keeps its own
    assert process_argv("rq", ["rq", "worker", "-s", "--worker-ttl=99", "-c", "x"], None, "$R") == [
        "rq", "worker", "--job-monitoring-interval", "5", "--maintenance-interval", "15",
        "-s", "--worker-ttl=99", "-c", "x",
    ]  # fmt: skip
    # a pool takes none of them
    assert process_argv("rq", ["rq", "worker", "q"], 2, None) == [
        "rq", "worker-pool", "--num-workers", "2", "q",
    ]  # fmt: skip
    assert process_argv("celery", ["celery", "-A", "a", "worker"], 8, None)[-2:] == [
        "--concurrency", "8",
    ]  # fmt: skip


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_detected_from_launchers_crontab_and_code(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Procfile": "web: gunicorn app:app\nworker: rq worker high default\n",
            # the same worker again (ignored), and a beat with its own name
            "deployment/supervisor/app.conf": (
                "[program:app-tasks]\ncommand=/srv/venv/bin/rq worker high default\n\n"
                "[program:app-beat]\ncommand=/srv/venv/bin/celery -A app.tasks beat\n"
            ),
            "compose.yaml": (
                "services:\n  celery:\n    command: celery -A app.tasks worker --concurrency 4\n"
            ),
            "crontab": "MAILTO=ops\n0 3 * * * cd /srv/app && flask send-digest --all\n",
            "app/__init__.py": "import rq\nq = rq.Queue('ignored', connection=None)\n",
        },
    )
    found = scan_processes(tmp_path, sorted(tmp_path.rglob("*.py")))
    sections = {p.name: p.section() for p in found.processes}
    assert sections == {
        "worker": {"command": "rq worker high default", "kind": "rq"},
        "app-beat": {"command": "celery -A app.tasks beat", "kind": "celery-beat"},
        "celery": {"command": "celery -A app.tasks worker --concurrency 4", "kind": "celery",
                   "concurrency": 4},
        "send-digest": {"command": "flask send-digest --all", "kind": "command",
                        "schedule": "0 3 * * *"},
    }  # fmt: skip
    assert spec(sections)  # what init writes is a valid spec


def test_detected_from_code_alone(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "shop/tasks.py": (
                "from celery import Celery\ncelery = Celery('shop')\n"
                "celery.conf.beat_schedule = {}\n"
            ),
            "shop/jobs.py": "from rq import Queue\nQueue('mail', connection=None)\n",
            "shop/sched.py": (
                "from apscheduler.schedulers.background import BackgroundScheduler\n"
                "s = BackgroundScheduler()\ns.start()\n"
            ),
        },
    )
    found = scan_processes(tmp_path, sorted(tmp_path.rglob("*.py")))
    assert {p.name: p.command for p in found.processes} == {
        "worker": "rq worker mail",
        "worker-2": "celery -A shop.tasks:celery worker",
        "beat": "celery -A shop.tasks:celery beat",
    }
    assert found.web_scheduler == "shop/sched.py"


def test_detected_from_the_projects_own_systemd_timer(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "deployment/cleanup.timer": "[Timer]\nOnCalendar=*-*-* 04:30:00\nPersistent=true\n",
            "deployment/cleanup.service": (
                "[Service]\nType=oneshot\nExecStart=/srv/app/venv/bin/flask purge-sessions\n"
            ),
            # one with no cron equivalent is left to the project's timer
            "deployment/odd.timer": "[Timer]\nOnCalendar=Mon..Fri 9..17/2:00\n",
            "deployment/odd.service": "[Service]\nExecStart=/srv/venv/bin/flask odd\n",
        },
    )
    found = scan_processes(tmp_path, [])
    assert [p.section() for p in found.processes] == [
        {"command": "flask purge-sessions", "kind": "command", "schedule": "30 4 * * *"}
    ]


@pytest.mark.parametrize(
    ("schedule", "after", "fires"),
    [
        ("* * * * *", "2026-12-07 16:58:30", "2026-12-07 16:59:00"),
        ("* * * * *", "2026-12-07 16:59:00", "2026-12-07 17:00:00"),  # strictly after
        ("*/15 * * * *", "2026-12-31 23:50:00", "2027-01-01 00:00:00"),
        ("30 6 * * 1-5", "2026-12-05 10:00:00", "2026-12-07 06:30:00"),  # Sat -> Mon
        ("0 3 * * 7", "2026-12-07 00:00:00", "2026-12-13 03:00:00"),  # 7 is Sunday
        ("0 0 29 2 *", "2026-03-01 00:00:00", "2028-02-29 00:00:00"),
        # day and weekday both restricted: either (the 1st, or a Monday)
        ("0 12 1 * 1", "2026-12-02 13:00:00", "2026-12-07 12:00:00"),
        ("5/20 * * * *", "2026-12-07 10:46:00", "2026-12-07 11:05:00"),
        ("*/2 * * * * *", "2026-12-07 16:58:31", "2026-12-07 16:58:32"),  # seconds first
    ],
)
def test_when_a_schedule_fires_next(schedule: str, after: str, fires: str) -> None:
    moment = next_run(schedule, datetime.fromisoformat(after))
    assert moment == datetime.fromisoformat(fires)


def test_a_schedule_that_never_fires_is_refused() -> None:
    with pytest.raises(ValueError, match="never fires"):
        next_run("0 0 31 2 *", datetime(2026, 1, 1))


def test_a_schedule_that_never_fires_is_refused_by_the_spec() -> None:
    """Every target would wait for ever on 31 February: render refuses it, not only up."""
    spec = (
        '[app]\nname = "demo"\ntarget = "app:app"\n'
        '[processes.leap]\ncommand = "python app.py"\nschedule = "0 0 31 2 *"\n'
    )
    with pytest.raises(SpecError, match=r"processes\.leap\.schedule: '0 0 31 2 \*' names no day"):
        parse_spec(spec)
    leap_day = spec.replace("31 2", "29 2")  # fires once in four years: valid
    assert parse_spec(leap_day).processes["leap"].schedule == "0 0 29 2 *"
