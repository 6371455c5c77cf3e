"""Import the Flask app under production's environment, in a subprocess, and describe it.

The target is what production runs (the gunicorn argument in ExecStart / CMD /
compose ``command`` / Procfile), else the spec's ``app.target``, else what detection
finds. The probe (:mod:`flaskprod.check._probe`) runs under the project's own
interpreter (:mod:`flaskprod.spec.interpreter`), with a clean environment: production's
variables, ``FLASKPROD_ENV=production`` unless they say otherwise, and nothing from
the shell running the check. A refusal to start is a result, not a tool failure.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flaskprod.check.context import AppInfo, Context
from flaskprod.check.deployments import kit_roots
from flaskprod.check.envsource import EnvSource
from flaskprod.check.memo import context_digest, memo_key, recall, remembered
from flaskprod.check.parsers.granian import granian_setups
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.errors import EnvironmentProblem, ProjectError, SpecError
from flaskprod.launch.dockerfile import expand
from flaskprod.launch.shell import commands
from flaskprod.launch.targets import TARGET, loose_target, server_target
from flaskprod.offline import offline_prefix
from flaskprod.spec.interpreter import resolve_python
from flaskprod.spec.load import load_spec
from flaskprod.spec.model import SPEC_FILENAME, Spec
from flaskprod.spec.servers import ENTRY_MODULE

PROBE_TIMEOUT = 30.0
#: Variables passed through from the checker's own environment (never secrets).
_PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@dataclass
class ProbeResult:
    info: AppInfo | None
    error: str | None


def target_from_command(command: str | None, env: dict[str, str] | None = None) -> str | None:
    """The ``module:app`` (or ``module:factory()``) a gunicorn, granian or waitress
    command line serves, its ``$VARIABLES`` expanded from ``env``."""
    if not command:
        return None
    found = commands(expand(command, env or {}))
    for line in found:  # the app server's command first: 'echo a:b && gunicorn w:app'
        served = server_target(line.argv)
        if served is not None and served[0] in ("granian", "gunicorn"):
            return served[1]
    # another server (waitress-serve, uwsgi's --module, a launcher script's argument)
    return next((t for line in found if (t := loose_target(line.argv))), None)


def _detect_target(root: Path) -> str | None:
    """The app's import target as ``flaskprod init`` finds it (static, no import)."""
    from flaskprod.spec.detect import detect_project  # only without a spec: ~60 ms of imports

    try:
        return detect_project(root, introspect=False).target
    except ProjectError:
        return None


def _kit_spec(ctx: Context) -> Spec | None:
    for folder in kit_roots(ctx):
        path = folder / SPEC_FILENAME
        if path.is_file():
            try:
                return load_spec(path)
            except SpecError:
                return None  # the spec's own errors are init's and render's to report
    return None


def find_target(ctx: Context, source: EnvSource) -> str | None:
    from_command = target_from_command(source.command, source.env)
    if from_command and from_command.startswith(f"{ENTRY_MODULE}:"):
        # The kit's entry module answers health in front of the app: judge the app
        # (the spec of the kit that serves it: a subfolder's, checked from the root).
        spec = ctx.spec or _kit_spec(ctx)
        if spec is not None:
            return spec.app.target
    if from_command:
        return from_command
    # gunicorn started some other way (an entrypoint script, a config's wsgi_app)
    for setup in gunicorn_setups(ctx):
        target = expand(setup.target, {**setup.env, **source.env}) if setup.target else None
        if target and TARGET.match(target):
            return target
    for granian in granian_setups(ctx):
        if granian.app_target and TARGET.match(granian.app_target):
            return granian.app_target
    if ctx.spec is not None:
        return ctx.spec.app.target
    return _detect_target(ctx.root)


def _has_module(folder: Path, top: str) -> bool:
    return (
        (folder / f"{top}.py").is_file()
        or (folder / top).is_dir()
        or (folder / "src" / top).is_dir()
        or (folder / "src" / f"{top}.py").is_file()
    )


def import_root(ctx: Context, target: str) -> Path:
    """The folder the app is imported from: the project root, or the folder the app
    server runs in when the code lives in a subfolder (flask-on-docker's services/web,
    a compose service's build context, a Dockerfile's folder)."""
    top = target.partition(":")[0].split(".")[0]
    if _has_module(ctx.root, top):
        return ctx.root
    sources = [s.source for s in gunicorn_setups(ctx) if s.source is not None]
    sources += [d.parent for d in ctx.of_kind("dockerfile")]
    for folder in dict.fromkeys(sources):
        if folder.is_relative_to(ctx.root.resolve()) and _has_module(folder, top):
            return folder
    return ctx.root


