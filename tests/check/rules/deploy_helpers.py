"""Helpers for the deployment-file rule tests (nginx, gunicorn, systemd, docker,
compose): write a small project, check it the way ``flaskprod check`` does (without
importing the app unless asked), and look at the findings."""

from __future__ import annotations

import shutil
from pathlib import Path

from project_files import write as write  # re-exported for the rule tests

from flaskprod.check.context import Context
from flaskprod.check.model import Finding
from flaskprod.check.runner import CheckOptions, build_context, run_checks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: The rule-id prefixes of the deployment-file layers.
PREFIXES = ("NGX", "GUN", "GRN", "SYS", "DOC", "CMP")


def context(root: Path) -> Context:
    return build_context(CheckOptions(root=root, no_import=True))


def check(root: Path, *, no_import: bool = True) -> list[Finding]:
    """Every finding of the deployment layers (and rule crashes, FP000)."""
    result = run_checks(CheckOptions(root=root, no_import=no_import))
    return [f for f in result.findings if f.id.startswith((*PREFIXES, "FP000"))]


def ids(findings: list[Finding]) -> set[str]:
    return {f.id for f in findings}


#: File modes git cannot keep (it stores only the executable bit): set on the copy.
FIXTURE_MODES = {"SYS006/fail/deploy/production.env": 0o644}


def fixture_copy(rule_id: str, side: str, scratch: Path) -> Path:
    """A copy of a fixture folder with the file modes it is about."""
    target = scratch / rule_id / side
    shutil.copytree(FIXTURES / rule_id / side, target)
    for relative, mode in FIXTURE_MODES.items():
        if relative.startswith(f"{rule_id}/{side}/"):
            (scratch / relative).chmod(mode)
    return target


def fixture_cases(prefix: str) -> list[tuple[str, str]]:
    return [
        (folder.name, side)
        for folder in sorted(FIXTURES.glob(f"{prefix}*"))
        for side in ("fail", "pass")
    ]


def assert_fixture(rule_id: str, side: str, scratch: Path) -> None:
    """A fixture folder's verdict: the fail side carries the rule's finding (with
    file and line), the pass side does not, and no rule crashes on either."""
    found = check(fixture_copy(rule_id, side, scratch))
    assert "FP000" not in ids(found), found
    if side == "fail":
        assert rule_id in ids(found), found
        assert all(f.file and f.line for f in found if f.id == rule_id)
    else:
        assert rule_id not in ids(found), [f for f in found if f.id == rule_id]
