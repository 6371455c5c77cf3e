"""Parsers for the deployment files ``check`` reads, one module per format.

Each parser reads a file once per run: results are kept in ``Context.cache`` under a
key naming the parser and the file, so every rule of every layer shares them. Parsers
never raise on bad input; they return what they understood plus the errors, and the
layer's parse-error rule reports those once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from flaskprod.check.context import Context

T = TypeVar("T")

#: Files larger than this are cut: a deployment file is never this big, and a
#: runaway file must not stall the whole check.
MAX_BYTES = 2_000_000


def cached(ctx: Context, key: str, build: Callable[[], T]) -> T:
    """``build()`` once per run and key."""
    if key not in ctx.cache:
        ctx.cache[key] = build()
    value: T = ctx.cache[key]
    return value


def read_text(path: Path) -> tuple[str | None, str | None]:
    """(text, None) or (None, why-not). Binary files and bad encodings are errors."""
    try:
        data = path.read_bytes()[:MAX_BYTES]
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}"
    if b"\x00" in data:
        return None, "binary file, not a text config"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 text (byte {error.start})"