def cannot_execute(program: str) -> str | None:
    """Why the kernel would refuse to run ``program`` (as execve's strerror), or None.
    Asked before starting it: under ``unshare`` a refused exec is unshare's failure,
    and its execvp would even run a file that is no program as a shell script."""
    try:
        with Path(program).open("rb") as handle:
            head = handle.read(4)
    except OSError as error:
        return error.strerror or str(error)
    if not os.access(program, os.X_OK):
        return os.strerror(errno.EACCES)
    if not head.startswith((b"\x7fELF", b"#!")):
        return os.strerror(errno.ENOEXEC)
    return None


#: Paths a liveness endpoint commonly has; the spec's health_path is added first.
LIVENESS_PATHS = (
    "/health",
    "/healthz",
    "/livez",
    "/health/live",
    "/ping",
    "/_health",
    "/status",
    "/up",  # Rails' and docker-flask-example's
)


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Stop the probe's process group (the probe and anything the app spawned) while
    the probe is still running, so the group id is certainly the one we created."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def probe(
    root: Path,
    target: str,
    env: dict[str, str],
    timeout: float = PROBE_TIMEOUT,
    health_paths: tuple[str, ...] = LIVENESS_PATHS,
    python: Path | None = None,
) -> ProbeResult:
    """Import ``target`` in a subprocess under ``env`` and describe the app, with the
    project's interpreter (``python``, default: :func:`resolve_python`)."""
    clean = {key: os.environ[key] for key in _PASS_THROUGH if key in os.environ}
    clean.update(env)
    clean.setdefault("FLASKPROD_ENV", "production")
    clean["PYTHONDONTWRITEBYTECODE"] = "1"
    script = Path(__file__).with_name("_probe.py")
    with tempfile.TemporaryDirectory(prefix="flaskprod-probe-") as tmp:
        output = Path(tmp) / "app.json"
        try:
            interpreter = str(python or resolve_python(root).executable)
        except EnvironmentProblem as error:
            return ProbeResult(None, str(error))
        problem = cannot_execute(interpreter)
        if problem is not None:
            # A project's .venv copied from another machine, or not executable.
            return ProbeResult(None, f"cannot run the project's Python {interpreter}: {problem}")
        try:
            # Own session, so that whatever the app spawns at import is stopped with it.
            process = subprocess.Popen(
                [
                    *offline_prefix(),
                    interpreter,
                    str(script),
                    str(root),
                    target,
                    str(output),
                    json.dumps(list(health_paths)),
                ],
                cwd=root,
                env=clean,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        except OSError as error:
            # A project's .venv copied from another machine, or not executable.
            return ProbeResult(
                None, f"cannot run the project's Python {interpreter}: {error.strerror}"
            )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(process)
            if not output.is_file():
                return ProbeResult(None, f"importing {target} did not finish in {timeout:.0f} s")
            stderr = ""
        if not output.is_file():
            last = [line for line in stderr.splitlines() if line.strip()]
            said = last[-1].strip() if last else f"exit status {process.returncode}"
            return ProbeResult(None, said[:300])
        data: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    if not data.get("ok"):
        return ProbeResult(None, str(data.get("error") or "unknown error"))
    info = AppInfo(
        target=target,
        config=data.get("config", {}),
        routes=data.get("routes", []),
        extensions=data.get("extensions", []),
        debug=bool(data.get("debug")),
        debugger=bool(data.get("debugger")),
        proxy_fix=data.get("proxy_fix"),
        csrf=bool(data.get("csrf")),
        log_handlers=data.get("log_handlers", []),
        modules=data.get("modules", []),
        engines=data.get("engines", []),
        health=data.get("health", {}),
        headers=data.get("headers", {}),
        run_calls=data.get("run_calls", []),
        files=data.get("files", []),
    )
    return ProbeResult(info, None)


def _spec_health(ctx: Context) -> list[str]:
    return [ctx.spec.http.health_path] if ctx.spec else []


def _interpreter_stamp(interpreter: Path | None) -> list[Any]:
    """What changes when packages are installed into the interpreter's environment: the
    mtimes of its site-packages folders (an install or upgrade adds or renames entries)."""
    if interpreter is None:
        return []
    prefix = Path(interpreter).parent.parent
    # Its folder and what it links to, not its name: python and python3 of one venv
    # are the same interpreter.
    stamp: list[Any] = [str(Path(interpreter).parent), str(Path(interpreter).resolve())]
    for folder in sorted(prefix.glob("lib/python3*/site-packages")):
        with contextlib.suppress(OSError):
            stamp.append([str(folder), folder.stat().st_mtime_ns])
    with contextlib.suppress(OSError):
        stamp.append(Path(interpreter).resolve().stat().st_mtime_ns)
    return stamp


#: Errors of the environment, not of the app: never kept (the next run tries again).
_TRANSIENT = ("cannot run the project's Python", "importing ")


def _remembered_probe(
    ctx: Context,
    root: Path,
    target: str,
    env: dict[str, str],
    paths: tuple[str, ...],
    python: Path | None,
) -> tuple[ProbeResult | None, Callable[[], ProbeResult]]:
    """:func:`probe`, kept in the project's state folder (:mod:`flaskprod.check.memo`)
    until the project's files, flaskprod, the environment or the interpreter change:
    importing the app is most of what ``check`` costs. The kept result when there is
    one, and a function that gets it anyway (importing the app, then keeping it)."""

    # Secrets of an env template are replaced by random stand-ins each run (envsource):
    # the key names them, not their values, and a kept result gets this run's values.
    stand_ins: dict[str, str] = ctx.cache.get("stand_ins", {})
    used = {name: value for name, value in stand_ins.items() if env.get(name) == value}

    def run() -> dict[str, Any] | None:
        result = probe(root, target, env, health_paths=paths, python=python)
        if result.info is None and (result.error or "").startswith(_TRANSIENT):
            return None
        info = asdict(result.info) if result.info else None
        return {"info": info, "error": result.error, "stand_ins": used}

    def answer(stored: dict[str, Any]) -> ProbeResult:
        text = json.dumps(stored)
        for name, value in stored.get("stand_ins", {}).items():
            if name in used and value != used[name]:
                text = text.replace(value, used[name])  # 64 random characters: no collision
        stored = json.loads(text)
        info = stored["info"]
        return ProbeResult(AppInfo(**info) if info is not None else None, stored["error"])

    digest = context_digest(ctx.cache, root)
    passed = {key: os.environ.get(key) for key in _PASS_THROUGH}
    key = None
    if digest is not None:
        masked = {name: "<stand-in>" if name in used else value for name, value in env.items()}
        key = memo_key(
            digest,
            "probe",
            str(root.resolve()),  # a copied project: its config's paths are its own
            target,
            sorted(masked.items()),
            passed,
            paths,
            _interpreter_stamp(python or Path(sys.executable)),
            offline_prefix(),
        )

    def compute() -> ProbeResult:
        stored = remembered(root, "app-probe", key, run)
        if stored is None:  # not kept: run again for the result itself
            return probe(root, target, env, health_paths=paths, python=python)
        return answer(stored)

    kept = recall(root, "app-probe", key)
    return (answer(kept) if kept is not None else None), compute


def load_app(ctx: Context, source: EnvSource) -> None:
    """Import the app for ``ctx`` under ``source`` and fill ``ctx.app`` (or
    ``ctx.app_error``), from the project's state folder when nothing it depends on
    changed since the last run (:func:`_remembered_probe`)."""
    target = find_target(ctx, source)
    ctx.cache["app_target"] = target
    if target is None:
        ctx.app_error = "no Flask app found (no gunicorn target, spec or app module)"
        return
    paths = tuple(dict.fromkeys([*_spec_health(ctx), *LIVENESS_PATHS]))
    root = import_root(ctx, target)
    ctx.cache["app_root"] = root
    if ctx.cache.get("python_error"):
        ctx.app_error = ctx.cache["python_error"]
        return
    python = ctx.cache.get("python")
    if root != ctx.root and (python is None or python.own):
        try:  # the code in a subfolder (services/web) may hold its own venv
            python = resolve_python(root)
        except EnvironmentProblem as error:
            ctx.app_error = str(error)
            return
    # Whose Python imports it: the project's own virtualenv, or flaskprod's.
    ctx.cache["app_python_own"] = python is not None and not python.own
    interpreter = python.executable if python else None
    kept, compute = _remembered_probe(ctx, root, target, source.env, paths, interpreter)
    if kept is not None:
        _apply(ctx, kept)
        return
    # Imported in a thread, which mostly waits for the probe's subprocess: the checker
    # reads and judges the files meanwhile (the runner's first pass), and reading an
    # app field waits for it (Context.settle_app).
    outcome: list[ProbeResult] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(compute())
        except BaseException as error:  # raised where the result is read, as before
            failure.append(error)

    thread = threading.Thread(target=run, name="flaskprod-app-probe", daemon=True)
    thread.start()

    def settle() -> None:
        thread.join()
        if failure:
            raise failure[0]
        _apply(ctx, outcome[0])

    ctx.import_in_background(settle)


def _apply(ctx: Context, result: ProbeResult) -> None:
    """The probe's result into ``ctx``'s app fields."""
    if result.info is None:
        ctx.app_error = result.error
        return
    ctx.app = result.info
    ctx.app_config = result.info.config
    # Paths the app answers, URL rules or not (flaskprod's health endpoints live in a
    # middleware, outside url_map): other layers compare their paths with these.
    served = [path for path, status in result.info.health.items() if status == 200]
    ctx.app_routes = list(dict.fromkeys([*result.info.paths, *served]))
