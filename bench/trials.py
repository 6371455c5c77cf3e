"""What a new user runs, on real Flask projects, each in a fresh copy with its own
virtual environment (flaskprod runs from this checkout's, never from the project's):

    pip freeze; check (no spec); init; render --check; check; up -d on free ports;
    GET / and one static file through nginx+TLS, the health and ready paths; down;
    pip freeze again (must be identical).

    .venv/bin/python -m bench.trials [--project NAME_OR_PATH ...] [--json OUT] [--doc]
                                     [--flaskprod EXECUTABLE]

Without ``--project``: the shared real projects (microblog, flask-on-docker, flaskr).
What a project needs beyond that (extra ``up`` arguments, a variable, a requirements line
flaskprod names) is in :data:`NEEDS`, each with the reason; a project is never edited.
Every step is bounded in time; a failing step is recorded with its first error line and
the trial goes on where it can. ``--doc`` rewrites the "Real projects" section of
docs/trials.md from the results. Exit status: 0 when every step of every project passed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.trials_env import (
    REPO,
    SOURCE,
    TrialSetupError,
    fresh_copy,
    link_venv,
    resolve_source,
    shared_copy,
    trial_folder,
)
from bench.trials_http import http_steps
from bench.trials_steps import (
    Step,
    add_log,
    command_step,
    first_error,
    freeze_diff,
    freeze_step,
    run_check,
)
from flaskprod.spec.stackdeps import PINNED
from flaskprod.stack.ports import free_ports
from flaskprod.stack.state import StateDir

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
SHARED = ("flaskr", "microblog", "flask-on-docker")


@dataclass(frozen=True)
class Needs:
    """What a project needs beyond the defaults, each with the reason; never an edit."""

    app_dir: str = "."
    up_args: tuple[str, ...] = ()
    #: Variables every flaskprod command gets (a user's ``export``), e.g. what the app
    #: reads from the environment while it is imported.
    env: dict[str, str] = field(default_factory=dict)
    #: Packages the project lacks and flaskprod names the line for (an app server, a
    #: PostgreSQL driver): installed in its venv as the user would (flaskprod's pin).
    add: tuple[str, ...] = ()
    init_args: tuple[str, ...] = ()
    #: ``--python`` for init, render and up: an interpreter named knowingly.
    python: str | None = None

    @property
    def python_args(self) -> tuple[str, ...]:
        return ("--python", self.python) if self.python else ()

    reason: str = ""
    #: Where a folder without git history comes from (a subfolder of a repository).
    origin: str = ""


#: Per project (by folder name): where the app is, and extra ``up`` arguments with why.
NEEDS: dict[str, Needs] = {
    "flaskr": Needs(
        up_args=("--release", "flask init-db"),
        add=("granian",),
        init_args=("--add-deps",),
        reason="the tutorial creates its tables with its own `flask init-db` command "
        "(no migrations), up runs it as a release command; it lists no app server: init "
        "--add-deps appends the line to pyproject.toml's dependencies, installed in its venv "
        "as a user would",
    ),
    "microblog-api": Needs(
        add=("psycopg",),
        init_args=("--add-deps",),
        reason="it lists no PostgreSQL driver (SQLite by default); init --add-deps appends "
        "the line up names, installed in its venv as a user would",
    ),
    "flask-celery": Needs(
        add=("granian",),
        init_args=("--add-deps",),
        reason="Flask's Celery example lists no app server; init --add-deps appends the line "
        "up names, installed in its venv as a user would (its package under src/ is not "
        "installed in the venv: up puts src/ on the path and says so)",
        origin="https://github.com/pallets/flask @ 2ac89889, examples/celery",
    ),
    "docker-flask-example": Needs(
        python=".venv/bin/python",
        reason="its pyproject.toml requires Python >=3.13 and this machine has 3.11 only "
        "(init and up refuse that, naming it); its venv here is 3.11, where the app runs: "
        "--python names that interpreter knowingly",
    ),
    "flask-on-docker": Needs(
        app_dir="services/web",
        reason="the app lives in services/web of the repository",
    ),
}

UP_READY = 120  # up's own --timeout (readiness through nginx), below the step's bound


@dataclass
class Trial:
    project: str
    source: str
    app_dir: str
    up_args: list[str]
    env: dict[str, str]
    reason: str
    origin: str = ""
    added: list[str] = field(default_factory=list)
    init_args: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def spec_summary(app: Path) -> dict[str, Any]:
    """What init decided, as a user reads it in flaskprod.toml."""
    from flaskprod.spec.load import load_spec

    spec = load_spec(app / "flaskprod.toml")
    return {
        "target": spec.app.target,
        "server": spec.server.kind,
        "worker_class": spec.server.worker_class,
        "database": spec.database.engine,
        "driver": spec.database.driver,
        "health_source": spec.http.health_source,
        "health_path": spec.http.health_path,
        "ready_path": spec.http.ready_path,
        "login_path": spec.http.login_path,
        "static_url": spec.paths.static_url,
        "static_dir": spec.paths.static_dir,
        "settings": dict(spec.app.settings),
        "media_env": list(spec.paths.media_env),
        "build": list(spec.app.build),
    }


@contextlib.contextmanager
def stack_of(app: Path, needs: Needs, trial: Trial) -> Iterator[int | None]:
    """``up -d`` on free ports; yields the HTTPS port when it came up (else None); on
    exit ``down``, and anything it left running stopped by pid (recorded as a failure)."""
    https_port, http_port = free_ports(2)
    argv = [
        FLASKPROD, "up", str(app), "-d", "--https-port", str(https_port),
        "--http-port", str(http_port), "--timeout", str(UP_READY), *needs.up_args,
        *needs.python_args,
    ]  # fmt: skip
    up = command_step("up", argv, app, env=needs.env)
    if not up.ok:
        add_log(up, app)
    trial.steps.append(up)
    dirs = StateDir(app / ".flaskprod")
    try:
        yield https_port if up.ok else None
    finally:
        recorded = dirs.read() if dirs.state_file.is_file() else None
        down = command_step("down", [FLASKPROD, "down", str(app)], app)
        leftovers = [r for r in (recorded.services if recorded else []) if r.alive()]
        for record in leftovers:  # down failed: stop exactly what up started
            record.stop(10)
        if leftovers:
            down.ok = False
            down.first_error = "left running: " + ", ".join(r.name for r in leftovers)
        trial.steps.append(down)


def origin(source: Path) -> str:
    """Where the project comes from: a git checkout's remote and commit, else its folder."""
    if source.parent == SOURCE:
        return f"real-projects/{source.name} (shared; its README says from where)"
    if not (source / ".git").exists():
        return str(source)
    remote, commit = (
        subprocess.run(
            ["git", "-C", str(source), *argv], capture_output=True, text=True, check=False
        ).stdout.strip()
        for argv in (["remote", "get-url", "origin"], ["rev-parse", "--short", "HEAD"])
    )
    return f"{remote.removesuffix('.git') or source} @ {commit}"


