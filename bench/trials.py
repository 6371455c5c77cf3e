"""What a new user runs, on real Flask projects, each in a fresh copy with its own
virtual environment (flaskprod runs from this checkout's, never from the project's):

    pip freeze; check (no spec); init; render --check; check; up -d on free ports;
    GET / and one static file through nginx+TLS, the health and ready paths; down;
    pip freeze again (must be identical).

    .venv/bin/python -m bench.trials [--project NAME_OR_PATH ...] [--json OUT] [--doc]

Without ``--project``: the shared real projects (microblog, flask-on-docker, flaskr).
Every step is bounded in time; a failing step is recorded with its first error line and
the trial goes on where it can. ``--doc`` rewrites the "Real projects" section of
docs/trials.md from the results. Exit status: 0 when every step of every project passed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.trials_csp import blocked
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
    reason: str = ""


#: Per project (by folder name): where the app is, and extra ``up`` arguments with why.
NEEDS: dict[str, Needs] = {
    "flaskr": Needs(
        up_args=("--release", "flask init-db"),
        add=("granian",),
        reason="the tutorial creates its tables with its own `flask init-db` command "
        "(no migrations), up runs it as a release command; it lists no app server, and up "
        "names the line to add (granian, init's choice): installed in its venv as a user "
        "would (init --add-deps cannot write pyproject.toml, so the file is left as is)",
    ),
    "microblog-api": Needs(
        add=("psycopg",),
        init_args=("--add-deps",),
        reason="it lists no PostgreSQL driver (SQLite by default); init --add-deps appends "
        "the line up names, installed in its venv as a user would",
    ),
    "docker-flask-example": Needs(
        env={"SECRET_KEY": "trial-" + "k" * 40},
        reason="config/settings.py reads os.environ['SECRET_KEY'] when it is imported; "
        "init's own hint says to set it for the command",
    ),
    "flask-on-docker": Needs(
        app_dir="services/web",
        reason="the app lives in services/web of the repository",
    ),
}

TIMEOUTS = {
    "freeze": 120.0,
    "check": 300.0,
    "init": 300.0,
    "render": 120.0,
    "up": 420.0,
    "down": 180.0,
    "http": 20.0,
}
UP_READY = 120  # up's own --timeout (readiness through nginx), below the step's bound
OUTPUT_LINES = 12


@dataclass
class Step:
    name: str
    command: str
    ok: bool
    seconds: float
    exit_code: int | None = None
    first_error: str | None = None
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)


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


def _trim(text: str, lines: int = OUTPUT_LINES) -> str:
    kept = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if len(kept) > lines:
        kept = [*kept[:lines], f"… ({len(kept) - lines} more lines)"]
    return "\n".join(line[:200] for line in kept)


_ERROR = re.compile(r"\b(error|failed|traceback|exception|not found|refused)\b", re.IGNORECASE)


def first_error(text: str) -> str:
    """The first line that says what went wrong (else the last non-blank one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if _ERROR.search(line):
            return line[:300]
    return lines[-1][:300] if lines else "(no output)"


def _run(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[int | None, str, str, float]:
    began = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return None, out, err + f"\nno end within {timeout:.0f}s", time.monotonic() - began
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began


def _shown(argv: list[str], app: Path) -> str:
    words = []
    for word in argv:
        word = word.replace(str(app), ".").replace(FLASKPROD, "flaskprod")
        word = re.sub(r"^\S*/\.venv/bin/", ".venv/bin/", word)
        words.append(f'"{word}"' if " " in word else word)
    return " ".join(words)


def command_step(
    name: str,
    argv: list[str],
    app: Path,
    *,
    ok_codes: tuple[int, ...] = (0,),
    env: dict[str, str] | None = None,
) -> Step:
    """A CLI step: ok when it exits with one of ``ok_codes`` in its time."""
    code, out, err, took = _run(argv, app, TIMEOUTS[name.split("-")[0]], env)
    ok = code in ok_codes
    return Step(
        name=name,
        command=_shown(argv, app),
        ok=ok,
        seconds=round(took, 1),
        exit_code=code,
        first_error=None if ok else first_error(err + "\n" + out),
        output=_trim(out + ("\n" + err if err.strip() else "")),
    )


def freeze_step(name: str, app: Path) -> Step:
    """``pip freeze --all`` of the project's own environment."""
    argv = [str(app / ".venv" / "bin" / "python"), "-m", "pip", "freeze", "--all"]
    code, out, err, took = _run(argv, app, TIMEOUTS["freeze"])
    ok = code == 0
    return Step(
        name=name,
        command=_shown(argv, app),
        ok=ok,
        seconds=round(took, 1),
        exit_code=code,
        first_error=None if ok else first_error(err + "\n" + out),
        output=f"{len(out.splitlines())} packages" if ok else _trim(err),
        data={"freeze": out if ok else ""},
    )


def judge_check(step: Step, stdout: str) -> Step:
    try:
        report = json.loads(stdout)
    except ValueError:
        step.ok = False
        step.first_error = step.first_error or f"not a JSON report: {first_error(stdout)}"
        return step
    findings = [f for f in report["findings"] if not f.get("ignored")]
    summary = report["summary"]
    step.data = {
        "counts": summary["counts"],
        "score": summary["score"],
        "grade": summary["grade"],
        "app_target": summary.get("app_target"),
        "app_imported": summary.get("app_imported"),
        "rules_skipped": summary.get("rules_skipped"),
        "findings": [
            {k: f[k] for k in ("id", "level", "file", "line", "message")} for f in findings
        ],
    }
    internal = [f for f in findings if f["id"] == "FP000"]
    if internal:
        step.ok = False
        step.first_error = f"FP000 {internal[0]['message']}"
    step.output = _trim(
        "\n".join(
            f"{f['id']} {f['level']} {f['file'] or ''}{':' + str(f['line']) if f['line'] else ''}"
            f" — {f['message']}"
            for f in findings
        )
        + f"\nscore {summary['score']}/100 {summary['grade']}, app {summary.get('app_target')}"
        f" ({'imported' if summary.get('app_imported') else 'not imported'})",
        lines=10,
    )
    return step


def run_check(name: str, app: Path, env: dict[str, str] | None = None) -> Step:
    argv = [FLASKPROD, "check", str(app), "--format", "json"]
    code, out, err, took = _run(argv, app, TIMEOUTS["check"], env)
    step = Step(
        name=name,
        command=_shown(argv, app),
        ok=code in (0, 1),
        seconds=round(took, 1),
        exit_code=code,
        first_error=None if code in (0, 1) else first_error(err + "\n" + out),
        output=_trim(out + "\n" + err),
    )
    return judge_check(step, out) if step.ok else step


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


def static_file(app: Path, spec: dict[str, Any]) -> tuple[str, Path] | None:
    """One file of the app's static folder and its URL (a stylesheet or script first)."""
    folder = app / spec["static_dir"]
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: (p.suffix not in (".css", ".js"), len(p.parts), str(p)))
    if not files:
        return None
    prefix = "/" + spec["static_url"].strip("/")
    url = f"{prefix.rstrip('/')}/{files[0].relative_to(folder).as_posix()}"
    return url, files[0]


def http_steps(app: Path, https_port: int, spec: dict[str, Any]) -> Iterator[Step]:
    """GET through nginx+TLS, trusting the stack's local CA."""
    ca = app / ".flaskprod" / "tls" / "ca.pem"
    base = f"https://localhost:{https_port}"
    context = ssl.create_default_context(cafile=str(ca))
    found = static_file(app, spec)
    wanted: list[tuple[str, str | None, bytes | None]] = [("get-home", "/", None)]
    if found is not None:
        wanted.append(("get-static", found[0], found[1].read_bytes()))
    elif (app / spec["static_dir"]).exists():
        wanted.append(("get-static", None, None))  # a folder without files: a failure
    wanted += [("get-health", spec["health_path"], None), ("get-ready", spec["ready_path"], None)]
    if found is None and not (app / spec["static_dir"]).exists():  # an API: nothing to get
        yield Step("get-static", "(none)", True, 0.0, output=f"no {spec['static_dir']}/ folder")
    with httpx.Client(verify=context, base_url=base, timeout=TIMEOUTS["http"]) as client:
        for name, path, body in wanted:
            if path is None:
                yield Step(name, "(none)", False, 0.0, first_error="no file in the static folder")
                continue
            began = time.monotonic()
            command = f"GET {base}{path}"
            try:
                response = client.get(path, follow_redirects=True)
            except httpx.HTTPError as exc:
                took = round(time.monotonic() - began, 1)
                yield Step(name, command, False, took, first_error=f"{type(exc).__name__}: {exc}")
                continue
            took = round(time.monotonic() - began, 1)
            hops = " -> ".join(
                f"{r.status_code} {r.headers.get('location', '')}" for r in response.history
            )
            status = f"{hops} -> " if hops else ""
            status += f"{response.status_code} {response.headers.get('content-type', '')}"
            ok = response.status_code == 200 and (body is None or response.content == body)
            error = None
            if response.status_code != 200:
                error = f"{response.status_code}: {first_error(response.text)}"
                if response.status_code >= 500:
                    error += f" — {_server_error(app) or 'no exception in the server log'}"
            elif body is not None and response.content != body:
                error = f"200 but {len(response.content)} bytes, the file has {len(body)}"
            yield Step(
                name,
                command,
                ok,
                took,
                first_error=error,
                output=f"{status}, {len(response.content)} bytes",
                data={"status": response.status_code},
            )
            if name == "get-home" and ok:
                yield csp_step(response)


def csp_step(response: httpx.Response) -> Step:
    """Whether a browser would load what the home page names under the policy it came
    with (a 200 page whose stylesheet the CSP refuses is still a broken page)."""
    header = response.headers.get("content-security-policy", "")
    refused = blocked(response.text, str(response.url), header) if header else []
    report_only = response.headers.get("content-security-policy-report-only")
    shown = f"Content-Security-Policy: {header}" if header else "no enforced CSP"
    if report_only:  # reported, not enforced: nothing is blocked by it
        shown += f" (Report-Only: {report_only[:160]})"
    return Step(
        "csp-home",
        f"the resources of {response.url.path}",
        not refused,
        0.0,
        first_error=f"the CSP blocks {len(refused)}: {', '.join(refused[:6])}" if refused else None,
        output=shown + ("" if refused else "; nothing on the page is blocked"),
        data={"blocked": refused},
    )


@contextlib.contextmanager
def stack_of(app: Path, needs: Needs, trial: Trial) -> Iterator[int | None]:
    """``up -d`` on free ports; yields the HTTPS port when it came up (else None); on
    exit ``down``, and anything it left running stopped by pid (recorded as a failure)."""
    https_port, http_port = free_ports(2)
    argv = [
        FLASKPROD, "up", str(app), "-d", "--https-port", str(https_port),
        "--http-port", str(http_port), "--timeout", str(UP_READY), *needs.up_args,
    ]  # fmt: skip
    up = command_step("up", argv, app, env=needs.env)
    if not up.ok:
        _add_log(up, app)
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
        list(needs.up_args),
        needs.env,
        needs.reason,
        origin(source),
        [PINNED[package] for package in needs.add],
        list(needs.init_args),
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


_LOG = re.compile(r"\(log: (\S+?)\)")


def _add_log(step: Step, app: Path) -> None:
    """The end of the log a failed ``up`` names: the app's own error is there."""
    found = _LOG.search((step.first_error or "") + "\n" + step.output)
    if found is None or not (app / found.group(1)).is_file():
        return
    tail = (app / found.group(1)).read_text(errors="replace").strip().splitlines()[-40:]
    step.data["log"] = found.group(1)
    step.output += f"\n{found.group(1)} (end):\n" + _trim("\n".join(tail), 8)
    cause = _cause(tail)
    if cause:
        step.first_error = f"{step.first_error} — {cause}"


def _cause(tail: list[str]) -> str | None:
    """The exception's own line (a traceback's last), else click's "Error: ..." line."""
    lines = [line.strip() for line in tail]
    named = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    causes = named or [line for line in lines if re.match(r"^(Error|Exception)\b", line)]
    return causes[-1][:240] if causes else None


def _server_error(app: Path) -> str | None:
    """Why the app answered 5xx: the last exception in the app server's log."""
    for name in ("gunicorn", "granian"):
        log = app / ".flaskprod" / "logs" / f"{name}.log"
        if log.is_file():
            cause = _cause(log.read_text(errors="replace").splitlines()[-200:])
            if cause:
                return f"{cause} (.flaskprod/logs/{log.name})"
    return None


def _run_steps(trial: Trial, app: Path, needs: Needs) -> None:
    before = freeze_step("freeze-before", app)
    trial.steps.append(before)
    trial.steps.append(run_check("check-before", app, needs.env))
    init_argv = [FLASKPROD, "init", str(app), *needs.init_args]
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
    render = [FLASKPROD, "render", str(app), "--check"]
    trial.steps.append(command_step("render-check", render, app, env=needs.env))
    trial.steps.append(run_check("check-after", app, needs.env))
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
        after.first_error = "pip freeze changed: " + _freeze_diff(
            before.data["freeze"], after.data["freeze"]
        )
    after.output = "identical to before" if same else after.output
    trial.steps.append(after)


def _freeze_diff(before: str, after: str) -> str:
    old, new = set(before.splitlines()), set(after.splitlines())
    changes = [f"-{line}" for line in sorted(old - new)] + [
        f"+{line}" for line in sorted(new - old)
    ]
    return ", ".join(changes[:6]) or "(order only)"


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
