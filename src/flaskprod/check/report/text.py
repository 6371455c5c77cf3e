"""The text report, grouped by layer: plain for pipes and files, coloured on a TTY."""

from __future__ import annotations

import io
from itertools import groupby
from typing import Any

from rich.console import Console
from rich.markup import escape

from flaskprod.check.model import Level
from flaskprod.check.runner import CheckResult

_STYLE = {
    Level.CRITICAL: "bold white on red",
    Level.ERROR: "bold red",
    Level.WARNING: "yellow",
    Level.INFO: "cyan",
}


def _plain(result: CheckResult, summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(style, text) lines; style "" is unstyled."""
    lines: list[tuple[str, str]] = []
    if summary.get("env_source"):
        known = "" if summary.get("env_known") else " (values on the server only: a stand-in)"
        lines.append(("dim", f"environment: {summary['env_source']}{known}"))
    if summary.get("app_target"):
        state = "imported" if summary.get("app_imported") else "not imported"
        lines.append(("dim", f"app: {summary['app_target']} ({state})"))
    for layer, group in groupby(result.findings, key=lambda f: f.layer):
        lines.append(("", ""))
        lines.append(("bold", f"[{layer}]"))
        for finding in group:
            where = ""
            if finding.file:
                where = f" {finding.file}" + (f":{finding.line}" if finding.line else "")
            tag = f"{finding.level!s:8}"
            ignored = " (ignored)" if finding.ignored_reason else ""
            style = "dim" if finding.ignored_reason else _STYLE[finding.level]
            lines.append((style, f"  {finding.id} {tag}{where}{ignored}"))
            lines.append(("", f"      {finding.message}"))
            if finding.ignored_reason:
                lines.append(("dim", f"      ignored: {finding.ignored_reason}"))
            else:
                lines.append(("dim", f"      fix: {finding.hint}"))
                lines.append(("dim", f"      see: {finding.url}"))
    counts = summary["counts"]
    tally = ", ".join(f"{counts[str(level)]} {level}" for level in sorted(Level, reverse=True))
    lines.append(("", ""))
    lines.append(
        (
            "bold",
            f"score {summary['score']}/100, grade {summary['grade']}: {tally}"
            f"{', ' + str(summary['ignored']) + ' ignored' if summary['ignored'] else ''}"
            f" ({summary['rules_run']} rules run)",
        )
    )
    unmet = _unmet(summary.get("rules_skipped") or {})
    if unmet:
        # A good score over a partial check must not read as a clean bill of health.
        lines.append(("bold", f"not judged: {unmet}"))
    observatory = summary.get("observatory")
    if observatory:
        applied = ", ".join(f"{m['name']} {m['points']:+d}" for m in observatory["modifiers"])
        lines.append(
            (
                "bold",
                f"HTTP Observatory score {observatory['score']}, grade {observatory['grade']}"
                f" ({applied or 'no modifiers'})",
            )
        )
    if not [f for f in result.findings if f.ignored_reason is None]:
        lines.append(("green", "No findings."))
    return lines


def render_text(result: CheckResult, summary: dict[str, Any], *, color: bool = False) -> str:
    lines = _plain(result, summary)
    if not color:
        return "\n".join(text for _, text in lines) + "\n"
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, highlight=False, soft_wrap=True)
    for style, text in lines:
        console.print(f"[{style}]{escape(text)}[/]" if style else escape(text))
    return buffer.getvalue()


_WHY = {
    "app": "the app was not imported",
    "spec": "there is no flaskprod.toml",
    "role": "not for this host's roles",
}


def _unmet(skipped: dict[str, str]) -> str:
    """'11 rules (APP001-APP013): the app was not imported ...' per missing precondition."""
    parts = []
    for need in sorted(set(skipped.values())):
        ids = sorted(rule for rule, missing in skipped.items() if missing == need)
        span = ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
        parts.append(
            f"{len(ids)} rule{'s' if len(ids) > 1 else ''} ({span}): {_WHY.get(need, need)}"
        )
    return "; ".join(parts)
