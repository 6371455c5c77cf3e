"""Rules about the processes beside the web server: queue workers (RQ, Celery),
schedulers (Celery beat, rq-scheduler, APScheduler) and the Redis their jobs live in.

They read the launchers that start workers (supervisor programs, systemd units,
compose services), the app's sources (APScheduler started in the app, Celery's
settings) and the Redis configuration (compose's redis command, the spec).
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.requirements import dependencies
from flaskprod.launch.discover import source_files
from flaskprod.launch.supervisor import parse_programs
from flaskprod.launch.systemd import parse_unit_text
from flaskprod.spec.processes import SINGLETON_KINDS, classify

#: Redis policies that never drop a key (a queued job is a key).
_KEEPING = frozenset({"noeviction"})
_QUEUE_PACKAGES = frozenset({"rq", "celery", "flask-rq2", "rq-scheduler", "dramatiq", "huey"})


@dataclass(frozen=True)
class WorkerLaunch:
    """One launcher that starts a worker or scheduler."""

    origin: str  # supervisor, systemd, compose
    file: str  # relative
    line: int
    name: str
    kind: str
    argv: tuple[str, ...]
    restarts: bool
    user: str | None  # None: not set (root under systemd and a root supervisord)
    replicas: int

    @property
    def runs_beat(self) -> bool:
        """It runs a scheduler: beat, rq-scheduler, or a worker with an embedded beat."""
        return self.kind in SINGLETON_KINDS or (
            self.kind == "celery" and any(w in {"-B", "--beat"} for w in self.argv)
        )


def _words(command: Any) -> list[str]:
    if isinstance(command, list):
        return [str(word) for word in command]
    try:
        return shlex.split(str(command))
    except ValueError:
        return []


def worker_launches(ctx: Context) -> list[WorkerLaunch]:
    """Every worker launcher of the project (cached per run)."""
    if "worker_launches" in ctx.cache:
        cached: list[WorkerLaunch] = ctx.cache["worker_launches"]
        return cached
    found: list[WorkerLaunch] = []
    for path in ctx.of_kind("supervisor"):
        for program in parse_programs(ctx.read(path), path):
            argv = _words(program.command)
            kind = classify(argv)
            if kind is None:
                continue
            options = program.options
            numprocs = options.get("numprocs", "1").strip()
            found.append(
                WorkerLaunch(
                    "supervisor", ctx.relative(path), program.line, program.name, kind,
                    tuple(argv), options.get("autorestart", "unexpected").lower() != "false",
                    options.get("user"), int(numprocs) if numprocs.isdigit() else 1,
                )
            )  # fmt: skip
    for path in ctx.of_kind("systemd"):
        if path.suffix != ".service":
            continue
        unit = parse_unit_text(path, ctx.read(path))
        start = unit.get("Service", "ExecStart")
        argv = _words(start.value.lstrip("-@:+!")) if start else []
        kind = classify(argv)
        if kind is None or start is None:
            continue
        restart = unit.value("Service", "Restart", "no")
        found.append(
            WorkerLaunch(
                "systemd", ctx.relative(path), start.line, path.stem, kind, tuple(argv),
                restart != "no", unit.value("Service", "User") or None, 1,
            )
        )  # fmt: skip
    for compose in parse_compose_files(ctx):
        if compose.error is not None:
            continue
        for name, service in compose.services.items():
            argv = _words(service.get("command") or "")
            kind = classify(argv)
            if kind is None:
                continue
            deploy = service.get("deploy") if isinstance(service.get("deploy"), dict) else {}
            policy = deploy.get("restart_policy") if isinstance(deploy, dict) else None
            restarts = str(service.get("restart", "no")) != "no" or isinstance(policy, dict)
            replicas = deploy.get("replicas", service.get("scale", 1)) if deploy else 1
            found.append(
                WorkerLaunch(
                    "compose", ctx.relative(compose.path), compose.line(name, "command"), name,
                    kind, tuple(argv), restarts,
                    str(service["user"]) if service.get("user") is not None else "image",
                    int(replicas) if str(replicas).isdigit() else 1,
                )
            )  # fmt: skip
    ctx.cache["worker_launches"] = found
    return found


@rule(
    "PRJ009",
    layer="project",
    level=Level.ERROR,
    title="a queue worker with no restart policy",
    help="A worker that crashes or is OOM-killed stays down and jobs pile up unseen: "
    "systemd 'Restart=always', supervisor 'autorestart=true', compose "
    "'restart: unless-stopped' ('flaskprod init' renders all three).",
    example="[program:worker]\ncommand=rq worker\nautorestart=false",
)
def no_restart(ctx: Context) -> Iterator[Finding]:
    for launch in worker_launches(ctx):
        if not launch.restarts:
            yield no_restart.finding(
                f"{launch.origin} {launch.name!r} runs a {launch.kind} worker that is never "
                "restarted when it exits",
                file=launch.file,
                line=launch.line,
            )


@rule(
    "PRJ010",
    layer="project",
    level=Level.ERROR,
    title="a scheduler started inside the web app (runs in every web worker)",
    help="gunicorn and granian run several worker processes, each importing the app: an "
    "APScheduler started there runs every job once per worker. Run the scheduler as one "
    "process of its own ([processes.<name>] with a schedule, or a script started once).",
    example="scheduler = BackgroundScheduler()\nscheduler.start()  # in create_app()",
)
def scheduler_in_web(ctx: Context) -> Iterator[Finding]:
    for path in source_files(ctx.root, (".py",)):
        text = ctx.read(path)
        if "apscheduler" not in text.lower() or ".start(" not in text:
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for line in _scheduler_starts(tree):
            yield scheduler_in_web.finding(
                f"{ctx.relative(path)} starts an APScheduler when the app is imported: each "
                "web worker runs every job",
                file=ctx.relative(path),
                line=line,
            )


_SCHEDULERS = (
    "BackgroundScheduler",
    "BlockingScheduler",
    "APScheduler",
    "AsyncIOScheduler",
    "GeventScheduler",
)


def _scheduler_starts(tree: ast.Module) -> list[int]:
    """Lines of ``<scheduler>.start()`` calls outside ``if __name__ == "__main__":``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in _SCHEDULERS:
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            guarded |= {id(child) for child in ast.walk(node)}
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "start"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in names
            and id(node) not in guarded
        ):
            lines.append(node.lineno)
    return lines


