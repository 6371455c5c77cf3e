"""Every gunicorn the project under check starts, with its settings: the launchers
(systemd ``ExecStart``, supervisor, Procfile, Dockerfile ``CMD``/``ENTRYPOINT``,
compose ``command``) and the config files they use, read once per run. The reading
of one command line or config file is :mod:`flaskprod.launch.gunicorn`."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from flaskprod.check.deployments import kit_root_of, same_deployment
from flaskprod.check.parsers import cached
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.dockerfile import parse_dockerfiles
from flaskprod.check.parsers.supervisor import supervisor_programs
from flaskprod.check.parsers.systemd import parse_units
from flaskprod.launch.compose import service_env
from flaskprod.launch.gunicorn import (
    GunicornConfig,
    Setting,
    Unknown,
    gunicorn_launch,
    merged_settings,
    read_config,
    worker_class_name,
    worker_count,
)
from flaskprod.launch.shell import split_command
from flaskprod.launch.text import read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context


def parse_config(ctx: Context, path: Path, env: Mapping[str, str] | None = None) -> GunicornConfig:
    """The config as it evaluates under ``env`` (a Dockerfile's ENV, a compose
    service's environment, or production's environment by default)."""
    env = ctx.env if env is None else env

    key = f"parsers.gunicorn:{path}:{hash(frozenset(env.items()))}"
    return cached(ctx, key, lambda: read_config(path, env))


# -- setups: one running gunicorn each ---------------------------------------------


@dataclass
class GunicornSetup:
    """One gunicorn as it will run: where it is started from and its settings."""

    origin: str  # systemd, supervisor, procfile, dockerfile, compose, config
    file: Path
    line: int
    in_container: bool
    settings: dict[str, Setting] = field(default_factory=dict)
    config: GunicornConfig | None = None
    target: str | None = None
    #: Compose service name, when it runs in one.
    service: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: The working directory on the server (systemd WorkingDirectory), if known.
    cwd: str | None = None
    #: Where the code it runs lives in the project (a Docker build context).
    source: Path | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """A setting's value, ``default`` when unset, UNKNOWN when not statically known."""
        found = self.settings.get(name)
        return default if found is None else found.value

    @property
    def bind_known(self) -> bool:
        """Every bind is statically known (a port from $PORT is fine, a whole
        address from a variable is not)."""
        value = self.get("bind")
        values = value if isinstance(value, list) else [value]
        return not any(isinstance(v, Unknown) or _variable_address(v) for v in values)

    def where(self, name: str) -> tuple[Path, int]:
        found = self.settings.get(name)
        return (found.file, found.line) if found else (self.file, self.line)

    @property
    def binds(self) -> list[str]:
        value = self.get("bind")
        if value is None:
            port = self.env.get("PORT")
            return [f"0.0.0.0:{port}"] if port else ["127.0.0.1:8000"]
        binds = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [self._absolute(b) for b in binds if isinstance(b, str) and b.strip()]

    def _absolute(self, bind: str) -> str:
        """``unix:app.sock`` is relative to gunicorn's working directory."""
        if not bind.startswith("unix:") or bind[5:].startswith("/"):
            return bind
        chdir = self.get("chdir")
        base = chdir if isinstance(chdir, str) and chdir.startswith("/") else self.cwd
        return f"unix:{PurePosixPath(base) / bind[5:]}" if base else bind

    @property
    def worker_class(self) -> str:
        return worker_class_name(self.get("worker_class", "sync"), self.get("threads", 1))

    @property
    def workers(self) -> Any:
        return worker_count(self.get("workers"), self.env)


def _install_bases(ctx: Context) -> list[str]:
    bases = [ctx.spec.app.install_dir] if ctx.spec else []
    for unit in parse_units(ctx):
        workdir = unit.value("Service", "WorkingDirectory").lstrip("-")
        if workdir.startswith("/"):
            bases.append(workdir)
    return bases


