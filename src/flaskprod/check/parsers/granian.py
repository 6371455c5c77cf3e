"""granian as the project under check starts it: every place that starts granian (a
systemd unit's ExecStart, a Procfile line, the final stage's CMD of a Dockerfile, a
compose ``command``), directly, through ``python -m flaskprod.serve`` (older kits) or
in a shell line that counts the workers and execs it (the kit's). granian has no config
file: its flags and its ``GRANIAN_*`` environment are all there is to read (the command
line itself is read by :mod:`flaskprod.launch.granian`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.check.parsers import cached
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.dockerfile import parse_dockerfiles
from flaskprod.check.parsers.supervisor import supervisor_programs
from flaskprod.check.parsers.systemd import parse_units
from flaskprod.launch.granian import SWITCHES, find_granian, parse_flags
from flaskprod.launch.shell import split_command
from flaskprod.launch.text import read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context


@dataclass
class GranianSetup:
    """One place that starts granian, with what it says."""

    origin: str  # systemd, supervisor, procfile, dockerfile, compose
    file: Path
    line: int
    in_container: bool
    flags: dict[str, str | bool] = field(default_factory=dict)
    target: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: Started through flaskprod.serve, which sets --workers for the machine.
    launcher: bool = False

    def setting(self, flag: str) -> str | bool | None:
        """A flag's value, else its GRANIAN_* variable (click's auto env), else None."""
        if flag in self.flags:
            return self.flags[flag]
        negative = "--no-" + flag[2:]
        if negative in self.flags:
            return False
        name = "GRANIAN_" + flag[2:].upper().replace("-", "_")
        value = self.env.get(name)
        if value is None:
            return None
        if flag in SWITCHES:
            return value.strip().lower() in ("1", "true", "yes", "on")
        return value

    @property
    def app_target(self) -> str | None:
        """The target as an import expression: ``--factory app:create_app`` is the
        factory, called (``app:create_app()``), as granian calls it."""
        if self.target and self.setting("--factory") is True and "(" not in self.target:
            return f"{self.target}()"
        return self.target

    @property
    def interface(self) -> str:
        value = self.setting("--interface")
        return value if isinstance(value, str) else "rsgi"  # granian's default

    @property
    def binds(self) -> list[str]:
        """Where it listens, in gunicorn's notation ("unix:/path" or "host:port")."""
        uds = self.setting("--uds")
        if isinstance(uds, str):
            return [f"unix:{uds}"]
        host = self.setting("--host")
        port = self.setting("--port")
        return [
            f"{host if isinstance(host, str) else '127.0.0.1'}:"
            f"{port if isinstance(port, str) else '8000'}"
        ]


#: The kit's launch line: --workers "${WEB_CONCURRENCY:-N}" (N a number, or the cores).
_CONCURRENCY = re.compile(r"^\$\{WEB_CONCURRENCY:-(.*)\}$")


def _setup(
    origin: str, words: list[str], file: Path, line: int, in_container: bool, env: dict[str, str]
) -> GranianSetup | None:
    found = find_granian(words)
    if found is None:
        return None
    args, launcher = found
    flags, target = parse_flags(args)
    workers = flags.get("--workers")
    given = _CONCURRENCY.match(workers) if isinstance(workers, str) else None
    if given:  # WEB_CONCURRENCY overrides a count the launch line knows (or computes)
        launcher = True
        if given.group(1).isdigit():
            flags["--workers"] = given.group(1)
        else:
            del flags["--workers"]
    return GranianSetup(origin, file, line, in_container, flags, target, env, launcher)


def _build(ctx: Context) -> list[GranianSetup]:
    setups: list[GranianSetup] = []
    for unit in parse_units(ctx):
        start = unit.get("Service", "ExecStart")
        if start is not None:
            words = split_command(start.value.lstrip("-@:+!").replace("$$", "$"))  # systemd's $$
            setup = _setup("systemd", words, unit.path, start.line, False, dict(ctx.env))
            if setup:
                setups.append(setup)
    for program in supervisor_programs(ctx):
        words = split_command(program.command)
        env = {**ctx.env, **program.env}
        setup = _setup("supervisor", words, program.file, program.line, False, env)
        if setup:
            setups.append(setup)
    for procfile in ctx.of_kind("procfile"):
        text, _ = read_text(procfile)
        for number, raw in enumerate((text or "").splitlines(), start=1):
            _name, sep, command = raw.partition(":")
            if sep and ("granian" in command or "flaskprod.serve" in command):
                env = {"PORT": "$PORT", **ctx.env}
                setup = _setup("procfile", split_command(command), procfile, number, True, env)
                if setup:
                    setups.append(setup)
    for dockerfile in parse_dockerfiles(ctx):
        instruction = dockerfile.command()
        final = dockerfile.final
        if instruction is None or final is None:
            continue
        env = {**ctx.env, **dockerfile.env()}
        setup = _setup(
            "dockerfile", instruction.argv(), dockerfile.path, instruction.line, True, env
        )
        if setup:
            setups.append(setup)
    for compose in parse_compose_files(ctx):
        for name, service in compose.services.items():
            given = service.get("command")
            if not given:
                continue
            words = (
                [str(w) for w in given] if isinstance(given, list) else split_command(str(given))
            )
            line = compose.line(name, "command")
            setup = _setup("compose", words, compose.path, line, True, dict(ctx.env))
            if setup:
                setups.append(setup)
    return setups


def granian_setups(ctx: Context) -> list[GranianSetup]:
    """Every granian the project starts, parsed once per run."""
    return cached(ctx, "parsers.granian.setups", lambda: _build(ctx))
