"""A project file read as text, safely: never too much, never binary."""

from __future__ import annotations

from pathlib import Path

#: Files larger than this are cut: a deployment file is never this big, and a
#: runaway file must not stall the whole check.
MAX_BYTES = 2_000_000


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