def run_trial(project: str) -> Trial:
    """Every step on a fresh copy of ``project`` (a name of the shared ones, or a path)."""
    try:
        source = resolve_source(project)
    except TrialSetupError as exc:
        trial = Trial(project, project, ".", [], {}, "")
        trial.steps.append(Step("copy", "", False, 0.0, first_error=str(exc)))
        return trial
    needs = NEEDS.get(source.name, Needs())
    trial = Trial(
        source.name,
        str(source),
        needs.app_dir,
        [*needs.up_args, *needs.python_args],
        needs.env,
        needs.reason,
        needs.origin or origin(source),
        [PINNED[package] for package in needs.add],
        [*needs.init_args, *needs.python_args],
    )
    began = time.monotonic()
    base = trial_folder()
    try:
        if source.parent == SOURCE and source.name in SHARED:
            root, app = shared_copy(source.name, base)
        else:
            root, app = fresh_copy(source, needs.app_dir, base)
        venv, misfit = link_venv(app, tuple(PINNED[package] for package in needs.add))
    except (TrialSetupError, OSError, RuntimeError, subprocess.SubprocessError) as exc:
        shutil.rmtree(base, ignore_errors=True)
        took = round(time.monotonic() - began, 1)
        trial.steps.append(Step("venv", "", False, took, first_error=str(exc)))
        return trial
    trial.steps.append(
        Step(
            "venv",
            f".venv -> {venv}",
            True,
            round(time.monotonic() - began, 1),
            output=misfit
            or "the project's own requirements"
            + "".join(f" + {PINNED[package]}" for package in needs.add)
            + ", flaskprod not in it",
            data={"python_misfit": misfit},
        )
    )
    try:
        _run_steps(trial, app, needs)
    except Exception as exc:  # a harness fault is a failed trial, never a crash of the run
        error = f"{type(exc).__name__}: {exc}"
        trial.steps.append(Step("harness", "", False, 0.0, first_error=error))
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    for step in trial.steps:  # the copy's temporary path says nothing: "." is the app
        for attr in ("output", "first_error", "command"):
            text = getattr(step, attr)
            if text:
                text = text.replace(str(app), ".").replace(str(root), "<repo>")
                setattr(step, attr, text.replace(str(Path.home()), "~"))
    return trial


