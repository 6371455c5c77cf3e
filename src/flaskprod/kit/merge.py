"""Files the kit shares with the project: its lines live in a marked block.

A project's own ``.dockerignore`` (CTFd's excludes its secret key file, ``.data`` and
the uploads) is never replaced: every line it has stays where it is, and the lines the
kit needs are kept in one marked block at the end, rewritten on each render. Merging is
idempotent (merging a merged file gives it back byte for byte), so ``render --check``
reports drift only when the block itself is stale or missing.
"""

from __future__ import annotations

BEGIN = "# >>> flaskprod: lines the kit needs (rewritten by 'flaskprod render') >>>"
END = "# <<< flaskprod <<<"

#: Files merged rather than owned, relative to the project root.
MERGED: frozenset[str] = frozenset({".dockerignore"})


def project_lines(text: str) -> list[str]:
    """The project's own lines: everything outside the kit's block."""
    lines = text.splitlines()
    if BEGIN in lines:
        start = lines.index(BEGIN)
        end = lines.index(END, start) if END in lines[start:] else len(lines) - 1
        lines = lines[:start] + lines[end + 1 :]
    while lines and not lines[-1].strip():
        lines.pop()  # the blank line before the block is ours
    return lines


def merge_block(existing: str | None, rendered: str) -> str:
    """``existing`` (or nothing) with the kit's block: the rendered lines the project
    does not already have, after every line of the project's own."""
    own = project_lines(existing or "")
    present = {line.strip() for line in own if line.strip() and not line.startswith("#")}
    kit = [line for line in rendered.splitlines() if line.strip() not in present]
    block = [BEGIN, *kit, END]
    return "\n".join([*own, "", *block] if own else block) + "\n"
