"""gunicorn settings, read statically from every place a project sets them.

``gunicorn.conf.py`` is Python, but we never execute it (it may import the app, read
secrets or fail on this machine): module-level assignments of literals and simple
expressions are evaluated with :mod:`ast`; ``multiprocessing.cpu_count() * 2 + 1``
is understood as "computed from the machine"; ``os.environ.get(NAME, default)``
reads the production environment. Command-line flags come from systemd
``ExecStart``, a Procfile, a Dockerfile ``CMD``/``ENTRYPOINT`` and compose
``command``; flags override the config file, as in gunicorn.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from flaskprod.check.parsers import cached, read_text
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.dockerfile import parse_dockerfiles
from flaskprod.check.parsers.shell import (
    SERVER_WORDS,
    command_words,
    commands,
    expand_known,
    script_variables,
    tokens,
    unwrap,
)
from flaskprod.check.parsers.supervisor import supervisor_programs
from flaskprod.check.parsers.systemd import parse_units

if TYPE_CHECKING:
    from flaskprod.check.context import Context


class Unknown:
    """A value the static reading could not work out (a rule then stays silent)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = Unknown()


@dataclass(frozen=True)
class CpuBased:
    """A worker count computed from the machine's cores at start."""

    expression: str


@dataclass(frozen=True)
class Setting:
    value: Any
    file: Path
    line: int


@dataclass
class GunicornConfig:
    path: Path
    settings: dict[str, Setting] = field(default_factory=dict)
    #: Server hooks defined in the file (post_fork, post_worker_init, ...), with lines.
    hooks: dict[str, int] = field(default_factory=dict)
    error: tuple[int | None, str] | None = None


# -- the config file ---------------------------------------------------------------

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
}


def _call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value)}.{node.attr}"
    return ""


class _Evaluator:
    def __init__(self, env: Mapping[str, str], source: str) -> None:
        self.env = env
        self.source = source
        self.names: dict[str, Any] = {}

    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Name):
            return self.names.get(node.id, UNKNOWN)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.eval(node.operand)
            return -value if isinstance(value, int | float) else UNKNOWN
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(left, CpuBased) or isinstance(right, CpuBased):
                return CpuBased(ast.get_source_segment(self.source, node) or "cpu_count()")
            if isinstance(left, Unknown) or isinstance(right, Unknown):
                return UNKNOWN
            try:
                return _BINOPS[type(node.op)](left, right)
            except Exception:
                return UNKNOWN
        if isinstance(node, ast.IfExp):
            test = self.eval(node.test)
            if isinstance(test, Unknown | CpuBased):
                return UNKNOWN
            return self.eval(node.body if test else node.orelse)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            for value_node in node.values:
                value = self.eval(value_node)
                if isinstance(value, Unknown) or value:
                    return value
            return value
        if isinstance(node, ast.Subscript) and _call_name(node.value) == "os.environ":
            key = self.eval(node.slice)
            return self.env.get(key, UNKNOWN) if isinstance(key, str) else UNKNOWN
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                value = (
                    self.eval(part.value)
                    if isinstance(part, ast.FormattedValue)
                    else self.eval(part)
                )
                if isinstance(value, Unknown | CpuBased):
                    return UNKNOWN
                parts.append(str(value))
            return "".join(parts)
        if isinstance(node, ast.Call):
            return self.call(node)
        return UNKNOWN

    def call(self, node: ast.Call) -> Any:
        name = _call_name(node.func)
        args = [self.eval(a) for a in node.args]
        if name.endswith("cpu_count") or (name == "len" and "sched_getaffinity" in ast.dump(node)):
            return CpuBased(ast.get_source_segment(self.source, node) or name)
        if name in ("os.environ.get", "os.getenv", "environ.get", "getenv") and args:
            default = args[1] if len(args) > 1 else None
            return self.env.get(args[0], default) if isinstance(args[0], str) else UNKNOWN
        if name in ("int", "float", "str", "bool") and len(args) == 1:
            value = args[0]
            if isinstance(value, CpuBased) and name == "int":
                return value
            if isinstance(value, Unknown | CpuBased):
                return UNKNOWN
            if name == "bool" and isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            try:
                return {"int": int, "float": float, "str": str, "bool": bool}[name](value)
            except (TypeError, ValueError):
                return UNKNOWN
        if name in ("max", "min") and args and not any(isinstance(a, Unknown) for a in args):
            if any(isinstance(a, CpuBased) for a in args):
                return CpuBased(ast.get_source_segment(self.source, node) or name)
            try:
                return max(args) if name == "max" else min(args)
            except TypeError:
                return UNKNOWN
        return UNKNOWN


def parse_config_text(path: Path, text: str, env: Mapping[str, str]) -> GunicornConfig:
    config = GunicornConfig(path)
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as error:
        config.error = (error.lineno, f"Python syntax error: {error.msg}")
        return config
    evaluator = _Evaluator(env, text)
    for statement in tree.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
            config.hooks[statement.name] = statement.lineno
            continue
        targets: list[ast.expr] = []
        value_node: ast.expr | None = None
        if isinstance(statement, ast.Assign):
            targets, value_node = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value_node = [statement.target], statement.value
        for target in targets:
            if isinstance(target, ast.Name) and value_node is not None:
                value = evaluator.eval(value_node)
                evaluator.names[target.id] = value
                config.settings[target.id] = Setting(value, path, statement.lineno)
    return config


