"""Python source parsed once: ``init``'s detection and ``check``'s scanners read the same
project files several times over (imports, settings, SQLite, image origins, workers),
and parsing and walking them again was a fifth of a cold ``check`` of the shop.

Keyed by the source text itself, so an edited file is parsed anew. The trees are
shared: callers read them and never change them.
"""

from __future__ import annotations

import ast
import functools

from flaskprod.spec.pyimports import imported_modules

#: Files kept: a project's own sources; a larger project parses the rest again.
_KEPT = 512


@functools.lru_cache(maxsize=_KEPT)
def parse(text: str) -> ast.Module:
    """``ast.parse(text)``, shared (its SyntaxError and ValueError are raised each time)."""
    return ast.parse(text)


@functools.lru_cache(maxsize=_KEPT)
def nodes(text: str) -> tuple[ast.AST, ...]:
    """Every node of ``text``'s tree, in ``ast.walk`` order."""
    return tuple(ast.walk(parse(text)))


@functools.lru_cache(maxsize=_KEPT)
def imports(text: str) -> frozenset[str]:
    """:func:`imported_modules` of every node of ``text`` (a module's imports anywhere)."""
    return frozenset(imported_modules(nodes(text)))
