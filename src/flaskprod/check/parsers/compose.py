"""Compose files of the project under check, parsed once per run (the parser,
keeping each key's line number, is :mod:`flaskprod.launch.compose`, shared with ``init``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.check.parsers import cached
from flaskprod.launch.compose import ComposeFile, parse_compose_text
from flaskprod.launch.compose import development_files as compose_development_files
from flaskprod.launch.text import read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context


def parse_compose(ctx: Context, path: Path) -> ComposeFile:
    def build() -> ComposeFile:
        text, problem = read_text(path)
        if text is None:
            return ComposeFile(path, error=(None, problem or "unreadable"))
        return parse_compose_text(path, text)

    return cached(ctx, f"parsers.compose:{path}", build)


def parse_compose_files(ctx: Context) -> list[ComposeFile]:
    """The compose files production may run: all of them, except the development ones
    beside a production file (see :func:`development_files`)."""
    development = development_files(ctx)
    return [parse_compose(ctx, path) for path in ctx.of_kind("compose") if path not in development]


def development_files(ctx: Context) -> set[Path]:
    """Compose files for development (see :func:`flaskprod.launch.compose.development_files`)."""
    return cached(
        ctx,
        "parsers.compose.development",
        lambda: compose_development_files(ctx.of_kind("compose"), lambda p: parse_compose(ctx, p)),
    )
