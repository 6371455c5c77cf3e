"""Which modules Python source imports, read with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from collections.abc import Iterable


def imported_modules(nodes: Iterable[ast.AST]) -> set[str]:
    """Top-level names of the modules ``nodes`` import (``import a.b`` -> ``a``; relative
    imports are the project's own and left out). Pass ``tree.body`` for a module's
    top-level imports, ``ast.walk(tree)`` for all of them."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found