_ACKS_LATE = re.compile(r"acks_late['\"]?\s*[:=]\s*True")
_VISIBILITY = re.compile(r"visibility_timeout['\"]?\s*[:=]\s*(\d+)")
_TIME_LIMIT = re.compile(r"(?<!soft_)time_limit['\"]?\s*[:=]\s*(\d+)")


@rule(
    "PRJ011",
    layer="project",
    level=Level.WARNING,
    title="Celery loses or repeats tasks: no acks_late, or a visibility timeout shorter "
    "than the longest task",
    help="Set task_acks_late = True (a task is acknowledged when done, so a worker killed "
    "mid-task does not lose it) and, on a Redis broker, broker_transport_options = "
    "{'visibility_timeout': N} with N above the longest task's time_limit (else Redis "
    "hands a long task to a second worker while the first still runs it).",
    example="celery = Celery('app', broker=REDIS_URL)  # acks_late unset",
)
def celery_acks(ctx: Context) -> Iterator[Finding]:
    for path in source_files(ctx.root, (".py",)):
        text = ctx.read(path)
        if "Celery(" not in text:
            continue
        where = ctx.relative(path)
        line = next(n for n, raw in enumerate(text.splitlines(), 1) if "Celery(" in raw)
        if not _ACKS_LATE.search(text):
            yield celery_acks.finding(
                f"{where}: the Celery app does not set acks_late: a worker killed mid-task "
                "loses the task",
                file=where,
                line=line,
            )
            continue
        visibility = _VISIBILITY.search(text)
        limits = [int(n) for n in _TIME_LIMIT.findall(text)]
        longest = max(limits, default=0)
        timeout = int(visibility.group(1)) if visibility else 3600  # Redis's default
        if longest >= timeout:
            yield celery_acks.finding(
                f"{where}: a task may run {longest}s (time_limit) but the broker's "
                f"visibility_timeout is {timeout}s: with acks_late, Redis gives it to a "
                "second worker while the first still runs it",
                file=where,
                line=line,
            )


