"""``flaskprod init`` on copies of real projects: their own settings, uploads folder,
build steps and queue reach the spec and the kit (issue #12, items 9, 10 and Redis)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from real_projects import REAL_PROJECTS

from flaskprod.cli import cli
from flaskprod.errors import ExitCode
from flaskprod.spec.load import load_spec

REAL = REAL_PROJECTS  # the shared folder beside the checkout


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def copy(name: str, target: Path) -> Path:
    shutil.copytree(REAL / name, target, ignore=shutil.ignore_patterns(".venv", "venv"))
    return target


def test_microblog(tmp_path: Path) -> None:
    root = copy("microblog", tmp_path / "microblog")
    # --no-import: these facts are read from its files (its own venv is another test's)
    result = run("init", str(root), "--no-import", "--app", "microblog:app")
    assert result.exit_code == 0, result.output
    spec = load_spec(root / "flaskprod.toml")
    assert set(spec.app.settings) >= {"MAIL_SERVER", "ELASTICSEARCH_URL", "LOG_TO_STDOUT"}
    assert spec.app.build == ["pybabel compile -d app/translations"]
    assert spec.redis.maxmemory_policy == "noeviction"
    assert "note: Redis holds rq's job queue: redis.maxmemory_policy = 'noeviction'" in (
        result.output
    )
    env = (root / "deploy/.env.example").read_text().splitlines()
    assert "# MAIL_SERVER=" in env and "# ELASTICSEARCH_URL=" in env  # unset unless given
    assert f"MEDIA_ROOT={spec.media_dir}" in env  # the systemd env file sets it now
    assert "RUN pybabel compile -d app/translations" in (root / "deploy/Dockerfile").read_text()
    assert run("render", str(root), "--check", "--no-import").exit_code == 0


def test_flask_on_docker_uploads(tmp_path: Path) -> None:
    root = copy("flask-on-docker", tmp_path / "fod") / "services/web"
    result = run("init", str(root), "--no-import", "--app", "project:app")
    assert result.exit_code == 0, result.output
    spec = load_spec(root / "flaskprod.toml")
    install = spec.app.install_dir
    # MEDIA_FOLDER = f"{os.getenv('APP_FOLDER')}/project/media": the app's folder is
    # where its code is installed, and the uploads folder follows it
    assert spec.app.settings == {"APP_FOLDER": "{root}"}
    assert spec.media_dir == f"{install}/project/media"
    env = (root / "deploy/.env.example").read_text().splitlines()
    assert f"APP_FOLDER={install}" in env
    unit = (root / f"deploy/systemd/{spec.app.name}.service").read_text()
    assert f"ReadWritePaths={install}/project/media " in unit
    site = (root / f"deploy/nginx/{spec.app.name}.conf").read_text()
    assert f"alias {install}/project/media/;" in site
    # in the image, the folder inside the code is made the app user's after COPY . .
    dockerfile = (root / "deploy/Dockerfile").read_text()
    copied = dockerfile.index("\nCOPY . .\n", dockerfile.index("# ---- runtime"))
    assert dockerfile.index(f"RUN mkdir -p {install}/project/media") > copied


def test_a_python_the_kit_has_no_image_for(tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    (root / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (root / ".python-version").write_text("3.7.17\n")
    result = run("init", str(root), "--no-import")
    assert result.exit_code == ExitCode.USAGE
    assert result.output == (
        "flaskprod: error: .python-version: Python 3.7, for which the kit has no image "
        "(3.9 to 3.13) (move the project to a supported Python, or say which one in "
        ".python-version)\n"
    )
    assert sorted(p.name for p in root.iterdir()) == [".python-version", "app.py"]


@pytest.mark.parametrize(
    ("files", "version", "image"),
    [
        ({".python-version": "3.12\n"}, "3.12", "python:3.12.8-slim-bookworm"),
        (
            {"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.13"\n'},
            "3.13",
            "python:3.13.1-slim-bookworm",
        ),
    ],
)
def test_the_image_runs_the_python_the_project_asks_for(
    tmp_path: Path, files: dict[str, str], version: str, image: str
) -> None:
    root = tmp_path / "app"
    root.mkdir()
    (root / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    for name, text in files.items():
        (root / name).write_text(text)
    result = run("init", str(root), "--no-import")
    assert result.exit_code == 0, result.output
    spec = load_spec(root / "flaskprod.toml")
    assert (spec.deploy.python_version, spec.container.python_image) == (version, image)
    assert f"FROM {image} AS build" in (root / "deploy/Dockerfile").read_text()
    assert f"note: the image runs Python {version}" in result.output  # this one is 3.11
