"""The runner: crash isolation, preconditions, silencing, selection, scoring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from project_files import write

from flaskprod.check.context import Context
from flaskprod.check.internal import INTERNAL
from flaskprod.check.model import REGISTRY, Finding, Level, Rule
from flaskprod.check.runner import CheckOptions, load_rules, parse_ids, run_checks
from flaskprod.check.summary import exit_code, grade, score
from flaskprod.errors import UserError

LOOSE = {"requirements.txt": "flask>=2\nflask-debugtoolbar==0.16.0\n", "app.py": "x = 1\n"}


def ids(findings: list[Finding], *, active: bool = True) -> list[str]:
    return [f.id for f in findings if not active or f.ignored_reason is None]


def test_a_crashing_rule_is_reported_and_hides_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_rules()

    def boom(ctx: Context) -> Iterator[Finding]:
        raise RuntimeError("kaboom")
        yield  # pragma: no cover

    crashing = Rule("ZZZ001", "deps", Level.INFO, "crashes", "none", boom)
    monkeypatch.setitem(REGISTRY._rules, "ZZZ001", crashing)
    write(tmp_path, LOOSE)
    result = run_checks(CheckOptions(root=tmp_path, no_import=True))
    crash = [f for f in result.findings if f.id == "FP000"]
    assert len(crash) == 1
    assert crash[0].layer == "deps" and crash[0].level is Level.ERROR
    assert "ZZZ001 crashed: RuntimeError: kaboom" in crash[0].message
    assert {"PRJ004", "DEP003"} <= set(ids(result.findings))  # the others still ran


def test_app_rules_wait_for_the_app_one_root_cause_one_finding(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": "import os\nfrom flask import Flask\napp = Flask(__name__)\n"
            "app.config['SECRET_KEY'] = os.environ['SECRET_KEY']\n",
            "deploy/app.service": "[Service]\nWorkingDirectory=/srv/a\n"
            "EnvironmentFile=/srv/a/prod.env\nExecStart=/srv/a/bin/gunicorn app:app\n",
            "prod.env": "DEBUG=0\n",
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, select=("APP",)))
    assert ids(result.findings) == ["APP000"]
    finding = result.findings[0]
    assert finding.level is Level.ERROR
    assert "will not start under deploy/app.service (EnvironmentFile prod.env)" in finding.message
    assert "KeyError: 'SECRET_KEY'" in finding.message
    assert result.rules_skipped and set(result.rules_skipped.values()) == {"app"}


def test_no_import_skips_the_app_without_complaining(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "raise SystemExit(3)\n"})
    result = run_checks(CheckOptions(root=tmp_path, no_import=True, select=("APP",)))
    assert ids(result.findings) == []
    assert result.context.app is None


def test_inline_silences_line_above_same_line_and_file_level(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "# flaskprod: ignore=PRJ004 pinned by the constraints file in CI\n"
            "flask>=2\n"
            "flask-debugtoolbar==0.16.0  # flaskprod: ignore=DEP003 staging only image\n",
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, no_import=True, select=("PRJ004", "DEP003")))
    reasons = {f.id: f.ignored_reason for f in result.findings}
    assert reasons == {
        "PRJ004": "pinned by the constraints file in CI",
        "DEP003": "staging only image",
    }
    assert exit_code(result.findings, Level.INFO) == 0


def test_line_level_silence_only_covers_its_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "flask==3.1.3\n"
            "# flaskprod: ignore=DEP003 the toolbar is disabled by config\n"
            "flask-debugtoolbar==0.16.0\n"
            "debugpy==1.8.0\n",
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, no_import=True, select=("DEP003",)))
    by_line = {f.line: f.ignored_reason for f in result.findings}
    assert by_line == {3: "the toolbar is disabled by config", 4: None}


def test_a_silence_without_reason_is_itself_a_finding(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "flask>=2  # flaskprod: ignore=PRJ004\n"})
    result = run_checks(CheckOptions(root=tmp_path, no_import=True, select=("PRJ004",)))
    silenced = [f for f in result.findings if f.id == "PRJ004"]
    assert silenced[0].ignored_reason == "(no reason given)"
    fp = [f for f in result.findings if f.id == "FP001"]
    assert len(fp) == 1 and fp[0].file == "requirements.txt" and fp[0].line == 1
    # the report's hint is the one --list and docs/checks.md show (it was a second text)
    assert fp[0].hint == INTERNAL["FP001"].help and "[ignore]" in fp[0].hint
    assert exit_code(result.findings, Level.WARNING) == 1


def test_spec_and_pyproject_ignores_keep_their_reason(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = ["flask>=2"]\n'
            '[tool.flaskprod]\nignore = {PRJ004 = "a library, the app pins", DEP = "audited in CI",'
            ' XYZ999 = "typo"}\n',
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, no_import=True))
    reasons = {f.id: f.ignored_reason for f in result.findings if f.ignored_reason}
    assert reasons["PRJ004"] == "a library, the app pins"
    assert reasons["DEP002"] == "audited in CI"  # a prefix silences the layer
    unknown = [f for f in result.findings if f.id == "FP002"]
    assert len(unknown) == 1 and "XYZ999" in unknown[0].message


def test_spec_ignore_table(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "flaskprod.toml": '[app]\ntarget = "app:app"\nname = "x"\n'
            '[ignore]\nPRJ006 = "documented in the wiki"\n',
            "app.py": "import os\nSECRET = os.environ['X']\n",
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, no_import=True, select=("PRJ006",)))
    assert [(f.id, f.ignored_reason) for f in result.findings] == [
        ("PRJ006", "documented in the wiki")
    ]


def test_prj006_points_at_the_file_that_reads_the_environment(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": "from pkg import settings\n",
            "pkg/__init__.py": "",
            "pkg/settings.py": "import os\nSECRET = os.environ['X']\n",
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, no_import=True, select=("PRJ006",)))
    assert [(f.id, f.file) for f in result.findings] == [("PRJ006", "pkg/settings.py")]


def test_select_and_ignore_by_prefix(tmp_path: Path) -> None:
    write(tmp_path, LOOSE)
    only_deps = run_checks(CheckOptions(root=tmp_path, no_import=True, select=("DEP",)))
    assert ids(only_deps.findings) and all(i.startswith("DEP") for i in ids(only_deps.findings))
    no_deps = run_checks(CheckOptions(root=tmp_path, no_import=True, ignore=("DEP", "PRJ006")))
    assert not [i for i in ids(no_deps.findings) if i.startswith("DEP") or i == "PRJ006"]


def test_unknown_ids_are_a_usage_error() -> None:
    with pytest.raises(UserError, match="unknown check id 'NOPE1'"):
        parse_ids(["APP001,NOPE1"], "--select")
    assert parse_ids(["app001, ngx"], "--ignore") == ("APP001", "NGX")


def test_score_and_grade() -> None:
    def f(level: Level, ignored: str | None = None) -> Finding:
        return Finding("X", level, "app", "m", "h", ignored_reason=ignored)

    assert (score([]), grade([])) == (100, "A")
    findings = [f(Level.CRITICAL), f(Level.ERROR), f(Level.WARNING), f(Level.INFO)]
    assert score(findings) == 100 - 25 - 10 - 4
    assert grade(findings) == "D"
    assert score([f(Level.CRITICAL, "why")]) == 100  # silenced findings do not count
    assert score([f(Level.CRITICAL)] * 5) == 0 and grade([f(Level.CRITICAL)] * 5) == "F"
    assert exit_code([f(Level.INFO)], Level.WARNING) == 0
    assert exit_code([f(Level.WARNING)], Level.WARNING) == 1
    assert exit_code([f(Level.ERROR)], Level.CRITICAL) == 0


ODD = {
    "empty": {},
    "broken": {
        "compose.yaml": "services:\n  web: [unclosed\n",
        "pyproject.toml": "[project\nname=",
        "nginx.conf": "server { location / { proxy_pass http://x; \n",
        "x.service": "[Service\nExecStart=\n",
        "Dockerfile": "FROM\nCMD [\n",
        "requirements.txt": "flask==\n-e .\n--hash=sha256:abc\ngit+https://x/y\nfoo @ https://x\n",
        "app.py": "def broken(:\n",
        "wsgi.py": "from app import app\n",
    },
    "weird": {
        "compose.yml": "version: 3\n",
        "docker-compose.yml": "services: null\n",
        "requirements.txt": "# flaskprod: ignore=\n# flaskprod: ignore=,,, \n",
        ".env": "",
        "gunicorn.conf.py": "",
        "sites-available/empty": "",
    },
}


@pytest.mark.parametrize("shape", sorted(ODD))
def test_odd_projects_never_crash(shape: str, tmp_path: Path) -> None:
    write(tmp_path, ODD[shape])
    (tmp_path / "binary.conf").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "requirements-bin.txt").write_bytes(b"\x00\xff" * 500)
    result = run_checks(CheckOptions(root=tmp_path))
    assert not [f for f in result.findings if f.id.startswith("FP")], result.findings
    assert "PRJ004" not in ids(result.findings) or shape == "empty"


def test_one_dependency_is_counted_in_the_singular(tmp_path: Path) -> None:
    """The tutorial's requirements.txt ('flask'): '1 production dependency is not
    pinned', not '1 production dependencies are'."""

    (tmp_path / "requirements.txt").write_text("flask\n")
    options = CheckOptions(root=tmp_path, select=("PRJ004", "DEP002"), no_import=True)
    messages = {f.id: f.message for f in run_checks(options).findings}
    assert messages["PRJ004"] == (
        "1 production dependency is not pinned and there is no lock: flask"
    )
    assert messages["DEP002"].startswith("vulnerabilities unknown for 1 production dependency (")
    (tmp_path / "requirements.txt").write_text("flask\nredis\n")
    messages = {f.id: f.message for f in run_checks(options).findings}
    assert messages["PRJ004"].startswith("2 production dependencies are not pinned")
