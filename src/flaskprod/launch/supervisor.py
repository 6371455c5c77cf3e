"""supervisord program configs: ``[program:NAME]`` sections (``command``,
``directory``, ``environment``), as a VM deployment starts the app with supervisor
(microblog's deployment/supervisor/microblog.conf)."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path

#: KEY="value",KEY2=value in supervisor's environment= (values may be quoted).
_PAIR = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|[^,]*)""")


@dataclass
class Program:
    name: str
    file: Path
    line: int  # of its command= line
    command: str
    directory: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: Every option of its section (autorestart, user, numprocs...), as written.
    options: dict[str, str] = field(default_factory=dict, compare=False)


def _environment(value: str) -> dict[str, str]:
    return {key: raw.strip().strip("\"'") for key, raw in _PAIR.findall(value)}


def _line_of(text: str, section: str, key: str) -> int:
    inside = False
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("["):
            inside = stripped == f"[{section}]"
        elif inside and stripped.split("=", 1)[0].strip() == key:
            return number
    return 1


def parse_programs(text: str, path: Path) -> list[Program]:
    """The programs of one config (an unreadable or broken file gives none: the
    server's supervisorctl is where its syntax is judged)."""
    parser = configparser.RawConfigParser(strict=False, inline_comment_prefixes=(";", "#"))
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error:
        return []
    programs = []
    for section in parser.sections():
        if not section.startswith("program:") or not parser.has_option(section, "command"):
            continue
        command = " ".join(parser.get(section, "command").split("\n"))
        programs.append(
            Program(
                name=section.removeprefix("program:"),
                file=path,
                line=_line_of(text, section, "command"),
                command=command,
                directory=parser.get(section, "directory", fallback=None),
                env=_environment(parser.get(section, "environment", fallback="")),
                options={key: parser.get(section, key) for key in parser.options(section)},
            )
        )
    return programs
