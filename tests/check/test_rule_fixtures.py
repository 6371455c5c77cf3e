"""Every rule of the app, project and deps layers on its failing fixture and its
passing twin; and the meta-test: every registered rule (all layers) has both.

The ``live`` and ``host`` layers judge running servers, so their "fixtures" are servers
the tests start (tests/check/live, tests/check/host): there each test declares the
cases it proves with ``@pytest.mark.covers("LIV001:fail", "LIV001:pass")``, and the
meta-test requires both cases of every live/host rule among those declarations."""

from __future__ import annotations

import ast
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


#: Layers whose cases are running servers, declared by ``covers`` markers.
SERVER_LAYERS = ("live", "host")
SERVER_TESTS = (FIXTURES.parent / "live", FIXTURES.parent / "host")


def declared_cases() -> set[str]:
    """Every "ID:side" named by a ``pytest.mark.covers(...)`` decorator of a test function
    in tests/check/live and tests/check/host (read from the source, not imported)."""
    cases: set[str] = set()
    for folder in SERVER_TESTS:
        for path in sorted(folder.glob("test_*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                    continue
                for decorator in node.decorator_list:
                    if (
                        isinstance(decorator, ast.Call)
                        and ast.unparse(decorator.func) == "pytest.mark.covers"
                    ):
                        cases |= _literal_cases(decorator, tree)
    return cases


def _literal_cases(call: ast.Call, tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.add(arg.value)
        elif isinstance(arg, ast.Starred) and ast.unparse(arg.value) == "ALL_PASS":
            # ALL_PASS: the passing case of every rule of the module's layer
            layer = "live" if "LIVE_IDS" in ast.unparse(tree) else "host"
            found |= {f"{r.id}:pass" for r in REGISTRY if r.layer == layer}
    return found


def test_every_live_and_host_rule_has_a_failing_and_a_passing_test() -> None:
    load_rules()
    declared = declared_cases()
    missing = [
        f"{rule.id}:{side}"
        for rule in REGISTRY
        if rule.layer in SERVER_LAYERS
        for side in ("fail", "pass")
        if f"{rule.id}:{side}" not in declared
    ]
    assert not missing, f"live/host rules without a covering test: {missing}"
    unknown = sorted(c for c in declared if c.split(":")[0] not in REGISTRY)
    assert not unknown, f"covers markers naming no rule: {unknown}"


def test_every_registered_rule_has_a_failing_and_a_passing_fixture() -> None:
    load_rules()
    missing = [
        f"{rule.id}/{side}"
        for rule in REGISTRY
        if rule.layer not in SERVER_LAYERS
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
