"""The environment production will really give the app, read from the project's files.

In order: ``--env-file`` (the user says so); the systemd unit that runs the app
(``Environment=`` and ``EnvironmentFile=``, the file found inside the project by
following ``WorkingDirectory`` or by name); the compose service that runs it
(``environment``, ``env_file``, ``${VAR}`` from the compose ``.env``); the
Dockerfile's ``ENV``. When the real values live only on the server, the result says
so (``known=False``) and carries a stand-in (the project's ``.env.example``), so that
rules judging values stay quiet instead of guessing.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.parsers.compose import development_files, parse_compose
from flaskprod.check.parsers.dockerfile import parse_dockerfile
from flaskprod.check.parsers.systemd import parse_unit
from flaskprod.launch.systemd import Unit

_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_INTERPOLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
#: Commands that run the web app (as opposed to a backup or a worker).
_APP_COMMAND = re.compile(r"\b(gunicorn|uwsgi|waitress-serve|granian|flask\s+run|python)\b")
_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist", ".tmpl", ".in")


@dataclass
class EnvSource:
    env: dict[str, str] = field(default_factory=dict)
    #: How reports name it: "deploy/shop.service (EnvironmentFile deploy/shop.env)".
    description: str | None = None
    known: bool = False
    #: The command production runs the app with (ExecStart, CMD, compose command).
    command: str | None = None
    #: The file the command was found in (relative), for findings.
    command_file: str | None = None


#: A word of an env file's name that makes it a template: .env.example,
#: .env.prod-sample (testdrivenio), env.template, .env_dist, example.env.
_TEMPLATE_WORD = re.compile(r"(^|[._-])(examples?|samples?|template|dist|tmpl|tpl)([._-]|$)")


def is_env_template(path: Path) -> bool:
    """An env file meant to be copied (``.env.example``), not one holding values: the
    stand-in for production's values here, never a leaked secret for PRJ001/PRJ003."""
    name = path.name.lower()
    return name.endswith(_TEMPLATE_SUFFIXES) or bool(_TEMPLATE_WORD.search(name))


def template_for(ctx: Context, missing: Path) -> Path | None:
    """The template a missing env file is copied from (``.env.prod`` <- ``.env.prod-sample``,
    ``.env.prod.example``), if the project has one."""
    for path in ctx.of_kind("env"):
        if (
            path.parent == missing.parent
            and path.name.startswith(missing.name)
            and is_env_template(path)
        ):
            return path
    return None


