"""``init --add-deps`` for a project declared only in pyproject.toml (the Flask
tutorial's flaskr): new entries appended to ``[project].dependencies`` by a textual
edit, so the rest of the file stays byte for byte as its author wrote it. The result
is parsed back: anything but "the same document with these entries added" is refused
before a byte is written.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from flaskprod.errors import ProjectError

_TABLE = re.compile(r"^[ \t]*\[\s*project\s*\][ \t]*(#.*)?$", re.MULTILINE)
_ANY_TABLE = re.compile(r"^[ \t]*\[", re.MULTILINE)
_KEY = re.compile(r"^[ \t]*(?:dependencies|\"dependencies\"|'dependencies')[ \t]*=[ \t]*\[", re.M)


def add_dependencies(text: str, entries: list[str], where: str = "pyproject.toml") -> str:
    """``text`` with ``entries`` appended to ``[project].dependencies``; a ProjectError
    naming ``where`` when the file does not declare them in a form this edit can keep."""
    before = _parse(text, where)
    project = before.get("project")
    if not isinstance(project, dict):
        raise _refuse(where, "has no [project] table")
    if "dependencies" in project.get("dynamic", []):
        raise _refuse(where, "declares its dependencies as dynamic")
    header = _TABLE.search(text)
    if header is None:
        raise _refuse(where, "defines [project] in a form this edit does not change")
    end = _ANY_TABLE.search(text, header.end())
    table_end = end.start() if end else len(text)
    key = _KEY.search(text, header.end(), table_end)
    if key is None:
        if "dependencies" in project:
            raise _refuse(where, "sets project.dependencies in a form this edit does not change")
        block = "dependencies = [\n" + "".join(f"    {_quoted(e)},\n" for e in entries) + "]\n"
        cut = text.index("\n", header.end()) + 1 if "\n" in text[header.end() :] else len(text)
        new = text[:cut] + ("" if text[:cut].endswith("\n") else "\n") + block + text[cut:]
    else:
        new = _append(text, key.end() - 1, entries)
    after = _parse(new, where)
    expected = dict(project, dependencies=[*project.get("dependencies", []), *entries])
    if after != {**before, "project": expected}:
        raise _refuse(where, "could not be edited without changing more than the dependencies")
    return new


def _append(text: str, opening: int, entries: list[str]) -> str:
    """Entries inserted into the array whose ``[`` is at ``opening``."""
    closing, last = _array_span(text, opening)
    items = [_quoted(entry) for entry in entries]
    inside = text[opening + 1 : closing]
    if "\n" not in inside:  # one line: ["flask", "click"]
        lead = "" if last is None else (" " if text[last] == "," else ", ")
        return text[:closing] + lead + ", ".join(items) + text[closing:]
    indent = _indent(text, opening, closing, last)
    if last is not None and text.rfind("\n", 0, closing) < last:
        # the last entry and "]" share a line: the new ones follow it, same style
        sep = "" if text[last] == "," else ","
        added = sep + ",".join(f"\n{indent}{item}" for item in items)
        return text[: last + 1] + added + text[last + 1 :]
    # each entry on a line of its own, after the last one's line (its comment kept)
    line_end = text.find("\n", opening if last is None else last)
    added = "".join(f"\n{indent}{item}," for item in items)
    if last is not None and text[last] != ",":
        return text[: last + 1] + "," + text[last + 1 : line_end] + added + text[line_end:]
    return text[:line_end] + added + text[line_end:]


def _array_span(text: str, opening: int) -> tuple[int, int | None]:
    """(index of the array's closing ``]``, index of its last significant character
    before it, None when empty), reading strings and comments as TOML does."""
    depth = 0
    last: int | None = None
    index = opening
    while index < len(text):
        char = text[index]
        if char == "#":
            index = text.find("\n", index)
            if index < 0:
                break
            continue
        if char in "\"'":
            index = _string_end(text, index)
            last = index
        elif char == "[":
            depth += 1
            if index != opening:
                last = index
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index, last
            last = index
        elif not char.isspace():
            last = index
        index += 1
    raise ProjectError("pyproject.toml: [project].dependencies: the array never closes")


def _string_end(text: str, start: int) -> int:
    """Index of the quote closing the string opened at ``start`` (multi-line too)."""
    quote = text[start]
    triple = text.startswith(quote * 3, start)
    delimiter = quote * 3 if triple else quote
    index = start + len(delimiter)
    while index < len(text):
        if quote == '"' and text[index] == "\\":
            index += 2
            continue
        if text.startswith(delimiter, index):
            return index + len(delimiter) - 1
        index += 1
    return len(text) - 1


def _indent(text: str, opening: int, closing: int, last: int | None) -> str:
    """The indentation of the array's entries (four spaces when it has none)."""
    anchor = last if last is not None else closing
    line_start = text.rfind("\n", opening, anchor) + 1
    if line_start <= opening:
        return "    "
    match = re.match(r"[ \t]*", text[line_start:])
    return match.group(0) if match and match.group(0) else "    "


def _quoted(entry: str) -> str:
    return json.dumps(entry)  # a TOML basic string (the pinned lines are plain ASCII)


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProjectError(f"--add-deps: {where} is not valid TOML: {error}") from None


def _refuse(where: str, why: str) -> ProjectError:
    return ProjectError(
        f"--add-deps: {where} {why}: add the lines to its dependencies yourself",
        hint="init without --add-deps prints the lines to add",
    )