def _setup_from_command(
    ctx: Context,
    origin: str,
    words: list[str],
    file: Path,
    line: int,
    in_container: bool,
    bases: list[str],
    env: dict[str, str],
) -> GunicornSetup | None:
    # gunicorn reads ./gunicorn.conf.py of its own folder: the kit's config is not the
    # project's launchers' (boot.sh, supervisor), nor theirs the kit's.
    configs = [p for p in ctx.of_kind("gunicorn") if same_deployment(ctx, p, file)]
    # A kit rendered in a subfolder (services/web) names its files from there.
    kit_root = kit_root_of(ctx, file)
    root = kit_root if kit_root is not None else ctx.root
    launch = gunicorn_launch(root, words, (file, line), bases, env, configs)
    if launch is None:
        return None
    setup = GunicornSetup(
        origin, launch.file, launch.line, in_container, target=launch.target, env=env
    )
    if kit_root is not None and kit_root != ctx.root:
        setup.source = kit_root  # where its app module is looked for first
    if launch.config is not None:
        setup.config = parse_config(ctx, launch.config, env)
    setup.settings.update(
        merged_settings(setup.config, env, launch.flags, launch.file, launch.line)
    )
    if setup.target is None and isinstance(setup.get("wsgi_app"), str):
        setup.target = setup.get("wsgi_app")
    return setup


def _built_from(compose_file: Path, service: Mapping[str, Any]) -> Path | None:
    """The Dockerfile a compose service is built from (resolved), if it says."""
    build = service.get("build")
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    elif isinstance(build, dict):
        context = str(build.get("context", "."))
        dockerfile = str(build.get("dockerfile", "Dockerfile"))
    else:
        return None
    if "://" in context:
        return None
    return (compose_file.parent / context / dockerfile).resolve()


def _build(ctx: Context) -> list[GunicornSetup]:
    setups: list[GunicornSetup] = []
    #: Dockerfile (resolved) -> how its image starts gunicorn, for compose services.
    images: dict[Path, tuple[list[str], Path, int, list[str], dict[str, str]]] = {}
    bases = _install_bases(ctx)
    #: Dockerfile -> its own setup (whose file may be its entrypoint script).
    from_image: dict[Path, GunicornSetup] = {}
    for unit in parse_units(ctx):
        start = unit.get("Service", "ExecStart")
        if start is None:
            continue
        words = split_command(start.value.lstrip("-@:+!"))
        # the unit's own Environment= (GUNICORN_BIND of a release slot) reaches the config
        env = {**ctx.env, **_unit_environment(unit.all("Service", "Environment"))}
        setup = _setup_from_command(ctx, "systemd", words, unit.path, start.line, False, bases, env)
        if setup:
            setup.cwd = unit.value("Service", "WorkingDirectory").lstrip("-") or None
            setups.append(setup)
    for program in supervisor_programs(ctx):  # a VM deploy with supervisord
        env = {**ctx.env, **program.env}
        program_bases = [program.directory, *bases] if program.directory else bases
        setup = _setup_from_command(
            ctx,
            "supervisor",
            split_command(program.command),
            program.file,
            program.line,
            False,
            program_bases,
            env,
        )
        if setup:
            setup.cwd = program.directory
            setups.append(setup)
    for procfile in ctx.of_kind("procfile"):
        text, _ = read_text(procfile)
        for number, raw in enumerate((text or "").splitlines(), start=1):
            _name, sep, command = raw.partition(":")
            if sep and "gunicorn" in command:
                # A Procfile runs on a PaaS (Heroku, Dokku, Scalingo): a container
                # behind the platform's router, with PORT set by the platform.
                setup = _setup_from_command(
                    ctx,
                    "procfile",
                    split_command(command),
                    procfile,
                    number,
                    True,
                    bases,
                    {"PORT": "$PORT", **ctx.env},
                )
                if setup:
                    setups.append(setup)
    for dockerfile in parse_dockerfiles(ctx):
        instruction = dockerfile.command()
        final = dockerfile.final
        if instruction is None or final is None:
            continue
        workdirs = [i.value for i in final.find("WORKDIR")]
        env = {**ctx.env, **dockerfile.env()}
        launch = (instruction.argv(), dockerfile.path, instruction.line, [*workdirs, *bases], env)
        setup = _setup_from_command(ctx, "dockerfile", *launch[:3], True, *launch[3:])
        if setup:
            setup.source = setup.source or dockerfile.path.parent  # a kit's: its folder
            setups.append(setup)
            images[dockerfile.path.resolve()] = launch
            from_image[dockerfile.path] = setup
    replaced: set[Path] = set()
    for compose in parse_compose_files(ctx):
        for name, service in compose.services.items():
            given = service.get("command") or service.get("entrypoint")
            built = _built_from(compose.path, service)
            if not given and built in images:
                # The service runs the image's CMD, under its own environment.
                argv, path, line, image_bases, image_env = images[built]
                env = {**image_env, **service_env(service)}
                setup = _setup_from_command(
                    ctx, "compose", argv, path, line, True, image_bases, env
                )
                if setup:
                    setup.service, setup.source = name, setup.source or path.parent
                    setups.append(setup)
                    replaced.add(path)
                continue
            if not given:
                continue
            words = (
                [str(w) for w in given] if isinstance(given, list) else split_command(str(given))
            )
            env = {**ctx.env, **service_env(service)}
            line = compose.line(name, "command" if "command" in service else "entrypoint")
            setup = _setup_from_command(ctx, "compose", words, compose.path, line, True, bases, env)
            if setup:
                setup.service = name
                build = service.get("build")
                context = build.get("context", ".") if isinstance(build, dict) else build
                if isinstance(context, str) and "://" not in context:
                    setup.source = (compose.path.parent / context).resolve()
                setups.append(setup)
    # A Dockerfile run by compose services is judged as those services.
    judged_as_services = {id(from_image[path]) for path in replaced if path in from_image}
    setups = [s for s in setups if id(s) not in judged_as_services]
    # A config file no launcher uses is judged on its own only when nothing starts
    # gunicorn at all; otherwise it is some other config (a local one, a test one).
    used = {s.config.path for s in setups if s.config}
    # ...and not when the deployment runs granian: a gunicorn config is then a local one.
    from flaskprod.check.parsers.granian import granian_setups

    granian = (ctx.spec is not None and ctx.spec.server.kind == "granian") or bool(
        granian_setups(ctx)
    )
    for path in ctx.of_kind("gunicorn") if not setups and not granian else []:
        if path in used:
            continue
        config = parse_config(ctx, path)
        in_container = bool(ctx.of_kind("dockerfile")) and not ctx.of_kind("systemd")
        setup = GunicornSetup("config", path, 1, in_container, config=config, env=dict(ctx.env))
        setup.settings.update(config.settings)
        if isinstance(setup.get("wsgi_app"), str):
            setup.target = setup.get("wsgi_app")
        setups.append(setup)
    return setups