def parse_config(ctx: Context, path: Path, env: Mapping[str, str] | None = None) -> GunicornConfig:
    """The config as it evaluates under ``env`` (a Dockerfile's ENV, a compose
    service's environment, or production's environment by default)."""
    env = ctx.env if env is None else env

    def build() -> GunicornConfig:
        text, problem = read_text(path)
        if text is None:
            return GunicornConfig(path, error=(None, problem or "unreadable"))
        return parse_config_text(path, text, env)

    return cached(ctx, f"parsers.gunicorn:{path}:{hash(frozenset(env.items()))}", build)


# -- command lines -----------------------------------------------------------------

_FLAGS = {
    "-b": "bind", "--bind": "bind",
    "-w": "workers", "--workers": "workers",
    "-k": "worker_class", "--worker-class": "worker_class",
    "--threads": "threads",
    "-t": "timeout", "--timeout": "timeout",
    "--graceful-timeout": "graceful_timeout",
    "--keep-alive": "keepalive",
    "--max-requests": "max_requests",
    "--max-requests-jitter": "max_requests_jitter",
    "--forwarded-allow-ips": "forwarded_allow_ips",
    "-c": "config", "--config": "config",
    "--chdir": "chdir",
}  # fmt: skip
_SWITCHES = {"--preload": "preload_app", "--reload": "reload"}
#: Flags taking no value (everything else unknown is assumed to take one).
_OTHER_SWITCHES = {
    "-D", "--daemon", "--check-config", "--print-config", "--spew", "--capture-output",
    "--enable-stdio-inheritance", "--no-sendfile", "--reuse-port", "--proxy-protocol",
    "-R", "--strip-header-spaces", "--suppress-ragged-eofs", "--do-handshake-on-connect",
    "--disable-redirect-access-to-syslog", "--log-syslog", "--statsd-prefix",
}  # fmt: skip
_INT_SETTINGS = {"workers", "threads", "timeout", "graceful_timeout", "keepalive", "max_requests"}


def find_gunicorn(words: list[str] | tuple[str, ...]) -> list[str] | None:
    """The gunicorn argv inside a command (after env, exec, sh -c, python -m)."""
    for command in unwrap(words):
        found = _gunicorn_args(command.argv)
        if found is not None:
            return found
    return None


def _gunicorn_args(words: tuple[str, ...]) -> list[str] | None:
    for index, word in enumerate(words):
        base = PurePosixPath(word).name
        if base == "gunicorn" or (
            base.startswith("gunicorn") and base[8:].replace(".", "").isdigit()
        ):
            return list(words[index + 1 :])
        if word == "-m" and index + 1 < len(words) and words[index + 1] == "gunicorn":
            return list(words[index + 2 :])
    return None


def split_command(text: str) -> list[str]:
    """The app server's command in shell ``text`` (continuations joined, ``exec``,
    ``VAR=x`` and ``sh -c`` unwrapped; of ``a && b``, the command that runs a server,
    else the last one)."""
    return command_words(text, SERVER_WORDS)


def parse_flags(args: list[str], file: Path, line: int) -> tuple[dict[str, Setting], str | None]:
    """gunicorn argv (after the program) -> settings, app target."""
    settings: dict[str, Setting] = {}
    binds: list[str] = []
    target: str | None = None
    index = 0
    while index < len(args):
        word = args[index]
        flag, has_eq, inline = word.partition("=")
        if word.startswith("-") and flag in _FLAGS:
            value = inline if has_eq else (args[index + 1] if index + 1 < len(args) else "")
            index += 1 if has_eq else 2
            name = _FLAGS[flag]
            if name == "bind":
                binds.append(value)
                continue
            parsed: Any = value
            if name in _INT_SETTINGS:
                parsed = int(value) if value.lstrip("-").isdigit() else UNKNOWN
            settings[name] = Setting(parsed, file, line)
            continue
        if word in _SWITCHES:
            settings[_SWITCHES[word]] = Setting(True, file, line)
        elif word.startswith("-") and word not in _OTHER_SWITCHES and not has_eq:
            index += 1  # an option we do not read, with its value
        elif not word.startswith("-"):
            target = word
        index += 1
    if binds:
        settings["bind"] = Setting(binds, file, line)
    return settings, target


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
        value = self.get("worker_class", "sync")
        if not isinstance(value, str):
            return "unknown"
        short = value.rsplit(".", 1)[-1].lower()
        name = {"threadworker": "gthread", "geventworker": "gevent", "ggeventworker": "gevent"}.get(
            short, short.removeprefix("egg:gunicorn#")
        )
        threads = self.get("threads", 1)
        if name == "sync" and isinstance(threads, int) and threads > 1:
            return "gthread"  # gunicorn switches to gthread when threads > 1
        return name

    @property
    def workers(self) -> Any:
        value = self.get("workers")
        if value is None:
            concurrency = self.env.get("WEB_CONCURRENCY", "")
            return int(concurrency) if concurrency.isdigit() else 1
        return value


