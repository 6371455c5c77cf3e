"""``flaskprod check`` on input it cannot use: the whole output is the one error line
(file, key, what to do) and the exit status says why; no "checking ..." progress line
before it (trials §5: the spec error came second, after the progress line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flaskprod_cli import run_flaskprod
from project_files import write

from flaskprod.errors import ExitCode

APP = "from flask import Flask\napp = Flask(__name__)\n"
SPEC = '[app]\nname = "tut"\ntarget = "app:app"\n'


@pytest.mark.parametrize(
    ("files", "args", "line"),
    [
        (
            {"flaskprod.toml": SPEC + "[server]\nthraeds = 4\n"},
            (),
            "flaskprod: error: flaskprod.toml: server.thraeds: unknown key "
            "(did you mean 'threads'?)",
        ),
        (
            {"flaskprod.toml": SPEC + "[server\n"},
            (),
            "flaskprod: error: flaskprod.toml:4: invalid TOML: ",
        ),
        (
            {"pyproject.toml": "[tool.flaskprod]\nignore = ['NGX004']\n"},
            ("--no-import",),
            "flaskprod: error: pyproject.toml: tool.flaskprod.ignore: must be a table "
            "(got ['NGX004']) (ignore = {NGX004 = \"TLS ends at the load balancer\"}: "
            "each id with its reason)",
        ),
        ({}, ("--env-file", "/nonexistent/prod.env"), "flaskprod: error: --env-file "),
    ],
    ids=["unknown-key", "invalid-toml", "pyproject-ignore", "env-file"],
)
def test_bad_input_is_one_line_and_nothing_else(
    tmp_path: Path, files: dict[str, str], args: tuple[str, ...], line: str
) -> None:
    root = write(tmp_path / "tut", {"app.py": APP, **files})
    done = run_flaskprod("check", str(root), *args, timeout=60)
    assert done.returncode == ExitCode.USAGE, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), done.stderr


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    done = run_flaskprod("check", str(tmp_path / "nope"), timeout=60)
    assert (done.returncode, done.stdout) == (ExitCode.USAGE, "")
    assert done.stderr == f"flaskprod: error: {tmp_path / 'nope'}: no such folder\n"


def test_a_good_project_still_shows_progress_on_stderr(tmp_path: Path) -> None:
    root = write(tmp_path / "tut", {"app.py": APP, "flaskprod.toml": SPEC})
    done = run_flaskprod("check", str(root), "--no-import", "--format", "json", timeout=60)
    assert done.stderr.splitlines()[0] == f"flaskprod: checking {root}", done.stderr
    assert done.stdout.startswith("{")
