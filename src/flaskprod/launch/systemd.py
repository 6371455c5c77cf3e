"""systemd unit files: a small parser, because configparser cannot read them.

Units repeat keys (``ExecStartPre=`` twice, ``Environment=`` many times), continue
lines with a trailing backslash, and reset a list with an empty assignment. We keep
every assignment with its line, in order, and let rules ask for the last value or all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Assignment:
    section: str
    key: str
    value: str
    line: int


@dataclass
class Unit:
    path: Path
    assignments: list[Assignment] = field(default_factory=list)
    error: tuple[int | None, str] | None = None

    def all(self, section: str, key: str) -> list[Assignment]:
        """Every value of a list key, after systemd's empty-assignment reset."""
        out: list[Assignment] = []
        for item in self.assignments:
            if item.section == section and item.key == key:
                out = [] if item.value == "" else [*out, item]
        return out

    def get(self, section: str, key: str) -> Assignment | None:
        values = self.all(section, key)
        return values[-1] if values else None

    def value(self, section: str, key: str, default: str = "") -> str:
        found = self.get(section, key)
        return found.value if found else default

    def has_section(self, section: str) -> bool:
        return any(item.section == section for item in self.assignments)

    @property
    def sections(self) -> set[str]:
        return {item.section for item in self.assignments}

    def first_line(self, section: str) -> int:
        lines = [a.line for a in self.assignments if a.section == section]
        return min(lines) - 1 if lines else 1


def parse_unit_text(path: Path, text: str) -> Unit:
    unit = Unit(path)
    section = ""
    pending: tuple[str, list[str], int] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if pending is not None:
            key, parts, start = pending
            if line.endswith("\\"):
                parts.append(line[:-1].strip())
                continue
            parts.append(line)
            unit.assignments.append(
                Assignment(section, key, " ".join(p for p in parts if p), start)
            )
            pending = None
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if not sep or not section:
            unit.error = unit.error or (
                number,
                f"not a 'Key=value' line in a [Section]: {line[:60]!r}",
            )
            continue
        value = value.strip()
        if value.endswith("\\"):
            pending = (key.strip(), [value[:-1].strip()], number)
            continue
        unit.assignments.append(Assignment(section, key.strip(), value, number))
    if pending is not None:  # a continuation running off the end of the file
        key, parts, start = pending
        unit.assignments.append(Assignment(section, key, " ".join(p for p in parts if p), start))
    return unit