def _run_steps(trial: Trial, app: Path, needs: Needs) -> None:
    before = freeze_step("freeze-before", app)
    trial.steps.append(before)
    trial.steps.append(run_check(FLASKPROD, "check-before", app, needs.env))
    init_argv = [FLASKPROD, "init", str(app), *needs.init_args, *needs.python_args]
    init = command_step("init", init_argv, app, env=needs.env)
    trial.steps.append(init)
    if not (app / "flaskprod.toml").is_file():
        return
    try:
        trial.spec = spec_summary(app)
    except Exception as exc:  # a spec init wrote that does not load is a finding
        init.ok = False
        init.first_error = f"flaskprod.toml does not load: {first_error(str(exc))}"
        return
    init.data = dict(trial.spec)
    render = [FLASKPROD, "render", str(app), "--check", *needs.python_args]
    trial.steps.append(command_step("render-check", render, app, env=needs.env))
    trial.steps.append(run_check(FLASKPROD, "check-after", app, needs.env))
    with stack_of(app, needs, trial) as https_port:
        if https_port is not None:
            try:
                trial.steps.extend(http_steps(app, https_port, trial.spec))
            except Exception as exc:  # e.g. no CA where up said it wrote one: recorded
                trial.steps.append(
                    Step("get", "", False, 0.0, first_error=f"{type(exc).__name__}: {exc}")
                )
    after = freeze_step("freeze-after", app)
    same = before.ok and after.ok and before.data["freeze"] == after.data["freeze"]
    if after.ok and not same:
        after.ok = False
        after.first_error = "pip freeze changed: " + freeze_diff(
            before.data["freeze"], after.data["freeze"]
        )
    after.output = "identical to before" if same else after.output
    trial.steps.append(after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.trials", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--project", action="append", help="a shared project's name or a folder")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--doc", action="store_true", help="rewrite docs/trials.md's section")
    parser.add_argument(
        "--flaskprod", help="another flaskprod executable to try (default: this checkout's)"
    )
    options = parser.parse_args(argv)
    if options.flaskprod:
        global FLASKPROD  # one run, one flaskprod
        FLASKPROD = str(Path(options.flaskprod).resolve())
    trials = []
    for project in options.project or SHARED:
        print(f"== {project}", flush=True)
        trial = run_trial(project)
        for step in trial.steps:
            mark = "ok  " if step.ok else "FAIL"
            print(
                f"  {mark} {step.name:14} {step.seconds:6.1f}s {step.first_error or ''}", flush=True
            )
        trials.append(trial)
    results = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "projects": [t.to_dict() for t in trials],
    }
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n")
    if options.doc:
        from bench.trials_doc import rewrite

        rewrite(REPO / "docs" / "trials.md", results)
    return 0 if all(t.ok for t in trials) else 1


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
