"""Parsers for the deployment files ``check`` reads, one module per format.

Each parser reads a file once per run: results are kept in ``Context.cache`` under a
key naming the parser and the file, so every rule of every layer shares them. Parsers
never raise on bad input; they return what they understood plus the errors, and the
layer's parse-error rule reports those once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flaskprod.check.context import Context

T = TypeVar("T")


def cached(ctx: Context, key: str, build: Callable[[], T]) -> T:
    """``build()`` once per run and key."""
    if key not in ctx.cache:
        ctx.cache[key] = build()
    value: T = ctx.cache[key]
    return value


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with libyaml's C loader when PyYAML has it: the same safe
    constructors, about ten times faster on the kit's manifests and workflows."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader either way
