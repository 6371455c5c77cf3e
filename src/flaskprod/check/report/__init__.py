"""Reports of a check run: text (rich on a terminal), JSON, SARIF 2.1.0, HTML.

Every renderer takes the :class:`~flaskprod.check.runner.CheckResult` and its summary
and returns the whole report as one string, so the command can write it atomically to
``--output`` or to stdout (and nothing else goes to stdout).
"""

from __future__ import annotations

from typing import Any

from flaskprod.check.runner import CheckResult

FORMATS = ("text", "json", "sarif", "html")


def render(result: CheckResult, summary: dict[str, Any], fmt: str, *, color: bool = False) -> str:
    if fmt == "json":
        from flaskprod.check.report.json_report import render_json

        return render_json(result, summary)
    if fmt == "sarif":
        from flaskprod.check.report.sarif import render_sarif

        return render_sarif(result, summary)
    if fmt == "html":
        from flaskprod.check.report.html import render_html

        return render_html(result, summary)
    from flaskprod.check.report.text import render_text

    return render_text(result, summary, color=color)
