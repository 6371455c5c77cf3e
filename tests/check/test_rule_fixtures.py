"""Every rule of the app, project and deps layers on its failing fixture and its
passing twin; and the meta-test: every registered rule (all layers) has both."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from check_helpers import FIXTURES, MemoProbe, check_fixture, own_cases

from flaskprod.check import app_loader
from flaskprod.check.model import REGISTRY, Finding
from flaskprod.check.runner import load_rules

CASES = own_cases()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], list[Finding]]:
    """All fixtures checked once, four at a time: most time is spent in the app-import
    subprocesses, which overlap well."""
    scratch = tmp_path_factory.mktemp("fixtures")
    memo = MemoProbe()
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=4) as pool:
        patch.setattr(app_loader, "probe", memo)
        futures = {case: pool.submit(check_fixture, *case, scratch) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize(("rule_id", "side"), CASES, ids=[f"{r}-{s}" for r, s in CASES])
def test_fixture(results: dict[tuple[str, str], list[Finding]], rule_id: str, side: str) -> None:
    findings = results[(rule_id, side)]
    described = [(f.id, f.level.name, f.message) for f in findings]
    assert not [f for f in findings if f.id.startswith("FP")], described
    if side == "fail":
        assert findings, f"{rule_id}: the failing fixture gives no finding"
        assert {f.id for f in findings} == {rule_id}, described
        assert all(f.ignored_reason is None for f in findings)
    else:
        assert not [f for f in findings if f.id == rule_id], described


def test_every_registered_rule_has_a_failing_and_a_passing_fixture() -> None:
    load_rules()
    missing = [
        f"{rule.id}/{side}"
        for rule in REGISTRY
        for side in ("fail", "pass")
        if not (FIXTURES / rule.id / side).is_dir()
        or not any(p.is_file() for p in (FIXTURES / rule.id / side).rglob("*"))
    ]
    assert not missing, f"rules without fixtures: {missing}"


def test_no_fixture_without_a_rule() -> None:
    load_rules()
    orphans = [p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name not in REGISTRY]
    assert not orphans, f"fixture folders of no rule: {orphans}"


def test_fixtures_folder_is_where_the_helpers_say() -> None:
    assert Path(__file__).resolve().parent / "fixtures" == FIXTURES
