"""flaskprod's own checks (FP000-FP002): findings about the check itself and its
silences, not registered rules. Their texts live here once, so that a report, the
SARIF rules, ``--list`` and docs/checks.md say the same thing."""

from __future__ import annotations

from dataclasses import dataclass

from flaskprod.check.model import Finding, Level


@dataclass(frozen=True)
class InternalCheck:
    """A finding the framework itself produces (not a registered rule)."""

    id: str
    level: Level
    title: str
    help: str


INTERNAL = {
    check.id: check
    for check in (
        InternalCheck(
            "FP000",
            Level.ERROR,
            "A rule crashed",
            "A bug in flaskprod (or the rule met a file it cannot read): the other rules' "
            "results stand. Please report it with the file that triggered it.",
        ),
        InternalCheck(
            "FP001",
            Level.WARNING,
            "Silenced without a reason",
            "Say why next to the id, so the next reader can judge it: "
            "'# flaskprod: ignore=NGX004 TLS ends at the load balancer', or "
            'NGX004 = "why" in [ignore]; reasons stay in the report.',
        ),
        InternalCheck(
            "FP002",
            Level.WARNING,
            "Silence of an unknown id",
            "An [ignore] entry names no known check (a typo silences nothing). "
            "'flaskprod check --list' shows the ids.",
        ),
    )
}


def internal_finding(
    check_id: str,
    message: str,
    *,
    layer: str = "project",
    file: str | None = None,
    line: int | None = None,
) -> Finding:
    """A finding of one of flaskprod's own checks, with its level and hint."""
    check = INTERNAL[check_id]
    return Finding(
        id=check.id,
        level=check.level,
        layer=layer,
        message=message,
        hint=check.help,
        file=file,
        line=line,
    )
