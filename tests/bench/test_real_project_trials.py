"""bench.trials end to end on the smallest real project (the Flask tutorial's flaskr):
a fresh copy with its own environment, check, init, render --check, check, up -d with
nginx+TLS, PostgreSQL and the app server, GETs through nginx, down, and the project's
``pip freeze`` unchanged. Any failing step fails the test, with its first error line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.trials import main, run_trial
from bench.trials_doc import HEADING, rewrite
from flaskprod.spec.stackdeps import PINNED

STEPS = [
    "venv",
    "freeze-before",
    "check-before",
    "init",
    "render-check",
    "check-after",
    "up",
    "get-home",
    "csp-home",
    "get-static",
    "get-health",
    "get-ready",
    "down",
    "freeze-after",
]


@pytest.mark.services
def test_flaskr_every_step(tmp_path: Path) -> None:
    out = tmp_path / "trials.json"
    code = main(["--project", "flaskr", "--json", str(out)])
    results = json.loads(out.read_text())
    (trial,) = results["projects"]
    failed = {s["name"]: s["first_error"] for s in trial["steps"] if not s["ok"]}
    assert failed == {}
    assert code == 0 and trial["ok"] is True
    assert [s["name"] for s in trial["steps"]] == STEPS
    steps = {s["name"]: s for s in trial["steps"]}

    assert trial["up_args"] == ["--release", "flask init-db"] and trial["reason"]
    assert trial["added"] == [PINNED["granian"]]  # flaskr lists no app server
    assert trial["spec"]["target"] == "flaskr:create_app()"
    assert trial["spec"]["static_dir"] == "flaskr/static"
    assert steps["init"]["exit_code"] == 0
    assert steps["render-check"]["exit_code"] == 0
    for name in ("check-before", "check-after"):
        findings = steps[name]["data"]["findings"]
        assert findings and "FP000" not in {f["id"] for f in findings}
        assert set(steps[name]["data"]["counts"]) == {"critical", "error", "warning", "info"}
    assert steps["check-after"]["data"]["app_imported"] is True
    assert steps["get-static"]["command"].endswith("/static/style.css")
    for name in ("get-home", "get-static", "get-health", "get-ready"):
        assert steps[name]["data"]["status"] == 200
    assert "flaskprod" not in steps["freeze-before"]["data"]["freeze"].lower()
    assert steps["freeze-after"]["data"]["freeze"] == steps["freeze-before"]["data"]["freeze"]
    assert "/tmp/flaskprod-trial-" not in json.dumps(trial)  # the copy's path is shown as "."

    doc = tmp_path / "trials.md"
    doc.write_text(
        "# trials\n\n## 6. Before\n\nkept\n\n"
        + HEADING
        + "\n\nSTALE-SECTION\n\n## 8. After\n\nkept\n"
    )
    rewrite(doc, results)
    text = doc.read_text()
    assert "STALE-SECTION" not in text and text.count("kept") == 2
    assert "### flaskr — every step passed" in text
    assert "| get-static `GET https://localhost:" in text


def test_a_missing_project_is_one_failed_step(tmp_path: Path) -> None:
    trial = run_trial(str(tmp_path / "nothing-here"))
    assert not trial.ok
    (step,) = trial.steps
    assert step.name == "copy" and "neither a folder nor one of" in (step.first_error or "")


def test_a_project_whose_requirements_do_not_install(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    (project / "broken").mkdir(parents=True)
    (project / "broken" / "__init__.py").write_text(
        "from flask import Flask\napp = Flask(__name__)\n"
    )
    (project / "requirements.txt").write_text("flask\n./no-such-folder\n")
    trial = run_trial(str(project))
    assert [s.name for s in trial.steps] == ["venv"] and not trial.ok
    assert "no-such-folder" in (trial.steps[0].first_error or "")


def test_the_python_a_project_asks_for(tmp_path: Path) -> None:
    """requires-python, or poetry's caret/tilde constraint, against this machine's."""
    from bench.trials_env import find_requirements, python_fits

    (tmp_path / "requirements.txt").write_text("flask\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.poetry.dependencies]\npython = "^3.12,<4"\n')
    asked = find_requirements(tmp_path).requires_python
    assert asked == ">=3.12,<4"
    assert python_fits(">=3.11") is None
    assert python_fits("~=3.10.0") == (
        "requires-python ~=3.10.0; this machine's Python is "
        + ".".join(str(part) for part in sys.version_info[:3])
    )