def parse_env_file(text: str) -> dict[str, str]:
    """A dotenv / systemd EnvironmentFile: KEY=VALUE lines, quotes, comments, export."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        match = _ASSIGN.match(stripped)
        if not match:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        env[key] = value
    return env


def _unit_environment(values: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values:
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
        for word in words:
            key, sep, val = word.partition("=")
            if sep:
                env[key] = val
    return env


def _map_into_project(ctx: Context, server_path: str, workdir: str | None) -> Path | None:
    """Where a server path lives in the project: under WorkingDirectory (or the spec's
    install dir) it maps onto the project root; otherwise an env file of that name."""
    bases = [b for b in (workdir, ctx.spec.app.install_dir if ctx.spec else None) if b]
    for base in bases:
        try:
            relative = PurePosixPath(server_path).relative_to(base)
        except ValueError:
            continue
        candidate = ctx.root / relative
        if candidate.is_file():
            return candidate
    name = PurePosixPath(server_path).name
    for path in ctx.of_kind("env"):
        if path.name == name:
            return path
    return None


_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY", re.IGNORECASE)


_DEVELOPMENT_ONLY = ("FLASK_DEBUG", "DEBUG", "FLASK_ENV")


def _stand_in(ctx: Context, template: Path | None = None) -> dict[str, str]:
    """The project's env template (``template``, else the first one), its secrets
    replaced by random values: production's real secrets are on the server, and judging
    the template's placeholders would be judging the wrong file. The replaced values are
    remembered in ``ctx.cache["stand_ins"]`` so that rules do not judge them either."""
    stand_ins: dict[str, str] = ctx.cache.setdefault("stand_ins", {})
    templates = [template] if template else [p for p in ctx.of_kind("env") if is_env_template(p)]
    for path in templates:
        env = parse_env_file(ctx.read(path))
        for key in _DEVELOPMENT_ONLY:  # a template's FLASK_DEBUG=1 is for laptops
            env.pop(key, None)
        for key in env:
            if _SECRET_NAME.search(key):
                env[key] = stand_ins.setdefault(key, secrets.token_urlsafe(48))
        return env
    return {}


def app_unit(ctx: Context) -> Unit | None:
    """The systemd service that runs the web app (parsed once, by the systemd parser)."""
    for path in ctx.of_kind("systemd"):
        if path.suffix != ".service":
            continue
        unit = parse_unit(ctx, path)
        if _APP_COMMAND.search(unit.value("Service", "ExecStart")):
            return unit
    return None


def _from_systemd(ctx: Context) -> EnvSource | None:
    unit = app_unit(ctx)
    if unit is None:
        return None
    name = ctx.relative(unit.path)
    env = _unit_environment([a.value for a in unit.all("Service", "Environment")])
    workdir = unit.value("Service", "WorkingDirectory") or None
    known = True
    parts: list[str] = []
    for assignment in unit.all("Service", "EnvironmentFile"):
        value = assignment.value
        optional = value.startswith("-")
        server_path = value.lstrip("-")
        local = _map_into_project(ctx, server_path, workdir)
        if local is not None:
            env.update(parse_env_file(ctx.read(local)))
            parts.append(f"EnvironmentFile {ctx.relative(local)}")
        elif not optional:
            known = False
            parts.append(f"EnvironmentFile {server_path}, on the server only")
    if not known:
        env = {**_stand_in(ctx), **env}
    suffix = f" ({'; '.join(parts)})" if parts else ""
    return EnvSource(
        env=env,
        description=f"{name}{suffix}",
        known=known,
        command=unit.value("Service", "ExecStart"),
        command_file=name,
    )


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: text


def compose_app_service(ctx: Context) -> tuple[Path, str, dict[str, Any]] | None:
    """The compose service that runs the web app: built from the project, or running
    gunicorn; never a database, cache or proxy image."""
    development = development_files(ctx)
    for path in (p for p in ctx.of_kind("compose") if p not in development):
        services = parse_compose(ctx, path).services  # parsed once per run, shared
        ranked = []
        for name, service in services.items():
            if not isinstance(service, dict):
                continue
            command = service.get("command") or ""
            command = " ".join(command) if isinstance(command, list) else str(command)
            score = 2 if _APP_COMMAND.search(command) else 1 if "build" in service else 0
            if score:
                ranked.append((score, str(name), service))
        if ranked:
            ranked.sort(key=lambda item: -item[0])
            return path, ranked[0][1], ranked[0][2]
    return None


def _from_compose(ctx: Context) -> EnvSource | None:
    found = compose_app_service(ctx)
    if found is None:
        return None
    path, name, service = found
    folder = path.parent
    dot_env = folder / ".env"
    shell = parse_env_file(ctx.read(dot_env)) if dot_env.is_file() else {}
    env: dict[str, str] = {}
    known = True
    parts: list[str] = []
    env_files = service.get("env_file") or []
    for item in [env_files] if isinstance(env_files, str | dict) else env_files:
        file_name = item.get("path") if isinstance(item, dict) else item
        required = not (isinstance(item, dict) and item.get("required") is False)
        local = folder / str(file_name)
        template = None if local.is_file() else template_for(ctx, local)
        if local.is_file():
            env.update(parse_env_file(ctx.read(local)))
            parts.append(f"env_file {ctx.relative(local)}")
        elif template is not None:  # copied from its template on the server
            env.update(_stand_in(ctx, template))
            parts.append(f"env_file {file_name}, on the server only: {ctx.relative(template)}")
            known = False
        elif required:
            known = False
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = [str(item).partition("=") for item in environment]
        environment = {key: (value if sep else None) for key, sep, value in pairs}
    for key, value in environment.items():
        if value is None:  # passed through from the shell running compose
            known = known and key in shell
            env[str(key)] = shell.get(str(key), "")
            continue
        text = str(value)
        for var, op, default in _INTERPOLATE.findall(text):
            if var not in shell and op not in (":-", "-"):
                known = False
            replacement = shell.get(var, default if op in (":-", "-") else "")
            text = re.sub(r"\$\{" + var + r"[^}]*\}", _constant(replacement), text)
        env[str(key)] = text
    if not known:
        env = {**_stand_in(ctx), **env}
    command = service.get("command")
    suffix = f" ({'; '.join(parts)})" if parts else ""
    return EnvSource(
        env=env,
        description=f"{ctx.relative(path)} service {name}{suffix}",
        known=known,
        command=shlex.join(str(w) for w in command) if isinstance(command, list) else command,
        command_file=ctx.relative(path),
    )


def dockerfile_env_and_cmd(ctx: Context) -> tuple[dict[str, str], str | None]:
    """ENV values and the CMD/ENTRYPOINT (joined) of the final stage of the project's
    main Dockerfile (parsed once, by the Dockerfile parser)."""
    env: dict[str, str] = {}
    files = ctx.of_kind("dockerfile")
    if not files:
        return env, None
    main = next((p for p in files if p.name == "Dockerfile"), files[0])
    parsed = parse_dockerfile(ctx, main)
    stage = parsed.final
    if stage is None:
        return env, None
    env.update(parsed.env())
    command = parsed.command()
    return env, shlex.join(command.argv()) if command is not None else None


def production_env(ctx: Context, env_file: Path | None = None) -> EnvSource:
    """The environment the app will have in production (see the module docstring)."""
    docker_env, docker_cmd = dockerfile_env_and_cmd(ctx)
    if env_file is not None:
        source = EnvSource(
            env={**docker_env, **parse_env_file(env_file.read_text(encoding="utf-8"))},
            description=f"--env-file {env_file}",
            known=True,
        )
        for fallback in (_from_systemd(ctx), _from_compose(ctx)):
            if fallback is not None and fallback.command:
                source.command, source.command_file = fallback.command, fallback.command_file
                break
        return source
    unit = _from_systemd(ctx)
    if unit is not None:  # a VM deploy: the Dockerfile's ENV does not apply
        return unit
    compose = _from_compose(ctx)
    if compose is not None:
        compose.env = {**docker_env, **compose.env}
        compose.command = compose.command or docker_cmd
        return compose
    if ctx.of_kind("dockerfile"):
        return EnvSource(
            env={**_stand_in(ctx), **docker_env},
            description=ctx.relative(ctx.of_kind("dockerfile")[0]),
            known=False,
            command=docker_cmd,
            command_file=ctx.relative(ctx.of_kind("dockerfile")[0]),
        )
    for path in ctx.of_kind("procfile"):
        for line in ctx.read(path).splitlines():
            if line.startswith("web:"):
                return EnvSource(
                    env=_stand_in(ctx),
                    description=ctx.relative(path),
                    known=False,
                    command=line[4:].strip(),
                    command_file=ctx.relative(path),
                )
    return EnvSource(env=_stand_in(ctx), description=None, known=False)
