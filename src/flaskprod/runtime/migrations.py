"""Alembic's head revisions and the database's, read without importing Alembic.

Readiness compares them in every worker. Importing Alembic for that (with Mako and
Pygments behind it) costs a serving worker about 12 MiB of memory it never needs
otherwise, so the common case is read here directly:

- the scripts' heads: every revision in ``<directory>/versions/*.py`` that no other
  script names in its ``down_revision`` -- Alembic's own definition
  (``ScriptDirectory.get_heads()``), for linear, branched and merged histories;
- the database's: the rows of ``alembic_version`` (none when the table is missing).

Anything this reader cannot be sure of returns ``None`` and the caller asks Alembic:
an ``alembic.ini`` that moves or widens the version locations, a script whose
``revision`` / ``down_revision`` is not a plain literal, a legacy script without
``revision``.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path
from typing import Any

#: Alembic's own file rule (alembic.script.base._only_source_rev_file).
_SCRIPT = re.compile(r"(?!\.\#|__init__)(.*\.py)$")
#: alembic.ini options that change where or how scripts are found.
_LAYOUT_OPTIONS = ("version_locations", "recursive_version_locations", "sourceless")

VERSION_TABLE = "alembic_version"


def _revisions_of(down: Any) -> tuple[str, ...] | None:
    """``down_revision`` as a tuple of ids (None, a string, or a tuple/list of them)."""
    if down is None:
        return ()
    if isinstance(down, str):
        return (down,)
    if isinstance(down, (tuple, list)) and all(isinstance(item, str) for item in down):
        return tuple(down)
    return None


def _literals(path: Path) -> dict[str, Any] | None:
    """The module-level ``revision`` and ``down_revision`` of a script, if both are
    literals (None otherwise)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
    # Alembic itself fails on a script without either: let it say so.
    if not isinstance(found.get("revision"), str) or "down_revision" not in found:
        return None
    return found


def _plain_layout(directory: Path) -> bool:
    """True when alembic.ini keeps Alembic's default layout (``<directory>/versions``)."""
    ini = directory / "alembic.ini"
    if not ini.is_file():
        return True
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return False
    if not parser.has_section("alembic"):
        return True
    return not any(parser.has_option("alembic", option) for option in _LAYOUT_OPTIONS)


def script_heads(directory: str | Path) -> frozenset[str] | None:
    """The head revisions of the migration scripts in ``directory``, or None when
    only Alembic can tell (see the module's docstring)."""
    directory = Path(directory)
    if not _plain_layout(directory):
        return None
    versions = directory / "versions"
    revisions: set[str] = set()
    referenced: set[str] = set()
    if versions.is_dir():
        for path in sorted(versions.iterdir()):
            if not path.is_file() or not _SCRIPT.match(path.name):
                continue
            found = _literals(path)
            if found is None:
                return None
            down = _revisions_of(found.get("down_revision"))
            if down is None:
                return None
            revisions.add(found["revision"])
            referenced.update(down)
    return frozenset(revisions - referenced)


def database_heads(connection: Any) -> frozenset[str]:
    """The revisions in the database's ``alembic_version`` (empty if it has none)."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table(VERSION_TABLE):
        return frozenset()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608 - a constant
    return frozenset(row[0] for row in rows)