def gunicorn_setups(ctx: Context) -> list[GunicornSetup]:
    """Every gunicorn the project starts (or configures), parsed once per run."""
    return cached(ctx, "parsers.gunicorn.setups", lambda: _build(ctx))


_UNIX = re.compile(r"^unix:(.+)$")


def _unit_environment(assignments: Iterable[Any]) -> dict[str, str]:
    """``Environment=A=1 "B=two words"`` lines of a unit as a mapping (systemd.exec(5))."""
    found: dict[str, str] = {}
    for assignment in assignments:
        try:
            words = shlex.split(assignment.value)
        except ValueError:
            continue
        for word in words:
            name, sep, value = word.partition("=")
            if sep and name:
                found[name] = value
    return found


def _variable_address(bind: object) -> bool:
    if not isinstance(bind, str) or "$" not in bind:
        return False
    if bind.startswith("unix:") or ":" not in bind:
        return True
    return "$" in bind.rpartition(":")[0]


def parse_bind(bind: str) -> tuple[str, str]:
    """``unix:/x.sock`` -> ("unix", "/x.sock"); ``0.0.0.0:8000`` -> ("0.0.0.0", "8000")."""
    match = _UNIX.match(bind)
    if match:
        return "unix", match.group(1)
    if bind.startswith("fd://"):
        return "fd", bind[5:]
    host, sep, port = bind.rpartition(":")
    if not sep:
        return (bind, "8000") if not bind.isdigit() else ("0.0.0.0", bind)
    return host.strip("[]") or "0.0.0.0", port
