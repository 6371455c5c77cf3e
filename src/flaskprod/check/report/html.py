"""The HTML report: one self-contained page (inline CSS, no scripts, no external
requests) with the score, the grade and the findings grouped by layer."""

from __future__ import annotations

from html import escape
from itertools import groupby
from typing import Any

from flaskprod.check.model import Finding, Level
from flaskprod.check.runner import CheckResult

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1d2330;background:#f4f6f9}
header{display:flex;gap:28px;align-items:center;padding:28px 40px;background:#fff;
 border-bottom:1px solid #dde2ea}
.grade{width:96px;height:96px;border-radius:50%;display:flex;flex-direction:column;
 align-items:center;justify-content:center;color:#fff;font-weight:700}
.grade b{font-size:40px;line-height:1}.grade span{font-size:13px;opacity:.9}
.g-A{background:#1f8a4c}.g-B{background:#5c9a1f}.g-C{background:#c18a00}
.g-D{background:#d0621b}.g-F{background:#c0312b}
h1{margin:0 0 4px;font-size:22px}.meta{color:#5b6475;font-size:13px}
.counts{display:flex;gap:10px;margin-top:10px;flex-wrap:wrap}
.pill{padding:2px 10px;border-radius:12px;font-size:13px;font-weight:600}
main{max-width:1040px;margin:0 auto;padding:24px 40px 60px}
h2{font-size:17px;text-transform:uppercase;letter-spacing:.06em;color:#3b4456;
 border-bottom:2px solid #dde2ea;padding-bottom:4px;margin-top:32px}
.f{background:#fff;border:1px solid #dde2ea;border-left:6px solid #999;border-radius:6px;
 padding:12px 16px;margin:12px 0}
.f .top{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.f .id{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:700}
.f .loc{font-family:ui-monospace,Menlo,Consolas,monospace;color:#5b6475;font-size:13px}
.f .msg{margin:6px 0 4px;font-size:15px}.f .hint{color:#3b4456;font-size:14px}
.f .ign{color:#5b6475;font-style:italic;font-size:14px}
.f.ignored{opacity:.6}
.l-critical{border-left-color:#8e1b16}.l-error{border-left-color:#d13b32}
.l-warning{border-left-color:#d99a00}.l-info{border-left-color:#2a7fc1}
.p-critical{background:#8e1b16;color:#fff}.p-error{background:#d13b32;color:#fff}
.p-warning{background:#f5c84c;color:#3a2a00}.p-info{background:#d4e8f7;color:#114a75}
.pill.muted{background:#e3e7ee;color:#3b4456}
.none{background:#e7f6ec;border:1px solid #b9e2c6;padding:16px;border-radius:6px}
a{color:#1f5fb0}
.obs{margin-top:10px;font-size:13px;color:#3b4456}.obs ul{margin:4px 0 0;padding-left:18px}
"""


def _finding(finding: Finding) -> str:
    level = str(finding.level)
    location = ""
    if finding.file:
        line = f":{finding.line}" if finding.line else ""
        location = f'<span class="loc">{escape(finding.file)}{line}</span>'
    ignored = " ignored" if finding.ignored_reason else ""
    if finding.ignored_reason:
        tail = f'<div class="ign">Ignored: {escape(finding.ignored_reason)}</div>'
    else:
        tail = f'<div class="hint"><b>Fix:</b> {escape(finding.hint)}</div>'
    return (
        f'<div class="f l-{level}{ignored}" id="{escape(finding.id.lower())}">'
        f'<div class="top"><a class="id" href="{escape(finding.url)}">{escape(finding.id)}</a>'
        f'<span class="pill p-{level}">{level}</span>{location}</div>'
        f'<div class="msg">{escape(finding.message)}</div>{tail}</div>'
    )


def _observatory(summary: dict[str, Any]) -> str:
    """The live layer's HTTP Observatory score and its modifiers, when --url ran."""
    found = summary.get("observatory")
    if not found:
        return ""
    items = "".join(
        f"<li><code>{escape(m['name'])}</code> {m['points']:+d}: {escape(m['meaning'])}</li>"
        for m in found["modifiers"]
    )
    return (
        f'<div class="obs"><b>HTTP Observatory: {escape(found["grade"])} '
        f"({found['score']})</b><ul>{items}</ul></div>"
    )


def render_html(result: CheckResult, summary: dict[str, Any]) -> str:
    counts = summary["counts"]
    pills = "".join(
        f'<span class="pill p-{level}">{counts[str(level)]} {level}</span>'
        for level in sorted(Level, reverse=True)
    )
    sections = []
    for layer, group in groupby(result.findings, key=lambda f: f.layer):
        items = "".join(_finding(f) for f in group)
        sections.append(f"<section><h2>{escape(layer)}</h2>{items}</section>")
    if not [f for f in result.findings if f.ignored_reason is None]:
        sections.insert(0, '<p class="none">No findings: nothing to fix before production.</p>')
    env = summary.get("env_source") or "unknown"
    app = str(summary.get("app_target") or "not found")
    if summary.get("app_target") and not summary.get("app_imported"):
        app += " (not imported)"
    ignored = (
        f'<span class="pill muted">{summary["ignored"]} ignored</span>'
        if summary["ignored"]
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>flaskprod check: {escape(summary["grade"])} ({summary["score"]}/100)</title>
<style>{_CSS}</style></head>
<body><header>
<div class="grade g-{escape(summary["grade"])}"><b>{escape(summary["grade"])}</b>
<span>{summary["score"]}/100</span></div>
<div><h1>flaskprod check</h1>
<div class="meta">{escape(str(summary["project"]))} &middot; {summary["rules_run"]} rules run
&middot; app: {escape(app)}
&middot; environment: {escape(str(env))}</div>
<div class="counts">{pills}{ignored}</div>{_observatory(summary)}
</div></header>
<main>{"".join(sections)}</main></body></html>
"""
