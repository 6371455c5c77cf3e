"""``check --hosts``: the host reports of several hosts as one report.

Each finding keeps its host (``Finding.host``: JSON's "host", SARIF's logical location)
and its message is prefixed with it, so every format names where it was found. The
exit status is the worst of all: a host that could not be checked (exit 7) over one
with findings at the fail level (1) over none (0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level
from flaskprod.check.runner import CheckResult
from flaskprod.check.summary import summarize
from flaskprod.deploy.remote_check import HostReport
from flaskprod.spec.model import Spec


def _finding(host: str, raw: dict[str, Any]) -> Finding:
    return Finding(
        id=str(raw["id"]),
        level=Level.parse(str(raw["level"])),
        layer=str(raw["layer"]),
        message=f"{host}: {raw['message']}",
        hint=str(raw["hint"]),
        file=raw.get("file"),
        line=raw.get("line"),
        ignored_reason=raw.get("ignored_reason"),
        host=host,
    )


def merge(
    reports: Sequence[HostReport], project: Path, spec: Spec | None, fail_level: Level
) -> tuple[CheckResult, dict[str, Any]]:
    """One result and summary for every host's report, findings grouped by host (in
    the reports' order, each host's in its own report's order)."""
    findings = [_finding(r.host, raw) for r in reports for raw in r.findings]
    checked = [r for r in reports if r.error is None]
    # a rule not run because of the roles of every host checked
    skipped = {
        rule: why
        for rule, why in (checked[0].rules_skipped.items() if checked else [])
        if all(r.rules_skipped.get(rule) == why for r in checked)
    }
    context = Context(root=project, spec=spec)
    result = CheckResult(findings, [], skipped, context, 0.0)
    summary = summarize(result, fail_level)
    summary["rules_run"] = sum(r.rules_run for r in checked)
    summary["exit_code"] = max([summary["exit_code"], *(r.exit_code for r in reports)])
    summary["hosts"] = {
        r.host: {
            "exit_code": r.exit_code,
            "error": r.error,
            "rules_run": r.rules_run,
            "rules_skipped": r.rules_skipped,
        }
        for r in reports
    }
    return result, summary
