"""The commands a project's launchers run, read from its files: Procfile lines, shell
scripts, the command a Dockerfile's final image runs (``ENTRYPOINT`` + ``CMD``, shell
or exec form), compose ``command``/``entrypoint``, supervisor ``command=``, systemd
``ExecStart``. Each comes with the environment and install folders it runs under, so
``$VARIABLES`` and the files it names can be resolved.

Which files to read is the caller's: ``init`` looks where projects keep their
launchers (:mod:`flaskprod.spec.launchers`), the app server choice reads what
:func:`flaskprod.launch.discover.discover` finds.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaskprod.launch.compose import parse_compose_text, service_env
from flaskprod.launch.dockerfile import parse_dockerfile_text
from flaskprod.launch.supervisor import parse_programs
from flaskprod.launch.systemd import parse_unit_text
from flaskprod.launch.text import read_text

#: The kinds of launcher files, as keys of the mapping :func:`read_launchers` takes.
ORIGINS = ("systemd", "supervisor", "procfile", "dockerfile", "compose", "script")


@dataclass(frozen=True)
class Launcher:
    """One command a launcher runs, as shell text, and where it is written."""

    origin: str  # one of ORIGINS
    file: Path
    line: int
    text: str
    #: The variables it runs with (a Dockerfile's ENV, a compose service's environment).
    env: dict[str, str] = field(default_factory=dict, compare=False)
    #: Folders the code is installed in where it runs (WORKDIR, WorkingDirectory).
    bases: tuple[str, ...] = ()
    #: The process's own name there: a Procfile's process type, a supervisor
    #: program, a compose service, a systemd unit ("" where a file has none).
    name: str = field(default="", compare=False)


def read_launchers(files: Mapping[str, Sequence[Path]], order: Sequence[str]) -> list[Launcher]:
    """The launchers of ``files`` (paths by origin), origin by origin in ``order``."""
    found: list[Launcher] = []
    for origin in order:
        for path in files.get(origin, ()):
            text, _ = read_text(path)
            if text is not None:
                found += _READERS[origin](path, text)
    return found


def _procfile(path: Path, text: str) -> list[Launcher]:
    # A Procfile runs on a PaaS (Heroku, Dokku): PORT is set by the platform.
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        name, sep, command = raw.partition(":")
        if sep and not raw.lstrip().startswith("#"):
            env = {"PORT": "$PORT"}
            found.append(Launcher("procfile", path, number, command, env, name=name.strip()))
    return found


def _script(path: Path, text: str) -> list[Launcher]:
    return [Launcher("script", path, 1, text)]


def _dockerfile(path: Path, text: str) -> list[Launcher]:
    dockerfile = parse_dockerfile_text(path, text)
    instruction = dockerfile.command()
    if instruction is None or dockerfile.final is None:
        return []
    form = instruction.exec_form
    command = shlex.join(form) if form is not None else instruction.value
    workdirs = tuple(i.value for i in dockerfile.final.find("WORKDIR"))
    return [Launcher("dockerfile", path, instruction.line, command, dockerfile.env(), workdirs)]


def _compose(path: Path, text: str) -> list[Launcher]:
    compose = parse_compose_text(path, text)
    found = []
    for name, service in compose.services.items():
        key = "command" if service.get("command") else "entrypoint"
        given: Any = service.get(key)
        if not given:
            continue
        command = shlex.join(str(w) for w in given) if isinstance(given, list) else str(given)
        line = compose.line(name, key)
        found.append(Launcher("compose", path, line, command, service_env(service), name=name))
    return found


def _supervisor(path: Path, text: str) -> list[Launcher]:
    return [
        Launcher(
            "supervisor",
            path,
            program.line,
            program.command,
            program.env,
            (program.directory,) if program.directory else (),
            name=program.name,
        )
        for program in parse_programs(text, path)
    ]


def _systemd(path: Path, text: str) -> list[Launcher]:
    unit = parse_unit_text(path, text)
    start = unit.get("Service", "ExecStart")
    if start is None:
        return []
    command = start.value.lstrip("-@:+!").replace("$$", "$")  # systemd's prefixes, its $$
    workdir = unit.value("Service", "WorkingDirectory").lstrip("-")
    bases = (workdir,) if workdir else ()
    return [Launcher("systemd", path, start.line, command, {}, bases, name=path.stem)]


_READERS = {
    "procfile": _procfile,
    "script": _script,
    "dockerfile": _dockerfile,
    "compose": _compose,
    "supervisor": _supervisor,
    "systemd": _systemd,
}
