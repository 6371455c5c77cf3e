"""supervisord program configs of the project under check, parsed once per run (the
parser is :mod:`flaskprod.launch.supervisor`, shared with ``init``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flaskprod.check.parsers import cached
from flaskprod.launch.supervisor import Program, parse_programs
from flaskprod.launch.text import read_text

if TYPE_CHECKING:
    from flaskprod.check.context import Context


def supervisor_programs(ctx: Context) -> list[Program]:
    """Every supervisor program of the project, parsed once per run."""

    def build() -> list[Program]:
        found: list[Program] = []
        for path in ctx.of_kind("supervisor"):
            text, _ = read_text(path)
            found += parse_programs(text or "", path)
        return found

    return cached(ctx, "parsers.supervisor.programs", build)
