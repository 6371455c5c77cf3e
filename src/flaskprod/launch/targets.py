"""The app target a launcher's command serves: ``gunicorn -w 4 microblog:app`` ->
``microblog:app``, ``granian --factory hello.app:create_app`` ->
``hello.app:create_app()`` (granian calls it), ``flask --app hello run`` -> ``hello``,
``waitress-serve --call hello:create_app`` -> ``hello:create_app()``.

``init`` reads it to find the app (:mod:`flaskprod.spec.launchers`), ``check`` to
import the app it judges (:mod:`flaskprod.check.app_loader`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from flaskprod.launch import granian, gunicorn
from flaskprod.launch.shell import commands

#: ``module:name`` or ``module:factory(args)``.
TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(.*\))?$")
#: Options of app servers that take a value (so the value is not read as the target).
_VALUE_OPTIONS = frozenset(
    {"-b", "--bind", "-w", "--workers", "-k", "--worker-class", "-c", "--config", "-t"}
    | {"--timeout", "--threads", "--chdir", "--log-level", "--access-logfile", "-u", "-g"}
    | {"--error-logfile", "--pid", "--user", "--group", "-e", "--env", "--name", "-n"}
)
#: No file: a target is read from a command line alone.
_NOWHERE = Path()


def server_target(argv: list[str] | tuple[str, ...]) -> tuple[str, str | None] | None:
    """(server, its target or None) when ``argv`` runs an app server (granian,
    gunicorn, waitress-serve, ``flask --app``), else None. gunicorn's and granian's
    targets must look like ``module:name``; flask's ``--app`` is returned as written."""
    found_granian = granian.find_granian(argv)
    if found_granian is not None:
        flags, target = granian.parse_flags(found_granian[0])
        if target and flags.get("--factory") is True and "(" not in target:
            target += "()"  # granian calls the factory
        return "granian", target if target and TARGET.match(target) else None
    found_gunicorn = gunicorn.find_gunicorn(argv)
    if found_gunicorn is not None:
        _settings, target = gunicorn.parse_flags(found_gunicorn, _NOWHERE, 0)
        return "gunicorn", target if target and TARGET.match(target) else None
    for at, word in enumerate(argv):
        name = PurePosixPath(word).name
        if word == "-m" and at + 1 < len(argv):
            name = argv[at + 1]
        if name == "flask":
            return "flask", _flask_app(argv[at + 1 :])
        if name == "waitress-serve":
            return "waitress-serve", loose_target(argv[at + 1 :])
    return None


def loose_target(words: Sequence[str]) -> str | None:
    """The first word that looks like a target (another server's argument, a launcher
    script's), skipping the values of the usual options; ``--call`` makes it a factory
    (waitress-serve's)."""
    skip = False
    factory = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in _VALUE_OPTIONS:
            skip = True
            continue
        if word == "--call":
            factory = True
            continue
        if word.startswith("-"):
            continue
        if TARGET.match(word):
            return f"{word}()" if factory and "(" not in word else word
    return None


def command_target(text: str) -> str | None:
    """The target of the first app server command in shell ``text`` that names one."""
    for command in commands(text):
        found = server_target(command.argv)
        if found is not None and found[1]:
            return found[1]
    return None


def _flask_app(args: Sequence[str]) -> str | None:
    for at, word in enumerate(args):
        if word in {"--app", "-A"} and at + 1 < len(args):
            return args[at + 1]
        if word.startswith("--app="):
            return word.split("=", 1)[1]
    return None
