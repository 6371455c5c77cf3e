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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from flaskprod.launch.scripts import launched_script, module_file
from flaskprod.launch.shell import commands, expand_known, script_variables, tokens, unwrap
from flaskprod.launch.text import read_text


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
    "-m": "umask", "--umask": "umask",
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


def merged_settings(
    config: GunicornConfig | None,
    env: Mapping[str, str],
    flags: dict[str, Setting],
    file: Path,
    line: int,
) -> dict[str, Setting]:
    """gunicorn's order: the config file, then ``GUNICORN_CMD_ARGS``, then the
    command line's ``flags`` (each overriding the one before)."""
    settings = dict(config.settings) if config else {}
    env_args = env.get("GUNICORN_CMD_ARGS", "")
    if env_args.strip():
        env_flags, _ = parse_flags(tokens(env_args), file, line)
        settings.update(env_flags)
    settings.update(flags)
    return settings


def worker_class_name(value: Any, threads: Any) -> str:
    """The worker class gunicorn runs (``sync``, ``gthread``, ``gevent``, ...) for a
    ``worker_class`` setting and a ``threads`` count."""
    if not isinstance(value, str):
        return "unknown"
    short = value.rsplit(".", 1)[-1].lower()
    name = {"threadworker": "gthread", "geventworker": "gevent", "ggeventworker": "gevent"}.get(
        short, short.removeprefix("egg:gunicorn#")
    )
    if name == "sync" and isinstance(threads, int) and threads > 1:
        return "gthread"  # gunicorn switches to gthread when threads > 1
    return name


def worker_count(value: Any, env: Mapping[str, str]) -> Any:
    """The workers gunicorn starts: the setting, else ``WEB_CONCURRENCY``, else 1."""
    if value is None:
        concurrency = env.get("WEB_CONCURRENCY", "")
        return int(concurrency) if concurrency.isdigit() else 1
    return value


def read_config(path: Path, env: Mapping[str, str]) -> GunicornConfig:
    """The config file at ``path`` as it evaluates under ``env``."""
    text, problem = read_text(path)
    if text is None:
        return GunicornConfig(path, error=(None, problem or "unreadable"))
    return parse_config_text(path, text, env)


@dataclass(frozen=True)
class GunicornLaunch:
    """How one launcher starts gunicorn: where its command line is (the launcher's, or
    the script's it runs), its flags and target, and the config file it reads."""

    file: Path
    line: int
    flags: dict[str, Setting]
    target: str | None
    config: Path | None


def gunicorn_launch(
    root: Path,
    words: list[str],
    where: tuple[Path, int],
    bases: list[str],
    env: Mapping[str, str],
    configs: list[Path],
) -> GunicornLaunch | None:
    """gunicorn as the command ``words`` (written at ``where``) starts it, directly or
    through a shell script of the project at ``root`` (docker-entrypoint.sh,
    start.sh); None when it does not. ``configs``: the project's gunicorn config
    files, ``gunicorn.conf.py`` among them being read when no ``-c`` is given."""
    file, line = where
    args = find_gunicorn(words)
    if args is None:
        script = launched_script(root, words, bases)
        if script is None:
            return None
        text, _ = read_text(script)
        found = ((c, find_gunicorn(c.argv)) for c in commands(text or ""))
        command, args = next(((c, a) for c, a in found if a is not None), (None, None))
        if command is None or args is None:
            return None
        file, line = script, command.line
        # what the script sets for itself (CTFd: WORKER_CLASS=${WORKER_CLASS:-gevent})
        env = script_variables(text or "", env)
    # the launcher's shell expands $WORKERS from the environment it has
    flags, target = parse_flags([expand_known(word, env) for word in args], file, line)
    config_value = flags["config"].value if "config" in flags else None
    config = (
        module_file(root, config_value, bases)
        if isinstance(config_value, str)
        else next((p for p in configs if p.name == "gunicorn.conf.py"), None)
    )
    return GunicornLaunch(file, line, flags, target, config)