def _to_project(ctx: Context, text: str, bases: list[str]) -> Path | None:
    """A path as the server sees it -> the file in the project, if it is one."""
    path = PurePosixPath(text)
    if not path.is_absolute():
        for base in ["", *bases]:
            candidate = (ctx.root / base.lstrip("/") / path) if base else ctx.root / path
            if candidate.is_file():
                return candidate
    for base in bases:
        if base and path.is_relative_to(base):
            candidate = ctx.root / path.relative_to(base)
            if candidate.is_file():
                return candidate
    for start in range(1, len(path.parts)):  # the longest tail that exists here
        candidate = ctx.root.joinpath(*path.parts[start:])
        if candidate.is_file():
            return candidate
    return None


def _install_bases(ctx: Context) -> list[str]:
    bases = [ctx.spec.app.install_dir] if ctx.spec else []
    for unit in parse_units(ctx):
        workdir = unit.value("Service", "WorkingDirectory").lstrip("-")
        if workdir.startswith("/"):
            bases.append(workdir)
    return bases


def _from_script(
    ctx: Context, words: list[str], bases: list[str], env: dict[str, str]
) -> tuple[list[str], Path, int, dict[str, str]] | None:
    """gunicorn started by a shell script of the project (docker-entrypoint.sh,
    start.sh): its gunicorn line, the script, the line number, and ``env`` with the
    variables the script sets itself (CTFd: ``WORKER_CLASS=${WORKER_CLASS:-gevent}``)."""
    script_word = next((w for w in words[:3] if w.endswith(".sh")), None)
    if script_word is None:
        return None
    script = _to_project(ctx, script_word, bases)
    if script is None:  # copied into the image under another folder: find it by name
        name = PurePosixPath(script_word).name
        found = [p for depth in ("", "*/", "*/*/") for p in sorted(ctx.root.glob(depth + name))]
        script = next((p for p in found if p.is_file()), None)
    if script is None:
        return None
    text, _ = read_text(script)
    for command in commands(text or ""):
        args = find_gunicorn(command.argv)
        if args is not None:
            return args, script, command.line, script_variables(text or "", env)
    return None


def _config_file(ctx: Context, value: str, bases: list[str]) -> Path | None:
    """The file of ``-c FILE`` or of ``-c python:package.module`` (a module gunicorn
    imports from its working directory: looked up under the project and its bases)."""
    if not value.startswith("python:"):
        return _to_project(ctx, value, bases)
    module = value.removeprefix("python:").strip()
    parts = module.split(".")
    if not module or not all(part.isidentifier() for part in parts):
        return None
    for relative in (Path(*parts).with_suffix(".py"), Path(*parts) / "__init__.py"):
        found = _to_project(ctx, relative.as_posix(), bases)
        if found is not None:
            return found
    return None


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
    args = find_gunicorn(words)
    if args is None:
        found = _from_script(ctx, words, bases, env)
        if found is None:
            return None
        args, file, line, env = found
    # the launcher's shell expands $WORKERS from the environment it has
    args = [expand_known(word, env) for word in args]
    flags, target = parse_flags(args, file, line)
    setup = GunicornSetup(origin, file, line, in_container, target=target, env=env)
    config_value = flags.get("config")
    config_path: Path | None = None
    if config_value is not None and isinstance(config_value.value, str):
        config_path = _config_file(ctx, config_value.value, bases)
    else:
        config_path = next(
            (p for p in ctx.of_kind("gunicorn") if p.name == "gunicorn.conf.py"), None
        )
    if config_path is not None:
        setup.config = parse_config(ctx, config_path, env)
        setup.settings.update(setup.config.settings)
    # gunicorn's order: config file, then GUNICORN_CMD_ARGS, then the command line.
    env_args = env.get("GUNICORN_CMD_ARGS", "")
    if env_args.strip():
        env_flags, _ = parse_flags(tokens(env_args), file, line)
        setup.settings.update(env_flags)
    setup.settings.update(flags)
    if setup.target is None and isinstance(setup.get("wsgi_app"), str):
        setup.target = setup.get("wsgi_app")
    return setup


def _compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment")
    if isinstance(env, dict):
        return {str(k): str(v) for k, v in env.items() if v is not None}
    if isinstance(env, list):
        pairs = [str(item).partition("=") for item in env]
        return {k: v for k, sep, v in pairs if sep}
    return {}


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
        setup = _setup_from_command(
            ctx, "systemd", words, unit.path, start.line, False, bases, dict(ctx.env)
        )
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
            setup.source = dockerfile.path.parent
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
                env = {**image_env, **_compose_env(service)}
                setup = _setup_from_command(
                    ctx, "compose", argv, path, line, True, image_bases, env
                )
                if setup:
                    setup.service, setup.source = name, path.parent
                    setups.append(setup)
                    replaced.add(path)
                continue
            if not given:
                continue
            words = (
                [str(w) for w in given] if isinstance(given, list) else split_command(str(given))
            )
            env = {**ctx.env, **_compose_env(service)}
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
