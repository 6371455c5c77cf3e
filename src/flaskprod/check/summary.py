"""The score, grade and exit status of a check run.

Scoring: start at 100 and subtract, for every finding that is not silenced,
25 per critical, 10 per error, 4 per warning, 0 per info; never below 0. Grades:
A >= 90, B >= 80, C >= 70, D >= 60, F below (so one critical finding alone gives a C).
The exit status is 1 when a finding that
is not silenced is at or above the fail level, else 0.
"""

from __future__ import annotations

from typing import Any

from flaskprod import __version__
from flaskprod.check.model import Finding, Level
from flaskprod.check.runner import CheckResult

PENALTY = {Level.CRITICAL: 25, Level.ERROR: 10, Level.WARNING: 4, Level.INFO: 0}
GRADES = ((90, "A"), (80, "B"), (70, "C"), (60, "D"), (0, "F"))


def active(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.ignored_reason is None]


def score(findings: list[Finding]) -> int:
    return max(0, 100 - sum(PENALTY[f.level] for f in active(findings)))


def grade(findings: list[Finding]) -> str:
    points = score(findings)
    return next(letter for floor, letter in GRADES if points >= floor)


def exit_code(findings: list[Finding], fail_level: Level) -> int:
    return 1 if any(f.level >= fail_level for f in active(findings)) else 0


def summarize(result: CheckResult, fail_level: Level) -> dict[str, Any]:
    findings = result.findings
    ctx = result.context
    counts = {str(level): 0 for level in Level}
    for finding in active(findings):
        counts[str(finding.level)] += 1
    return {
        "counts": counts,
        "ignored": len(findings) - len(active(findings)),
        "score": score(findings),
        "grade": grade(findings),
        "fail_level": str(fail_level),
        "exit_code": exit_code(findings, fail_level),
        "rules_run": len(result.rules_run),
        "rules_skipped": result.rules_skipped,
        "project": str(ctx.root),
        "spec": ctx.spec is not None,
        "app_target": ctx.cache.get("app_target"),
        "app_imported": ctx.app is not None,
        "env_source": ctx.env_source,
        "env_known": ctx.env_known,
        "files": {kind: len(paths) for kind, paths in ctx.files.items() if paths},
        "duration_ms": round(result.duration * 1000, 1),
        # The live layer's HTTP Observatory score ({"score", "grade", "modifiers"}),
        # when --url ran (see flaskprod.check.live.observatory).
        "observatory": ctx.cache.get("observatory"),
        "flaskprod": __version__,
    }
