"""The ci layer beside actionlint (the workflow linter GitHub Actions users run): on
the GHA fixtures and the kit's own workflow, actionlint's script-injection finding and
GHA003 agree, and the kit's workflow gives neither tool anything to say."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "kit"))  # kit_tools

from kit_tools import actionlint

from flaskprod.check.runner import CheckOptions, run_checks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: {hint}", pytrace=False)
    return found


def test_actionlint_and_gha003_agree_on_script_injection() -> None:
    workflows = sorted(FIXTURES.glob("GHA*/*/.github/workflows/*.yml"))
    assert len(workflows) == 10, workflows
    theirs = actionlint(_tool, workflows)
    injected = {
        path for path, found in theirs.items() if any("untrusted" in f["message"] for f in found)
    }
    assert injected == {str(FIXTURES / "GHA003/fail/.github/workflows/ci.yml")}, theirs


def test_the_kits_workflow_passes_both() -> None:
    workflow = SHOP / ".github" / "workflows" / "shop.yml"
    assert actionlint(_tool, [workflow]) == {str(workflow): []}
    result = run_checks(CheckOptions(root=SHOP, select=("GHA",), no_import=True))
    assert result.findings == [], [(f.id, f.line, f.message) for f in result.findings]
