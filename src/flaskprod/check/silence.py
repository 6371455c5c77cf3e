"""Silencing findings by id, always with a reason that stays in the report.

Three places say "ignore": ``[ignore]`` in ``flaskprod.toml``, ``[tool.flaskprod]
ignore = {...}`` in ``pyproject.toml``, and a comment in the offending config file,
``# flaskprod: ignore=NGX004,NGX005 the reason`` — on the offending line, on the line
above it, or (for the whole file) in the comment block at the top. Ids may be prefixes
(``NGX``). A silence without a reason is itself reported (FP001).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from flaskprod.check.context import Context
from flaskprod.check.internal import internal_finding
from flaskprod.check.model import Finding, is_id_prefix

_DIRECTIVE = re.compile(r"[#;]\s*flaskprod:\s*ignore\s*=\s*([A-Za-z0-9_,\s]+?)(?:\s+(.*))?$")
_ID_LIST = re.compile(r"^[A-Z][A-Z0-9]*(,[A-Z][A-Z0-9]*)*$")  # NGX004, NGX, K8S001
NO_REASON = "(no reason given)"


@dataclass(frozen=True)
class Silence:
    ids: tuple[str, ...]
    reason: str
    where: str  # "flaskprod.toml", "pyproject.toml" or "path:line"
    file: str | None = None
    line: int | None = None

    def covers(self, rule_id: str) -> bool:
        return any(rule_id == i or (is_id_prefix(i) and rule_id.startswith(i)) for i in self.ids)


@dataclass(frozen=True)
class _Inline:
    file_level: list[Silence]
    by_line: dict[int, list[Silence]]


def parse_inline(text: str, file: str) -> _Inline:
    """The ignore directives of one file: file-level ones from its leading comment
    block, and line-level ones by the line they apply to."""
    file_level: list[Silence] = []
    by_line: dict[int, list[Silence]] = {}
    in_header = True
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        is_comment = stripped.startswith(("#", ";", "//"))
        if stripped and not is_comment:
            in_header = False
        match = _DIRECTIVE.search(line)
        if not match:
            continue
        ids = tuple(part.strip().upper() for part in match.group(1).split(",") if part.strip())
        if not ids or not _ID_LIST.match(",".join(ids)):
            continue
        silence = Silence(ids, (match.group(2) or "").strip(), f"{file}:{number}", file, number)
        if in_header and is_comment:
            file_level.append(silence)
        else:
            by_line.setdefault(number, []).append(silence)
            if is_comment:  # a comment line silences the line below it
                by_line.setdefault(number + 1, []).append(silence)
    return _Inline(file_level, by_line)


def config_silences(ignore: dict[str, str], where: str) -> list[Silence]:
    return [
        Silence((key.strip().upper(),), str(reason).strip(), where)
        for key, reason in ignore.items()
    ]


def _inline_for(ctx: Context, finding: Finding) -> list[Silence]:
    if finding.file is None:
        return []
    key = f"silence:{finding.file}"
    if key not in ctx.cache:
        path = Path(finding.file)
        path = path if path.is_absolute() else ctx.root / path
        ctx.cache[key] = parse_inline(ctx.read(path), finding.file) if path.is_file() else None
    parsed: _Inline | None = ctx.cache[key]
    if parsed is None:
        return []
    found = list(parsed.file_level)
    if finding.line is not None:
        found += parsed.by_line.get(finding.line, [])
    return found


def apply(ctx: Context, findings: list[Finding], configured: list[Silence]) -> list[Finding]:
    """Mark silenced findings (they stay, with the reason) and add an FP001 finding
    for every silence used without a reason."""
    out: list[Finding] = []
    unexplained: dict[str, Silence] = {}
    for finding in findings:
        candidates = [s for s in _inline_for(ctx, finding) + configured if s.covers(finding.id)]
        if not candidates:
            out.append(finding)
            continue
        reasoned = [s for s in candidates if s.reason]
        chosen = reasoned[0] if reasoned else candidates[0]
        out.append(replace(finding, ignored_reason=chosen.reason or NO_REASON))
        if not chosen.reason:
            unexplained.setdefault(chosen.where, chosen)
    for silence in unexplained.values():
        out.append(
            internal_finding(
                "FP001",
                f"{', '.join(silence.ids)} silenced without a reason ({silence.where})",
                file=silence.file,
                line=silence.line,
            )
        )
    return out
