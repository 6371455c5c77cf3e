"""What a bench writes into a page of docs/: its block between its own markers
(``<!-- bench.NAME:start -->`` ... ``<!-- bench.NAME:end -->``), replaced in place by
the next run while the rest of the page (other benches' blocks too) stays as it is;
and the line of where and when it ran, on a machine shared with other work."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of bench ``name``'s block (``bench.NAME``)."""
    return f"<!-- bench.{name}:start -->", f"<!-- bench.{name}:end -->"


def write_block(
    doc: Path, block: str, start: str, end: str, *, new_page: str | None = None
) -> None:
    """Put ``block`` (which begins with ``start`` and ends with ``end``) into ``doc``: in
    place of the block already there, else at the end. ``new_page``: the text of a page
    that does not exist yet (without it, a missing page is an error)."""
    text = new_page if new_page is not None and not doc.exists() else doc.read_text()
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.write_text(text.rstrip("\n") + "\n")


def ran_on(load_before: float) -> dict[str, str]:
    """The machine, how busy it was (the load average before the run, and now), and when."""
    return {
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
        "load": f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
