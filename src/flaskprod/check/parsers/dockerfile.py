"""Dockerfiles of the project under check, parsed once per run (the parser is
:mod:`flaskprod.launch.dockerfile`, shared with ``init``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.check.parsers import cached
from flaskprod.launch.dockerfile import Dockerfile, parse_dockerfile_text
from flaskprod.launch.text import read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context


def parse_dockerfile(ctx: Context, path: Path) -> Dockerfile:
    def build() -> Dockerfile:
        text, problem = read_text(path)
        if text is None:
            return Dockerfile(path, error=(None, problem or "unreadable"))
        return parse_dockerfile_text(path, text)

    return cached(ctx, f"parsers.dockerfile:{path}", build)


def parse_dockerfiles(ctx: Context) -> list[Dockerfile]:
    return [parse_dockerfile(ctx, path) for path in ctx.of_kind("dockerfile")]
