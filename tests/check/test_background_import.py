"""``check`` imports the app in a subprocess while the file rules run: a rule that reads
the app (or requires it) runs once the import is done, whichever pass started it, and
the findings are those of one rule after the other. The app logs when its import
starts and ends (outside the project), and the rules log when they run, so the tests see
the overlap rather than trust the runner's word.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_files import write

from flaskprod.check.context import AppPending, Context
from flaskprod.check.model import REGISTRY, Finding, Level, Rule
from flaskprod.check.runner import CheckOptions, load_rules, run_checks

APP = """\
import time
from flask import Flask

with open({log!r}, "a") as log:
    log.write(f"import-start {{time.time()}}\\n")
time.sleep(1.0)
app = Flask(__name__)
app.config["SECRET_KEY"] = "x" * 40
app.config["GREETING"] = "hello"
with open({log!r}, "a") as log:
    log.write(f"import-end {{time.time()}}\\n")
"""


def project(root: Path, log: Path) -> Path:
    return write(
        root,
        {
            "app.py": APP.format(log=str(log)),
            "deploy/app.service": "[Service]\nUser=app\nEnvironment=FLASKPROD_ENV=production\n"
            "ExecStart=/srv/app/.venv/bin/gunicorn -b unix:/run/app/app.sock app:app\n",
        },
    )


def times(log: Path, event: str) -> list[float]:
    return [
        float(line.split()[1]) for line in log.read_text().splitlines() if line.startswith(event)
    ]


@pytest.fixture
def rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Three rules: one of the files alone, one that reads the app without requiring it,
    one that requires it; each logs when it runs and what it saw."""
    load_rules()
    log = tmp_path / "rules.log"

    def files_only(ctx: Context) -> Iterator[Finding]:
        with log.open("a") as out:
            out.write(f"files {time.time()}\n")
        yield Finding("ZZZ001", Level.INFO, "project", "files judged", "none")

    def reads_app(ctx: Context) -> Iterator[Finding]:
        yield Finding("ZZZ002", Level.INFO, "project", "before the app", "none")  # once
        greeting = ctx.app_config["GREETING"] if ctx.app_config else None
        with log.open("a") as out:
            out.write(f"reads {time.time()} {greeting}\n")
        yield Finding("ZZZ002", Level.INFO, "project", f"greeting {greeting}", "none")

    def requires_app(ctx: Context) -> Iterator[Finding]:
        assert ctx.app is not None
        yield Finding("ZZZ003", Level.INFO, "app", f"routes {len(ctx.app.routes)}", "none")

    for rule in (
        Rule("ZZZ001", "project", Level.INFO, "files", "none", files_only),
        Rule("ZZZ002", "project", Level.INFO, "reads the app", "none", reads_app),
        Rule("ZZZ003", "app", Level.INFO, "needs the app", "none", requires_app, {"app"}),
    ):
        monkeypatch.setitem(REGISTRY._rules, rule.id, rule)
    return log


def test_file_rules_run_while_the_app_is_imported(tmp_path: Path, rules: Path) -> None:
    imports = tmp_path / "imports.log"
    root = project(tmp_path / "proj", imports)
    result = run_checks(CheckOptions(root=root, select=("ZZZ",)))
    assert result.context.app is not None, result.context.app_error
    (end,) = times(imports, "import-end")
    (files,) = times(rules, "files")
    assert files < end, "the file rule waited for the app's import"
    # the rule that reads the app ran (to the end) once, after the import
    reads = [line.split() for line in rules.read_text().splitlines() if line.startswith("reads")]
    assert len(reads) == 1, (rules.read_text(), [(f.id, f.message) for f in result.findings])
    assert float(reads[0][1]) > end and reads[0][2] == "hello"
    messages = [(f.id, f.message) for f in result.findings]
    assert messages == [
        ("ZZZ003", "routes 1"),  # the app layer first, as always
        ("ZZZ001", "files judged"),
        ("ZZZ002", "before the app"),
        ("ZZZ002", "greeting hello"),
    ]
    assert result.rules_run == ["ZZZ003", "ZZZ001", "ZZZ002"]  # the registry's order


def test_the_same_findings_as_one_rule_after_the_other(tmp_path: Path, rules: Path) -> None:
    """The kept import (second run) is applied before any rule runs: no pass ahead of it,
    and the same findings."""
    root = project(tmp_path / "proj", tmp_path / "imports.log")
    first = run_checks(CheckOptions(root=root, select=("ZZZ",)))
    second = run_checks(CheckOptions(root=root, select=("ZZZ",)))
    assert len(times(tmp_path / "imports.log", "import-end")) == 1
    assert second.context.app_pending is None
    assert [(f.id, f.message) for f in second.findings] == [
        (f.id, f.message) for f in first.findings
    ]


def test_reading_a_pending_field_waits_and_ahead_of_it_raises() -> None:
    ctx = Context(root=Path("."))
    assert ctx.app is None and ctx.app_error is None  # nothing imported: plain defaults
    settled: list[bool] = []

    def settle() -> None:
        settled.append(True)
        ctx.app_error = "exited"

    ctx.import_in_background(settle)
    ctx.defer_app = True
    with pytest.raises(AppPending):
        _ = ctx.app_error
    assert not settled
    ctx.defer_app = False
    assert ctx.app_error == "exited" and ctx.app is None
    assert ctx.app_routes is None and ctx.app_config is None
    assert settled == [True] and ctx.app_pending is None
    with pytest.raises(AttributeError):
        _ = ctx.no_such_field


def test_an_error_of_the_import_is_raised_where_it_is_read() -> None:
    ctx = Context(root=Path("."))

    def settle() -> None:
        raise RuntimeError("the probe broke")

    ctx.import_in_background(settle)
    with pytest.raises(RuntimeError, match="the probe broke"):
        ctx.settle_app()
