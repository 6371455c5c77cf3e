"""``flaskprod check`` as a user runs it: exit statuses, stdout purity, formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from flaskprod_cli import run_flaskprod
from project_files import write

from flaskprod.check.docs import render_markdown
from flaskprod.check.internal import INTERNAL
from flaskprod.check.model import REGISTRY
from flaskprod.check.runner import load_rules
from flaskprod.cli import cli

REPO = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = Path(__file__).with_name("data") / "sarif-schema-2.1.0-subset.json"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Findings at several levels, one silenced inline, no app import needed."""
    return write(
        tmp_path / "proj",
        {
            "requirements.txt": "flask==2.2.2\nwerkzeug==2.2.2\n"
            "flask-debugtoolbar==0.16.0  # flaskprod: ignore=DEP003 <b>staging</b> image\n",
            "Dockerfile": "FROM python:3.11.11-slim\nCOPY . .\nUSER 1000\n"
            'CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]\n',
            "app.py": "import os\nKEY = os.environ['SECRET_KEY']\n",
        },
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console script: what a user's shell and CI see."""
    return run_flaskprod("check", *args, timeout=60)


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command in-process (fast); stdout and stderr kept apart."""
    result = CliRunner().invoke(cli, ["check", *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def test_json_is_all_stdout_carries(project: Path) -> None:
    done = run(str(project), "--no-import", "--format", "json")
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)  # nothing else on stdout, or this fails
    assert set(document) == {"findings", "summary"}
    summary = document["summary"]
    assert summary["exit_code"] == 1 and summary["fail_level"] == "warning"
    assert summary["counts"]["critical"] >= 1  # werkzeug 2.2.2: the debugger CVE
    assert summary["score"] == max(
        0,
        100
        - sum(
            {"critical": 25, "error": 10, "warning": 4, "info": 0}[f["level"]]
            for f in document["findings"]
            if not f["ignored"]
        ),
    )
    ignored = [f for f in document["findings"] if f["ignored"]]
    assert [(f["id"], f["ignored_reason"]) for f in ignored] == [("DEP003", "<b>staging</b> image")]
    first = document["findings"][0]
    assert first["url"].endswith("#" + first["id"].lower())
    assert "checking" in done.stderr  # progress goes to stderr


def test_exit_2_from_the_console_script(tmp_path: Path) -> None:
    done = run(str(tmp_path / "missing"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("flaskprod: error: ")


def test_fail_level_decides_the_exit_status(project: Path) -> None:
    assert invoke(str(project), "--no-import", "--select", "PRJ005").returncode == 1
    lenient = invoke(str(project), "--no-import", "--select", "PRJ005", "--fail-level", "error")
    assert lenient.returncode == 0, lenient.stdout
    assert "PRJ005" in lenient.stdout  # still reported, just not failing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select", "NOPE9"], "--select: unknown check id 'NOPE9'"),
        (["--fail-level", "fatal"], "Invalid value for '--fail-level'"),
        (["/nonexistent/project"], "/nonexistent/project: no such folder"),
        (["--env-file", "/nonexistent.env"], "--env-file /nonexistent.env: no such file"),
        (["--format", "markdown"], "--format markdown is only for --list"),
    ],
)
def test_the_tool_could_not_run_is_exit_2(project: Path, args: list[str], message: str) -> None:
    if not args[0].startswith("/"):
        args = [str(project), *args]
    done = invoke(*args, "--no-import")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_invalid_spec_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"flaskprod.toml": '[app]\ntarget = "app:app"\nname = "x"\n[server]\nworkers = 0\n'},
    )
    done = invoke(str(tmp_path), "--no-import")
    assert done.returncode == 2
    assert "server.workers" in done.stderr and "Traceback" not in done.stderr


def test_output_file_and_nothing_on_stdout(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.sarif"
    done = invoke(str(project), "--no-import", "--format", "sarif", "--output", str(target))
    assert done.returncode == 1 and done.stdout == ""
    assert json.loads(target.read_text())["version"] == "2.1.0"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # no temp left
    missing = invoke(str(project), "--no-import", "--output", str(tmp_path / "no" / "r.txt"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_sarif_validates_against_the_2_1_0_schema(project: Path) -> None:
    done = invoke(str(project), "--no-import", "--format", "sarif")
    document = json.loads(done.stdout)
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.validate(document, schema, format_checker=jsonschema.FormatChecker())
    run_ = document["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    load_rules()
    assert {r["id"] for r in rules} == {r.id for r in REGISTRY} | set(INTERNAL)
    for result in run_["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] and location["region"]["startLine"] >= 1
    suppressed = [r for r in run_["results"] if "suppressions" in r]
    assert [s["suppressions"][0]["justification"] for s in suppressed] == ["<b>staging</b> image"]
    levels = {r["ruleId"]: r["level"] for r in run_["results"]}
    assert levels["DEP001"] == "error" and levels["PRJ005"] == "warning"
    assert levels["DEP002"] == "note"


def test_sarif_schema_rejects_what_github_would(project: Path) -> None:
    """The vendored schema is not a rubber stamp: a bad level or a missing message fails."""
    schema = json.loads(SARIF_SCHEMA.read_text())
    document = json.loads(invoke(str(project), "--no-import", "--format", "sarif").stdout)
    document["runs"][0]["results"][0]["level"] = "critical"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)
    del document["runs"][0]["results"][0]["message"]
    document["runs"][0]["results"][0]["level"] = "error"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_text_report_is_plain_when_piped(project: Path) -> None:
    done = invoke(str(project), "--no-import")
    assert "\x1b[" not in done.stdout
    assert "[deps]" in done.stdout and "DEP001" in done.stdout
    assert "requirements.txt:2" in done.stdout  # file:line
    assert "ignored: <b>staging</b> image" in done.stdout
    assert "score " in done.stdout and "grade " in done.stdout


def test_list_prints_every_rule() -> None:
    result = CliRunner().invoke(cli, ["check", "--list"])
    assert result.exit_code == 0
    load_rules()
    listed = [line.split()[0] for line in result.output.splitlines()]
    assert listed == [r.id for r in REGISTRY] + list(INTERNAL)
    app001 = next(line for line in result.output.splitlines() if line.startswith("APP001"))
    assert app001.split()[1:3] == ["app", "critical"]


def test_docs_checks_md_is_generated_and_current() -> None:
    """docs/checks.md is the registry rendered; regenerate it with
    .venv/bin/flaskprod check --list --format markdown -o docs/checks.md"""
    committed = (REPO / "docs" / "checks.md").read_text()
    assert committed == render_markdown(), "docs/checks.md is stale: regenerate it"
    load_rules()
    for rule in REGISTRY:
        assert f'<a id="{rule.id.lower()}"></a>' in committed
        assert rule.title in committed


def test_text_report_is_coloured_on_a_terminal(project: Path) -> None:
    from flaskprod.check.model import Level
    from flaskprod.check.report import render
    from flaskprod.check.runner import CheckOptions, run_checks
    from flaskprod.check.summary import summarize

    result = run_checks(CheckOptions(root=project, no_import=True))
    coloured = render(result, summarize(result, Level.WARNING), "text", color=True)
    plain = render(result, summarize(result, Level.WARNING), "text", color=False)
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert "DEP001" in coloured and "[deps]" in coloured


def test_list_as_json() -> None:
    result = CliRunner().invoke(cli, ["check", "--list", "--format", "json"])
    rules = json.loads(result.stdout)["rules"]
    load_rules()
    assert [r["id"] for r in rules] == [r.id for r in REGISTRY]
    assert {"id", "layer", "level", "title", "help"} == set(rules[0])


def test_text_report_says_what_it_did_not_judge(tmp_path: Path) -> None:
    """A src-layout app reading SECRET_KEY at import, checked without production's
    environment: the app rules cannot run. The score alone reads like a clean bill of
    health (grade A), so the report says under it which rules were not run and why;
    with the environment the line goes away."""
    root = write(
        tmp_path / "notes",
        {
            "src/notes/__init__.py": "import os\n\nfrom flask import Flask\n\n\n"
            "def create_app():\n    app = Flask(__name__)\n"
            '    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]\n    return app\n',
            "prod.env": "SECRET_KEY=" + "k" * 40 + "\n",
        },
    )
    done = invoke(str(root), "--fail-level", "critical")
    lines = done.stdout.splitlines()
    assert lines[-2].startswith("score ") and "rules run" in lines[-2]
    needing_app = sorted(r.id for r in REGISTRY if "app" in r.requires and r.layer == "app")
    assert lines[-1] == (
        f"not judged: {len(needing_app)} rules ({needing_app[0]}..{needing_app[-1]}): "
        "the app was not imported"
    ), done.stdout
    judged = invoke(str(root), "--env-file", str(root / "prod.env"), "--fail-level", "critical")
    assert "not judged" not in judged.stdout
