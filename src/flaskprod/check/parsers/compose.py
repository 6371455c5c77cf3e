"""Compose files of the project under check, parsed once per run (the parser,
keeping each key's line number, is :mod:`flaskprod.launch.compose`, shared with ``init``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.check.parsers import cached
from flaskprod.launch.compose import ComposeFile, parse_compose_text
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


_PRODUCTION_WORDS = frozenset({"prod", "production"})


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z]+", name.lower()))


def _standalone(compose: ComposeFile) -> bool:
    """Every service says what it runs (image or build): a whole deployment, not an
    override merged onto a base file."""
    services = compose.services
    return bool(services) and all(
        isinstance(s, dict) and ("image" in s or "build" in s) for s in services.values()
    )


def development_files(ctx: Context) -> set[Path]:
    """Compose files for development: beside a whole production file of the same
    folder (docker-compose.prod.yml), the others not named for production
    (docker-compose.yml running 'flask run', docker-compose.dev.yml). Where the
    production file is an override of the base file, nothing is set aside."""

    def build() -> set[Path]:
        files = ctx.of_kind("compose")
        development: set[Path] = set()
        for folder in {path.parent for path in files}:
            here = [path for path in files if path.parent == folder]
            production = [
                path
                for path in here
                if _words(path.name) & _PRODUCTION_WORDS and _standalone(parse_compose(ctx, path))
            ]
            if production:
                development |= {p for p in here if not _words(p.name) & _PRODUCTION_WORDS}
        return development

    return cached(ctx, "parsers.compose.development", build)
