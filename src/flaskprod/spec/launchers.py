"""What a project already says about its app target, outside its Python code.

- ``FLASK_APP`` in ``.flaskenv`` / ``.env`` (what ``flask run`` reads: microblog's
  ``FLASK_APP=microblog.py``);
- the commands that start it in production: Procfile, boot/entrypoint scripts,
  Dockerfile ``CMD``/``ENTRYPOINT``, compose ``command``, supervisor ``command=``
  (``gunicorn -b :5000 microblog:app``, ``granian --factory hello.app:create_app``,
  ``flask --app hello run``, ``waitress-serve --call hello:create_app``).

Nothing is imported or run: files are read and command lines split as a shell would.
Detection (:mod:`flaskprod.spec.detect`) confirms each target exists before using it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_TARGET = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*(\(.*\))?)?$")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?FLASK_APP\s*=\s*(.*?)\s*$")
#: Options of the servers above that take a value (so the value is not the target).
_VALUE_OPTIONS = frozenset(
    {"-b", "--bind", "-w", "--workers", "-k", "--worker-class", "-c", "--config", "-t"}
    | {"--timeout", "--threads", "--chdir", "--log-level", "--access-logfile", "-u", "-g"}
    | {"--error-logfile", "--log-file", "--pid", "--user", "--group", "-e", "--env", "-n"}
    | {"--name", "--log-config", "--max-requests", "--max-requests-jitter", "--keep-alive"}
    | {"--graceful-timeout", "--backlog", "--worker-connections", "--certfile", "--keyfile"}
    | {"--forwarded-allow-ips", "--worker-tmp-dir", "--limit-request-line", "-p", "--port"}
    | {"--host", "-h", "--interface", "--blocking-threads", "--uds", "--loop", "--http"}
    | {"--workers-lifetime", "--respawn-interval", "--env-file", "--listen", "--url-prefix"}
    | {"--threading-mode", "--backpressure", "--workers-kill-timeout", "--uds-permissions"}
)
_SERVERS = frozenset({"gunicorn", "granian", "waitress-serve", "flask"})
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "(", ")"})
_SCRIPT_DIRS = (".", "scripts", "bin", "docker", "deploy", "deployment")


@dataclass(frozen=True)
class Found:
    """A target and where it was read, for messages (``Procfile``, ``.flaskenv``)."""

    target: str
    where: str


def flask_app_setting(root: Path) -> Found | None:
    """``FLASK_APP`` from ``.flaskenv``, else ``.env`` (python-dotenv's syntax)."""
    for name in (".flaskenv", ".env"):
        try:
            lines = (root / name).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            match = _ENV_LINE.match(line)
            if match:
                value = match.group(1).split(" #", 1)[0].strip().strip("'\"")
                if value:
                    return Found(value, f"FLASK_APP in {name}")
    return None


def launcher_targets(root: Path, extra_dirs: tuple[Path, ...] = ()) -> list[Found]:
    """Every app target the project's launchers name, in the order production would
    use them: Procfile, scripts, Dockerfiles, compose files, supervisor configs.
    ``extra_dirs``: more folders whose compose files may start this one (the
    repository's root when the app is in a subfolder of it)."""
    found: list[Found] = []
    for path, command in _commands(root, extra_dirs):
        target = command_target(command)
        if target:
            where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            found.append(Found(target, where))
    return found


def command_target(command: str) -> str | None:
    """The app target of a shell command line (or script), or None when it starts no
    server. Lines continued with a backslash are one command; lines are separate."""
    words: list[str] = []
    for line in command.replace("\\\n", " ").splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            words += [*lexer, ";"]
        except ValueError:  # an unclosed quote: not a line we can read
            continue
    segment: list[str] = []
    for word in words:
        if word in _SEPARATORS:
            target = _segment_target(segment)
            if target:
                return target
            segment = []
        else:
            segment.append(word)
    return None


def _segment_target(words: list[str]) -> str | None:
    """``[env=1] [exec] [python -m] SERVER [options] TARGET [...]``."""
    for at, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        if name in _SERVERS:
            return _server_target(name, words[at + 1 :])
        if word == "-m" and at + 1 < len(words) and words[at + 1] in _SERVERS:
            return _server_target(words[at + 1], words[at + 2 :])
    return None


def _server_target(server: str, args: list[str]) -> str | None:
    if server == "flask":
        for at, word in enumerate(args):
            if word in {"--app", "-A"} and at + 1 < len(args):
                return args[at + 1]
            if word.startswith("--app="):
                return word.split("=", 1)[1]
        return None
    factory = "--factory" in args or "--call" in args
    skip = False
    for word in args:
        if skip:
            skip = False
        elif word in _VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-") and _TARGET.match(word) and ":" in word:
            return f"{word}()" if factory and "(" not in word else word
    return None


# -- the files --------------------------------------------------------------------------


def _commands(root: Path, extra_dirs: tuple[Path, ...]) -> Iterator[tuple[Path, str]]:
    procfile = root / "Procfile"
    for line in _lines(procfile):
        if ":" in line and not line.lstrip().startswith("#"):
            yield procfile, line.split(":", 1)[1]
    for scripts in _SCRIPT_DIRS:
        for script in sorted((root / scripts).glob("*.sh")):
            yield script, _text(script)
    for dockerfile in sorted(root.glob("Dockerfile*")):
        yield from ((dockerfile, command) for command in _dockerfile_commands(dockerfile))
    for folder in (root, *extra_dirs):
        for compose in sorted(
            [*folder.glob("docker-compose*.y*ml"), *folder.glob("compose*.y*ml")]
        ):
            yield from ((compose, command) for command in _compose_commands(compose))
    for conf in sorted(
        [*root.glob("deployment/supervisor*/*.conf"), *root.glob("supervisor*.conf")]
    ):
        for line in _lines(conf):
            if line.strip().startswith("command"):
                yield conf, line.split("=", 1)[-1]


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _lines(path: Path) -> list[str]:
    return _text(path).splitlines()


def _dockerfile_commands(path: Path) -> Iterator[str]:
    text = _text(path).replace("\\\n", " ")
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() in {"CMD", "ENTRYPOINT"}:
            rest = rest.strip()
            if rest.startswith("["):  # exec form: a JSON array
                try:
                    words = yaml.safe_load(rest)
                except yaml.YAMLError:
                    continue
                if isinstance(words, list):
                    yield shlex.join(str(word) for word in words)
            else:
                yield rest


def _compose_commands(path: Path) -> Iterator[str]:
    try:
        data: Any = yaml.safe_load(_text(path))
    except yaml.YAMLError:
        return
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return
    for service in services.values():
        command = service.get("command") if isinstance(service, dict) else None
        if isinstance(command, list):
            yield shlex.join(str(word) for word in command)
        elif isinstance(command, str):
            yield command
