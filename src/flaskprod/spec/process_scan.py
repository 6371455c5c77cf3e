"""The processes a project runs beside its web server, read from its own files.

- launchers (Procfile, supervisor programs, compose services, boot scripts): ``rq
  worker``, ``rqscheduler``, ``celery -A app worker``/``beat``; named as the launcher
  names them (microblog's Procfile ``worker``);
- crontab files: a command with its schedule (``0 3 * * * flask send-digest``), and
  systemd timers of the project whose service runs a ``flask`` command (their
  ``OnCalendar=`` when it has a cron equivalent: daily, hourly, ``*-*-* 03:00:00``...);
- the code, when no launcher starts them: an RQ queue (``rq.Queue('tasks')``) or a
  Celery app (``celery = Celery(...)``, ``beat_schedule``) gets its worker; an
  APScheduler started inside the app is reported (it runs in every web worker).

Nothing is imported or run. The result goes into the spec as ``[processes.<name>]``.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from flaskprod.launch.launchers import Launcher, read_launchers
from flaskprod.launch.shell import commands
from flaskprod.spec.launchers import launcher_files
from flaskprod.spec.processes import (
    NAME,
    ProcessKind,
    check_cron,
    classify,
    program,
)

#: Launchers in the order their names are preferred (a Procfile names processes best).
_ORDER = ("procfile", "supervisor", "compose", "script")
#: Process names by kind, when the launcher gives none.
_DEFAULT_NAMES: dict[str, str] = {
    "rq": "worker",
    "celery": "worker",
    "rq-scheduler": "scheduler",
    "celery-beat": "beat",
    "command": "job",
}
_CRON_FILES = ("crontab", "*.crontab", "cron/*", "deploy/cron*", "deployment/cron*")
_CRON_LINE = re.compile(r"^\s*((?:\S+\s+){4}\S+)\s+(.+?)\s*$")
_APSCHEDULER = ("apscheduler", "flask_apscheduler")


@dataclass(frozen=True)
class FoundProcess:
    name: str
    command: str
    kind: ProcessKind
    where: str
    concurrency: int | None = None
    schedule: str | None = None

    def section(self) -> dict[str, Any]:
        """Its ``[processes.<name>]`` table."""
        values: dict[str, Any] = {"command": self.command, "kind": self.kind}
        if self.concurrency is not None:
            values["concurrency"] = self.concurrency
        if self.schedule is not None:
            values["schedule"] = self.schedule
        return values


@dataclass(frozen=True)
class ProcessScan:
    processes: tuple[FoundProcess, ...] = ()
    #: Where the app starts an APScheduler itself ("app/__init__.py"): in every web worker.
    web_scheduler: str | None = None
    notes: tuple[str, ...] = field(default=())


def scan_processes(root: Path, sources: Iterable[Path]) -> ProcessScan:
    """The processes of the project at ``root``; ``sources`` are its Python files."""
    found: dict[str, FoundProcess] = {}
    seen: set[str] = set()
    launchers = read_launchers(launcher_files(root, ()), _ORDER)
    scheduled = [*_from_crontabs(root), *_from_timers(root)]
    for process in [*_from_launchers(root, launchers), *scheduled]:
        _add(found, seen, process)
    code = _scan_code(root, sources)
    kinds = {process.kind for process in found.values()}
    for process in code.processes:
        if process.kind not in kinds:
            _add(found, seen, process)
    return ProcessScan(tuple(found.values()), code.web_scheduler)


def _add(found: dict[str, FoundProcess], seen: set[str], process: FoundProcess) -> None:
    if process.command in seen:
        return  # the same command in the Procfile and the supervisor config
    seen.add(process.command)
    name = process.name
    if name in found or name in {"web", "release"}:
        name = next(
            f"{name}-{n}" for n in range(2, 100) if f"{name}-{n}" not in found and len(name) < 18
        )
    found[name] = FoundProcess(
        name, process.command, process.kind, process.where, process.concurrency, process.schedule
    )


def _from_launchers(root: Path, launchers: Sequence[Launcher]) -> list[FoundProcess]:
    found: list[FoundProcess] = []
    for launcher in launchers:
        for command in commands(launcher.text):
            kind = classify(command.argv)
            if kind is None:
                continue
            found.append(
                FoundProcess(
                    _name(launcher.name, kind),
                    normalized(command.argv),
                    kind,
                    _where(root, launcher.file),
                    _concurrency(command.argv) if kind == "celery" else None,
                )
            )
    return found


def normalized(argv: Sequence[str]) -> str:
    """The command as the spec keeps it: its program by name (the virtualenv it runs
    from is the target's: ``/home/u/venv/bin/rq worker q`` -> ``rq worker q``)."""
    found = program(argv)
    assert found is not None
    name, args = found
    return shlex.join([name, *args])


def _name(given: str, kind: ProcessKind) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", given.lower()).strip("-")
    return slug if NAME.match(slug) else _DEFAULT_NAMES[kind]


def _concurrency(argv: Sequence[str]) -> int | None:
    words = list(argv)
    for at, word in enumerate(words):
        value = None
        if word in {"-c", "--concurrency"} and at + 1 < len(words):
            value = words[at + 1]
        elif word.startswith("--concurrency="):
            value = word.split("=", 1)[1]
        if value is not None and value.isdigit():
            return int(value)
    return None


def _where(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _from_crontabs(root: Path) -> list[FoundProcess]:
    found: list[FoundProcess] = []
    files = sorted({path for pattern in _CRON_FILES for path in root.glob(pattern)})
    for path in files:
        if not path.is_file():
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            match = _CRON_LINE.match(line)
            if not match or line.lstrip().startswith("#"):
                continue
            try:
                schedule = check_cron(" ".join(match.group(1).split()))
            except ValueError:
                continue  # an environment line (MAILTO=...), @reboot
            for command in commands(match.group(2)):
                started = program(command.argv)
                if started is None or started[0] != "flask" or not started[1]:
                    continue
                sub = next((w for w in started[1] if not w.startswith("-")), "job")
                found.append(
                    FoundProcess(
                        _name(sub, "command"),
                        normalized(command.argv),
                        "command",
                        _where(root, path),
                        schedule=schedule,
                    )
                )
    return found


#: OnCalendar= shorthands and their cron schedule.
_CALENDAR_WORDS = {
    "minutely": "* * * * *",
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "weekly": "0 0 * * 1",
    "monthly": "0 0 1 * *",
}
_CALENDAR_TIME = re.compile(r"^(?:\*-\*-\*\s+)?(\d{1,2}):(\d{2})(?::00)?$")
_GENERATED = "# Generated by flaskprod "


def _from_timers(root: Path) -> list[FoundProcess]:
    """The project's own systemd timers (not the kit's) whose service runs flask."""
    found: list[FoundProcess] = []
    timers = sorted({*root.glob("*.timer"), *root.glob("*/*.timer"), *root.glob("*/*/*.timer")})
    for timer in timers:
        try:
            text = timer.read_text(encoding="utf-8")
            service = timer.with_suffix(".service").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.startswith(_GENERATED) or "/.venv/" in timer.as_posix():
            continue
        calendar = _value(text, "OnCalendar")
        schedule = _CALENDAR_WORDS.get(calendar.lower())
        match = _CALENDAR_TIME.match(calendar)
        if match:
            schedule = f"{int(match.group(2))} {int(match.group(1))} * * *"
        if schedule is None:
            continue  # no cron equivalent: left to the project's own timer
        for command in commands(_value(service, "ExecStart").lstrip("-@:+!")):
            started = program(command.argv)
            if started is None or started[0] != "flask" or not started[1]:
                continue
            sub = next((w for w in started[1] if not w.startswith("-")), "job")
            found.append(
                FoundProcess(
                    _name(sub, "command"),
                    normalized(command.argv),
                    "command",
                    _where(root, timer),
                    schedule=schedule,
                )
            )
    return found


def _value(unit: str, key: str) -> str:
    values = [
        line.split("=", 1)[1].strip()
        for line in unit.splitlines()
        if line.strip().startswith(f"{key}=")
    ]
    return values[-1] if values else ""


@dataclass
class _CodeScan:
    processes: list[FoundProcess] = field(default_factory=list)
    web_scheduler: str | None = None


def _scan_code(root: Path, sources: Iterable[Path]) -> _CodeScan:
    result = _CodeScan()
    queues: list[str] = []
    queue_file = ""
    for path in sources:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not any(word in text for word in ("rq", "Celery", "apscheduler", "APScheduler")):
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        where = _where(root, path)
        module = _module(root, path)
        imports = _imported(tree)
        if "rq" in imports:
            named = _rq_queues(tree)
            if named and not queue_file:
                queue_file = where
            queues += [name for name in named if name not in queues]
        if "celery" in imports:
            variable = _celery_instance(tree)
            if variable and module:
                app = f"{module}:{variable}"
                result.processes.append(
                    FoundProcess("worker", f"celery -A {app} worker", "celery", where)
                )
                if "beat_schedule" in text:
                    result.processes.append(
                        FoundProcess("beat", f"celery -A {app} beat", "celery-beat", where)
                    )
        started = ".start()" in text or "APScheduler(" in text
        if imports & set(_APSCHEDULER) and started:
            result.web_scheduler = result.web_scheduler or where
    if queues:
        command = shlex.join(["rq", "worker", *queues])
        result.processes.insert(0, FoundProcess("worker", command, "rq", queue_file))
    return result


def _module(root: Path, path: Path) -> str | None:
    relative = path.relative_to(root).with_suffix("")
    parts = list(PurePosixPath(relative.as_posix()).parts)
    if parts and parts[0] == "src":
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def _imported(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def _rq_queues(tree: ast.Module) -> list[str]:
    """Queue names of ``Queue('name', ...)`` / ``rq.Queue(name='name')`` calls."""
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called != "Queue":
            continue
        given = node.args[0] if node.args else None
        given = next((k.value for k in node.keywords if k.arg == "name"), given)
        name = given.value if isinstance(given, ast.Constant) else "default"
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


def _celery_instance(tree: ast.Module) -> str | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == "Celery":
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if targets:
                    return targets[0]
    return None
