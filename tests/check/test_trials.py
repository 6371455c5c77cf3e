"""flaskprod check tried as a new user would, on three differently shaped projects
(tests/check/data/trials/; results written up in docs/check-trials.md): it never
crashes, and it finds their real problems — and not the non-problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flaskprod.check.runner import CheckOptions, run_checks

TRIALS = Path(__file__).with_name("data") / "trials"

EXPECTED = {
    # one module, hand-written nginx site, Procfile: a placeholder key, a form without
    # CSRF, no ProxyFix behind nginx, $http_host, plain HTTP, unpinned requirements
    "single": (
        {"APP002", "APP004", "APP010", "NGX005", "NGX009", "NGX010", "PRJ004"},
        # debug=True and host 0.0.0.0 only under __main__ while production runs gunicorn
        {"APP001", "APP008", "APP009"},
    ),
    # compose: debug through the compose environment, a committed literal key, the
    # database published on the host, old flask/gunicorn with advisories
    "compose": (
        {"APP001", "PRJ002", "PRJ005", "CMP002", "DEP001", "DOC002"},
        # a JSON API never sets the session cookie; no proxy found, so no ProxyFix claim
        {"APP003", "APP010", "APP000"},
    ),
    # systemd only: the EnvironmentFile lacks SECRET_KEY, so the app will not start;
    # one root cause, one finding: no app rule piles on
    "systemd": (
        {"APP000", "SYS002", "GUN003"},
        {"APP002", "APP003", "APP007", "APP011", "APP013"},
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trial_project(name: str, tmp_path: Path) -> None:
    root = tmp_path / name
    shutil.copytree(TRIALS / name, root)
    result = run_checks(CheckOptions(root=root))
    found = {f.id for f in result.findings}
    assert not {i for i in found if i.startswith("FP")}, result.findings
    wanted, unwanted = EXPECTED[name]
    assert wanted <= found, sorted(wanted - found)
    assert not unwanted & found, sorted(unwanted & found)
    if name == "systemd":
        start = next(f for f in result.findings if f.id == "APP000")
        assert start.message == (
            "the app will not start under deploy/myapp.service (EnvironmentFile .env): "
            "KeyError: 'SECRET_KEY'"
        )
