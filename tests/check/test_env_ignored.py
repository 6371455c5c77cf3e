"""PRJ003 speaks only about a .env the project has or tells its users to create: a
project with no .env and nothing that reads one has nothing to leak (trials: it fired
on all four projects, none of which had a .env)."""

from __future__ import annotations

from pathlib import Path

import pytest
from check_helpers import git_repo
from project_files import write

from flaskprod.check.model import Finding, Level
from flaskprod.check.runner import CheckOptions, run_checks

APP = """\
    import os
    from flask import Flask
    app = Flask(__name__)
    app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
"""
#: A .gitignore that ignores caches but not .env.
NO_ENV_LINE = "__pycache__/\n*.pyc\n"
UNIT = """\
    [Service]
    WorkingDirectory=/srv/app
    EnvironmentFile=/srv/app/.env
    ExecStart=/srv/app/venv/bin/gunicorn app:app
"""


def prj003(root: Path) -> list[Finding]:
    return run_checks(CheckOptions(root=root, select=("PRJ003",), no_import=True)).findings


@pytest.mark.parametrize("in_git", [False, True], ids=["gitignore-only", "git"])
def test_no_env_file_and_nothing_reading_one_is_no_finding(tmp_path: Path, in_git: bool) -> None:
    write(
        tmp_path, {"app.py": APP, "requirements.txt": "flask==3.1.0\n", ".gitignore": NO_ENV_LINE}
    )
    if in_git:
        git_repo(tmp_path)
    assert prj003(tmp_path) == []


@pytest.mark.parametrize(
    ("files", "path", "why"),
    [
        ({".env.example": "SECRET_KEY=\n"}, ".env", ".env.example is to be copied to it"),
        (
            {
                "deploy/compose.yaml": "services:\n  web:\n    build: ..\n    environment:\n"
                "      SECRET_KEY: ${SECRET_KEY:?set it}\n"
            },
            "deploy/.env",
            "deploy/compose.yaml reads its ${VAR} from it",
        ),
        (
            {"compose.yaml": "services:\n  web:\n    build: .\n    env_file: prod.env\n"},
            "prod.env",
            "compose.yaml reads it as an env_file",
        ),
        (
            {"requirements.txt": "flask==3.1.0\npython-dotenv==1.0.1\n"},
            ".env",
            "python-dotenv loads it",
        ),
        (
            {"settings.py": "from dotenv import load_dotenv\nload_dotenv()\n"},
            ".env",
            "python-dotenv loads it",
        ),
        (
            {"deploy/app.service": UNIT},
            ".env",
            "deploy/app.service reads it from its WorkingDirectory",
        ),
    ],
    ids=[
        "template",
        "compose-interpolation",
        "compose-env-file",
        "dotenv-dep",
        "dotenv-import",
        "systemd",
    ],
)
def test_an_expected_env_file_not_ignored_is_a_warning_naming_why(
    tmp_path: Path, files: dict[str, str], path: str, why: str
) -> None:
    write(tmp_path, {"app.py": APP, ".gitignore": NO_ENV_LINE, **files})
    git_repo(tmp_path)
    findings = prj003(tmp_path)
    assert [(f.level, f.message, f.file) for f in findings] == [
        (Level.WARNING, f"{path} is not ignored by git ({why})", ".gitignore")
    ]
    # the fix the hint gives silences it
    (tmp_path / ".gitignore").write_text(NO_ENV_LINE + ".env\n*.env\n!.env.example\n")
    assert prj003(tmp_path) == []


@pytest.mark.parametrize("in_git", [False, True], ids=["gitignore-only", "git"])
def test_an_env_file_in_the_folder_not_ignored_is_an_error(tmp_path: Path, in_git: bool) -> None:
    write(tmp_path, {"app.py": APP, ".gitignore": NO_ENV_LINE, ".env": "SECRET_KEY=abc\n"})
    if in_git:
        git_repo(tmp_path)
    findings = prj003(tmp_path)
    assert [(f.level, f.message) for f in findings] == [
        (Level.ERROR, ".env is not ignored by git (it is in the folder: 'git add .' commits it)")
    ]


def test_a_committed_env_file_is_left_to_prj001(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": APP, ".gitignore": NO_ENV_LINE, ".env": "SECRET_KEY=abc\n"})
    git_repo(tmp_path, [".env"])
    assert prj003(tmp_path) == []


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"deploy/.env.example": "SECRET_KEY=\n"}, "deploy/.env.example"),
        ({"requirements.txt": "python-dotenv==1.0.1\n"}, "requirements.txt"),
        ({"wsgi.py": "import dotenv\n"}, "wsgi.py"),
        ({".env": "SECRET_KEY=abc\n"}, ".env"),
    ],
    ids=["template", "dotenv-dep", "dotenv-import", "present"],
)
def test_without_a_gitignore_the_finding_points_at_what_expects_the_file(
    tmp_path: Path, files: dict[str, str], where: str
) -> None:
    """Trials: the text report showed 'PRJ003 warning ' and no location at all."""
    write(tmp_path, {"app.py": APP, **files})
    git_repo(tmp_path)
    assert [f.file for f in prj003(tmp_path)] == [where]
