"""The processes of an app beside its web server: what a command line runs (an RQ or
Celery worker, a scheduler, a Flask CLI command), and when a scheduled one runs.

Pure functions over shell words and cron text: :mod:`flaskprod.spec.model` validates
``[processes.<name>]`` with them, detection (:mod:`flaskprod.spec.process_scan`) names
what a project's launchers run, the kit renders every target from the same answers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Literal

#: What a process is; decides its graceful stop, its Redis needs and its check rules.
ProcessKind = Literal["rq", "rq-scheduler", "celery", "celery-beat", "command"]
KINDS: tuple[str, ...] = ("rq", "rq-scheduler", "celery", "celery-beat", "command")
#: Kinds that keep jobs in Redis (an evicting policy would silently drop them).
QUEUE_KINDS = frozenset({"rq", "rq-scheduler", "celery", "celery-beat"})
#: Kinds of which exactly one may run (two would start every scheduled job twice).
SINGLETON_KINDS = frozenset({"rq-scheduler", "celery-beat"})

#: A process name: part of unit, service and Deployment names ({app}-{process}).
NAME = re.compile(r"^[a-z][a-z0-9-]{0,20}$")


def program(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(program, its arguments) of a command: ``/srv/x/venv/bin/rq worker q`` ->
    ("rq", ["worker", "q"]); ``python -m celery -A a worker`` -> ("celery", [...])."""
    words = list(argv)
    while words and ("=" in words[0] and not words[0].startswith("-")):
        words = words[1:]  # VAR=value in front of the command
    if words and PurePosixPath(words[0]).name == "exec":
        words = words[1:]
    if not words:
        return None
    name = PurePosixPath(words[0]).name
    if re.fullmatch(r"python[\d.]*", name) and len(words) > 2 and words[1] == "-m":
        return words[2], words[3:]
    return name, words[1:]


def classify(argv: Sequence[str]) -> ProcessKind | None:
    """The kind of process a command starts, or None when it is none of ours (an app
    server, a migration, a shell built-in)."""
    found = program(argv)
    if found is None:
        return None
    name, args = found
    plain = [word for word in args if not word.startswith("-")]
    if name == "rq" and plain[:1] in (["worker"], ["worker-pool"]):
        return "rq"
    if name in {"rqscheduler", "rq-scheduler"}:
        return "rq-scheduler"
    if name == "celery":
        words = set(args)
        if "beat" in words:
            return "celery-beat"
        if "worker" in words:
            return "celery"
        return None
    return None


def celery_app(argv: Sequence[str]) -> str | None:
    """The ``-A``/``--app`` of a celery command line."""
    words = list(argv)
    for at, word in enumerate(words):
        if word in {"-A", "--app"} and at + 1 < len(words):
            return words[at + 1]
        if word.startswith("--app="):
            return word.split("=", 1)[1]
        if word.startswith("-A") and len(word) > 2:
            return word[2:]
    return None


def split(command: str) -> list[str]:
    """A spec command's words (refused as the model's error when it does not parse)."""
    try:
        return shlex.split(command)
    except ValueError as error:
        raise ValueError(f"not a command line a shell could run: {error}") from None


# -- schedules: cron's five fields, also as systemd's OnCalendar= ---------------------------

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_PART = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


def check_cron(expression: str) -> str:
    """``expression`` when it is a five-field cron schedule (numbers, ``*``, ``a-b``,
    ``*/n``, lists), as Kubernetes CronJobs take it; ValueError naming the bad field."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"must be a cron schedule of 5 fields, minute hour day month weekday, e.g. "
            f"'*/15 * * * *' (got {expression!r})"
        )
    for text, (what, low, high) in zip(fields, _FIELDS, strict=True):
        for part in text.split(","):
            match = _PART.match(part)
            if not match:
                raise ValueError(f"{what} field {text!r}: use numbers, '*', 'a-b', '*/n', lists")
            numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
            if any(n < low or n > high for n in numbers):
                raise ValueError(f"{what} field {text!r}: {low} to {high}")
            if match.group(2) is not None and int(match.group(2)) == 0:
                raise ValueError(f"{what} field {text!r}: a step of 0")
    return expression


def on_calendar(expression: str) -> str:
    """A cron schedule as systemd's ``OnCalendar=``: ``*/15 * * * *`` ->
    ``*-*-* *:00/15:00``, ``0 3 * * 1-5`` -> ``Mon..Fri *-*-* 03:00:00``."""
    minute, hour, day, month, weekday = check_cron(expression).split()
    date = f"*-{_calendar(month, 1)}-{_calendar(day, 1)}"
    time = f"{_calendar(hour, 0)}:{_calendar(minute, 0)}:00"
    if weekday == "*":
        return f"{date} {time}"
    return f"{_weekdays(weekday)} {date} {time}"


def _calendar(text: str, first: int) -> str:
    parts = []
    for part in text.split(","):
        match = _PART.match(part)
        assert match is not None  # checked by check_cron
        base, step = match.group(1), match.group(2)
        if base == "*":
            parts.append(f"{first:02d}/{step}" if step else "*")
        elif "-" in base:
            low, high = base.split("-")
            if step:  # systemd has no stepped range: list the values
                parts += [f"{n:02d}" for n in range(int(low), int(high) + 1, int(step))]
            else:
                parts.append(f"{int(low):02d}..{int(high):02d}")
        else:
            parts.append(f"{int(base):02d}/{step}" if step else f"{int(base):02d}")
    return ",".join(parts)


def _weekdays(text: str) -> str:
    parts = []
    for part in text.split(","):
        match = _PART.match(part)
        assert match is not None
        base, step = match.group(1), match.group(2)
        if base == "*":
            numbers = list(range(0, 7, int(step or 1)))
        elif "-" in base:
            low, high = (int(n) for n in base.split("-"))
            numbers = list(range(low, high + 1, int(step or 1)))
        else:
            numbers = [int(base)]
        parts += [_DAYS[n] for n in numbers]
    return ",".join(dict.fromkeys(parts))


# -- the command each target runs -------------------------------------------------------


def process_argv(
    kind: str, argv: Sequence[str], concurrency: int | None, redis_url: str | None
) -> list[str]:
    """The words a target runs for a process: an RQ worker gets ``--url`` (the app's
    Redis, as each target names it) unless the command names a connection, and its
    concurrency (``rq worker-pool --num-workers N``); celery gets ``--concurrency N``."""
    words = list(argv)
    found = program(words)
    if found is None:
        return words
    name, args = found
    args = list(args)
    if kind == "rq" and args:
        at = next((i for i, w in enumerate(args) if w in {"worker", "worker-pool"}), None)
        if at is not None:
            if concurrency and concurrency > 1 and args[at] == "worker":
                args[at : at + 1] = ["worker-pool", "--num-workers", str(concurrency)]
                at += 2
            named = any(
                w in {"--url", "-u", "--config", "-c"} or w.startswith("--url=") for w in args
            )
            if redis_url and not named:
                args[at + 1 : at + 1] = ["--url", redis_url]
    named = any(w in {"-c", "--concurrency"} or w.startswith("--concurrency=") for w in args)
    if kind == "celery" and concurrency and not named:
        args += ["--concurrency", str(concurrency)]
    return [name, *args]
