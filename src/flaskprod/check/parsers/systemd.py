"""systemd units of the project under check, parsed once per run (the parser is
:mod:`flaskprod.launch.systemd`, shared with ``init``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.check.parsers import cached
from flaskprod.launch.systemd import Unit, parse_unit_text
from flaskprod.launch.text import read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context


def parse_unit(ctx: Context, path: Path) -> Unit:
    def build() -> Unit:
        text, problem = read_text(path)
        if text is None:
            return Unit(path, error=(None, problem or "unreadable"))
        return parse_unit_text(path, text)

    return cached(ctx, f"parsers.systemd:{path}", build)


def parse_units(ctx: Context) -> list[Unit]:
    return [parse_unit(ctx, path) for path in ctx.of_kind("systemd")]