@rule(
    "PRJ012",
    layer="project",
    level=Level.ERROR,
    title="the scheduler (Celery beat, rq-scheduler) runs more than once",
    help="Run exactly one beat: a process of its own with one replica (numprocs=1, "
    "replicas: 1), never 'celery worker -B' on several workers as well as a beat.",
    example="[program:beat]\ncommand=celery -A app beat\nnumprocs=2",
)
def beat_twice(ctx: Context) -> Iterator[Finding]:
    by_file: dict[str, list[WorkerLaunch]] = {}
    for launch in worker_launches(ctx):
        if not launch.runs_beat:
            continue
        by_file.setdefault(launch.file, []).append(launch)
        if launch.replicas > 1:
            yield beat_twice.finding(
                f"{launch.origin} {launch.name!r} runs the scheduler {launch.replicas} times: "
                "every scheduled job runs that often",
                file=launch.file,
                line=launch.line,
            )
    for file, launches in by_file.items():
        if len(launches) > 1:
            names = ", ".join(repr(launch.name) for launch in launches)
            yield beat_twice.finding(
                f"{file}: {names} each run a scheduler: every scheduled job runs "
                f"{len(launches)} times",
                file=file,
                line=launches[1].line,
            )


@rule(
    "PRJ013",
    layer="project",
    level=Level.ERROR,
    title="a worker runs as root",
    help="Jobs run the app's code on untrusted input (uploads, e-mails): give the worker "
    "the app's own user (systemd 'User=app', supervisor 'user=app').",
    example="[program:worker]\ncommand=rq worker\n; no user=: supervisord's root",
)
def worker_as_root(ctx: Context) -> Iterator[Finding]:
    for launch in worker_launches(ctx):
        if launch.origin == "compose":
            if launch.user in {"root", "0", "0:0"}:
                yield worker_as_root.finding(
                    f"compose service {launch.name!r} runs its {launch.kind} worker as root",
                    file=launch.file,
                    line=launch.line,
                )
            continue
        if launch.user is None or launch.user == "root":
            how = "User=" if launch.origin == "systemd" else "user="
            yield worker_as_root.finding(
                f"{launch.origin} {launch.name!r} runs its {launch.kind} worker as root "
                f"(no {how} of another user)",
                file=launch.file,
                line=launch.line,
            )


@rule(
    "PRJ014",
    layer="project",
    level=Level.ERROR,
    title="the Redis that holds a job queue may evict keys",
    help="An evicting maxmemory-policy (allkeys-lru, volatile-ttl...) silently drops "
    "queued jobs when Redis is full: set 'maxmemory-policy noeviction' on the queue's "
    "Redis (redis.maxmemory_policy in flaskprod.toml), or give the queue a Redis of its own.",
    example="command: redis-server --maxmemory-policy allkeys-lru   # and rq in requirements",
)
def evicting_queue(ctx: Context) -> Iterator[Finding]:
    queue = _queue(ctx)
    if queue is None:
        return
    for compose in parse_compose_files(ctx):
        if compose.error is not None:
            continue
        for name, service in compose.services.items():
            argv = _words(service.get("command") or "")
            if not argv or Path(argv[0]).name != "redis-server":
                continue
            policy = _flag(argv, "--maxmemory-policy")
            if policy and policy not in _KEEPING:
                yield evicting_queue.finding(
                    f"compose service {name!r}: maxmemory-policy {policy} evicts keys, and "
                    f"{queue} keeps its jobs in Redis",
                    file=ctx.relative(compose.path),
                    line=compose.line(name, "command"),
                )
    spec = ctx.spec
    if spec is not None and spec.redis.enabled and spec.redis.maxmemory_policy not in _KEEPING:
        yield evicting_queue.finding(
            f"flaskprod.toml: redis.maxmemory_policy = {spec.redis.maxmemory_policy!r} evicts "
            f"keys, and {queue} keeps its jobs in Redis",
            file="flaskprod.toml",
            line=_line(ctx.root / "flaskprod.toml", "maxmemory_policy"),
        )


def _queue(ctx: Context) -> str | None:
    """What keeps jobs in Redis: a worker launcher, else a queue package required."""
    launches = worker_launches(ctx)
    if launches:
        return f"{launches[0].kind} ({launches[0].file})"
    for dependency in dependencies(ctx):
        if dependency.production and dependency.name in _QUEUE_PACKAGES:
            return f"{dependency.name} ({dependency.file})"
    return None


def _flag(argv: list[str], name: str) -> str | None:
    for at, word in enumerate(argv):
        if word == name and at + 1 < len(argv):
            return argv[at + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return None


def _line(path: Path, key: str) -> int:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 1
    return next((n for n, raw in enumerate(lines, 1) if raw.startswith(f"{key} ")), 1)
