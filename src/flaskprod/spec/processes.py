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
from datetime import datetime, timedelta
from datetime import time as dtime
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


# -- when a schedule fires next (the keeper of ``flaskprod up``) ---------------------------

#: A leading seconds field the keeper also takes (systemd's calendar has seconds; the spec
#: keeps cron's five fields, which Kubernetes CronJobs take).
_SECOND = ("second", 0, 59)
#: A schedule that has not fired within this many days never will (``0 0 31 2 *``);
#: a 29 February schedule fires within 8 years.
_HORIZON_DAYS = 8 * 366


def check_schedule(expression: str) -> str:
    """A cron schedule (:func:`check_cron`), or one with a leading seconds field."""
    fields = expression.split()
    if len(fields) == 6:
        _values(fields[0], *_SECOND[1:], what=_SECOND[0])
        check_cron(" ".join(fields[1:]))
        return expression
    return check_cron(expression)


def next_run(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (naive local time, as cron and systemd's
    timers read it) that the schedule fires. Cron's rules: a weekday 7 is Sunday, and
    when both the day and the weekday are restricted, either one matching is enough.
    ValueError when it never fires (``0 0 31 2 *``)."""
    fields = check_schedule(expression).split()
    if len(fields) == 5:
        fields = ["0", *fields]
    seconds, minutes, hours, days, months, weekdays = (
        sorted(_values(text, low, high, what=what))
        for text, (what, low, high) in zip(fields, (_SECOND, *_FIELDS), strict=True)
    )
    weekday_set = {n % 7 for n in weekdays}
    any_day, any_weekday = fields[3].startswith("*"), fields[5].startswith("*")
    start = (after + timedelta(seconds=1)).replace(microsecond=0)
    day = start.date()
    for _ in range(_HORIZON_DAYS):
        in_month = day.day in days
        on_weekday = (day.weekday() + 1) % 7 in weekday_set  # cron: 0 is Sunday
        # both restricted: either one (cron's rule); else the restricted one decides
        both = not (any_day or any_weekday)
        fires = (in_month or on_weekday) if both else (in_month and on_weekday)
        if day.month in months and fires:
            for hour in hours:
                if day == start.date() and hour < start.hour:
                    continue
                for minute in minutes:
                    for second in seconds:
                        moment = datetime.combine(day, dtime(hour, minute, second))
                        if moment >= start:
                            return moment
        day += timedelta(days=1)
    raise ValueError(f"the schedule {expression!r} never fires")


def _values(text: str, low: int, high: int, *, what: str) -> set[int]:
    """The numbers a cron field names (``*/15``, ``1-5``, ``0,30``)."""
    found: set[int] = set()
    for part in text.split(","):
        match = _PART.match(part)
        if not match:
            raise ValueError(f"{what} field {text!r}: use numbers, '*', 'a-b', '*/n', lists")
        base, step = match.group(1), int(match.group(2) or 1)
        if step == 0:
            raise ValueError(f"{what} field {text!r}: a step of 0")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first, last = (int(n) for n in base.split("-"))
        else:
            first = int(base)
            last = high if match.group(2) else first  # '5/15': from 5 on
        if first < low or last > high:
            raise ValueError(f"{what} field {text!r}: {low} to {high}")
        found.update(range(first, last + 1, step))
    return found


# -- the command each target runs -------------------------------------------------------

#: RQ's own settings every target gives an ``rq worker`` (unless its command sets one),
#: so that a job whose worker was killed with its work horse (an OOM kill of the unit, a
#: lost host) is retried or moved to the failed registry within about 90 s instead of
#: RQ's defaults (10 minutes or more), and a retry with an interval actually runs:
#: - the work horse refreshes the job's heartbeat every 5 s; RQ itself adds 60 s, so the
#:   job of a dead horse expires from the started registry at most 65 s after the kill;
#: - the worker's main loop wakes every 15 s (its Redis wait is ``worker-ttl`` - 15 s)
#:   and cleans the registries every 15 s (``maintenance-interval``, 600 s by default):
#:   that cleanup is what retries an abandoned job (``Retry``) or moves it to the failed
#:   registry — a later ``rq info`` is not needed;
#: - ``--with-scheduler``: a retry with an interval (``Retry(interval=...)``) and
#:   ``enqueue_in`` put the job in the scheduled registry, which only a scheduler moves
#:   back to the queue; without one such a job waits there forever.
RQ_WORKER_SETTINGS: tuple[tuple[str, str | None], ...] = (
    ("--with-scheduler", None),
    ("--job-monitoring-interval", "5"),
    ("--worker-ttl", "30"),
    ("--maintenance-interval", "15"),
)
#: The short spelling of an RQ worker option, when it has one.
_RQ_SHORT = {"--with-scheduler": "-s"}


def _rq_settings(args: Sequence[str]) -> list[str]:
    """:data:`RQ_WORKER_SETTINGS` the command does not set itself."""
    words: list[str] = []
    for option, value in RQ_WORKER_SETTINGS:
        spellings = {option, _RQ_SHORT.get(option, option)}
        if any(w in spellings or w.startswith(f"{option}=") for w in args):
            continue
        words += [option] if value is None else [option, value]
    return words


def process_argv(
    kind: str, argv: Sequence[str], concurrency: int | None, redis_url: str | None
) -> list[str]:
    """The words a target runs for a process: an RQ worker gets ``--url`` (the app's
    Redis, as each target names it) unless the command names a connection, RQ's
    settings for a bounded recovery (:data:`RQ_WORKER_SETTINGS`) and its concurrency
    (``rq worker-pool --num-workers N``); celery gets ``--concurrency N``."""
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
            if args[at] == "worker":  # worker-pool takes none of these
                args[at + 1 : at + 1] = _rq_settings(args)
            if redis_url and not named:
                args[at + 1 : at + 1] = ["--url", redis_url]
    named = any(w in {"-c", "--concurrency"} or w.startswith("--concurrency=") for w in args)
    if kind == "celery" and concurrency and not named:
        args += ["--concurrency", str(concurrency)]
    return [name, *args]
