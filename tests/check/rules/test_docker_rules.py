"""Dockerfile rules and the Dockerfile parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import assert_fixture, check, fixture_cases, ids, write

from flaskprod.launch.dockerfile import parse_dockerfile_text


@pytest.mark.parametrize(("rule_id", "side"), fixture_cases("DOC"))
def test_fixture(tmp_path: Path, rule_id: str, side: str) -> None:
    assert_fixture(rule_id, side, tmp_path)


def test_stages_and_final_command(tmp_path: Path) -> None:
    text = (
        "ARG PY=3.11\nFROM --platform=linux/amd64 python:${PY}-slim AS build\nRUN pip wheel .\n"
        "FROM python:3.11-slim\nCOPY --from=build /w /w\n"
        'ENTRYPOINT ["/entry.sh"]\nCMD ["gunicorn", "wsgi:app"]\n'
    )
    dockerfile = parse_dockerfile_text(tmp_path / "Dockerfile", text)
    assert dockerfile.error is None
    assert [s.alias for s in dockerfile.stages] == ["build", None]
    command = dockerfile.command()
    assert command is not None and command.argv() == ["/entry.sh", "gunicorn", "wsgi:app"]


def test_root_is_judged_on_the_final_stage(tmp_path: Path) -> None:
    text = (
        "FROM python:3.11-slim AS build\n"
        "USER app\n"
        "FROM python:3.11-slim\n"
        'CMD ["gunicorn", "a:app"]\n'
    )
    write(tmp_path, {"Dockerfile": text})
    found = [f for f in check(tmp_path) if f.id == "DOC002"]
    assert [f.line for f in found] == [3]


def test_healthcheck_on_a_path_the_spec_does_not_know(tmp_path: Path) -> None:
    text = (
        "FROM python:3.11-slim\nUSER app\n"
        "HEALTHCHECK CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1\n"
        'CMD ["gunicorn", "-b", "0.0.0.0:8000", "wsgi:app"]\n'
    )
    write(
        tmp_path,
        {"Dockerfile": text, "flaskprod.toml": '[app]\ntarget = "wsgi:app"\nname = "app"\n'},
    )
    found = [f for f in check(tmp_path) if f.id == "DOC005"]
    assert len(found) == 1 and "/healthz" in found[0].message
    write(tmp_path, {"Dockerfile": text.replace("/healthz", "/health")})
    assert "DOC005" not in ids(check(tmp_path))


def test_secret_values(tmp_path: Path) -> None:
    text = (
        "FROM python:3.11-slim\nARG GITHUB_TOKEN\nENV API_KEY=${API_KEY}\n"
        "ENV DB_PASSWORD hunter2\nARG SECRET_KEY=s3cr3t-value\n"
    )
    write(tmp_path, {"Dockerfile": text})
    lines = sorted(f.line or 0 for f in check(tmp_path) if f.id == "DOC009")
    assert lines == [4, 5]


def test_python_script_with_app_run(tmp_path: Path) -> None:
    script = (
        "from flask import Flask\n"
        "app = Flask(__name__)\n"
        "if __name__ == '__main__':\n"
        "    app.run(host='0.0.0.0')\n"
    )
    write(
        tmp_path,
        {"Dockerfile": 'FROM python:3.11-slim\nCMD ["python", "app.py"]\n', "app.py": script},
    )
    assert "DOC004" in ids(check(tmp_path))


def test_empty_and_binary_dockerfiles(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": ""})
    (tmp_path / "Dockerfile.prod").write_bytes(b"\x00\x01FROM\xff")
    found = check(tmp_path)
    assert "FP000" not in ids(found)
    assert {f.file for f in found if f.id == "DOC001"} == {"Dockerfile", "Dockerfile.prod"}


def test_installing_the_project_itself_needs_its_code_first(tmp_path: Path) -> None:
    """The kit's image for a pyproject.toml project (no requirements file) copies the
    code, then runs 'pip install .': that order is required, not a cache mistake. A
    requirements install after 'COPY . .' still is one."""
    base = "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nRUN {run}\nUSER 1000\n"
    base += 'CMD ["gunicorn", "app:app"]\n'
    for run in ("pip install --no-cache-dir .", "pip install -e '.'", "pip install .[postgres]"):
        write(tmp_path, {"Dockerfile": base.format(run=run), "pyproject.toml": "[project]\n"})
        assert "DOC010" not in ids(check(tmp_path)), run
    run = "pip install -r requirements.txt && pip install --no-deps ."
    write(tmp_path, {"Dockerfile": base.format(run="pip install -r requirements.txt")})
    assert "DOC010" in ids(check(tmp_path))
    write(tmp_path, {"Dockerfile": base.format(run=run)})
    assert "DOC010" not in ids(check(tmp_path))  # --no-deps: as before
