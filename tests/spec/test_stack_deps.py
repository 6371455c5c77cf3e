"""What init reads from a project about the stack it needs: the app server and worker
model its launchers run (spec/server_choice.py), the PostgreSQL driver it ships
(spec/stackdeps.py), and ``init --add-deps`` adding exactly the missing lines."""

from __future__ import annotations

import shutil
import textwrap
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from real_projects import REAL_PROJECTS

from flaskprod.cli import cli
from flaskprod.spec.detect import detect_project
from flaskprod.spec.load import load_spec

REAL = REAL_PROJECTS  # the shared folder beside the checkout
APP = "from flask import Flask\napp = Flask(__name__)\n"


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"app.py": APP, **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def copy_real(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(REAL / name, tmp_path / name))


# -- the app server -------------------------------------------------------------------


def test_gunicorn_with_gevent_in_a_procfile_stays_gevent(tmp_path: Path) -> None:
    """An app that streams (server-sent events) runs gevent workers: init keeps them."""
    root = make(
        tmp_path,
        {
            "requirements.txt": "flask==3.1.3\ngunicorn==23.0.0\ngevent==24.2.1\n",
            "Procfile": "web: gunicorn --worker-class gevent -w 4 app:app\n",
        },
    )
    server = detect_project(root, introspect=False).server
    assert server is not None
    assert (server.kind, server.settings, server.source) == (
        "gunicorn",
        {"worker_class": "gevent", "workers": 4},
        "Procfile:1",
    )
    assert server.missing == []


def test_gunicorn_in_a_boot_script_the_image_runs(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "requirements.txt": "flask\n",
            "boot.sh": (
                "#!/bin/sh\nflask db upgrade\n"
                "exec gunicorn -k gthread --threads 8 -b :5000 app:app\n"
            ),
            "Dockerfile": 'FROM python:3.12-slim\nCOPY . .\nENTRYPOINT ["./boot.sh"]\n',
        },
    )
    server = detect_project(root, introspect=False).server
    assert server is not None and server.kind == "gunicorn"
    assert server.settings == {"worker_class": "gthread", "threads": 8}
    assert server.missing == ["gunicorn"]  # started, but not in requirements.txt


def test_a_worker_class_from_the_entrypoints_own_default(tmp_path: Path) -> None:
    """CTFd's docker-entrypoint.sh: ``WORKER_CLASS=${WORKER_CLASS:-gevent}`` then
    ``--worker-class "$WORKER_CLASS"`` (server-sent events need gevent)."""
    root = make(
        tmp_path,
        {
            "requirements.txt": "flask\ngunicorn\ngevent\n",
            "docker-entrypoint.sh": """\
                #!/bin/bash
                set -euo pipefail

                WORKERS=${WORKERS:-4}
                WORKER_CLASS=${WORKER_CLASS:-gevent}
                export ACCESS_LOG=${ACCESS_LOG:--}

                flask db upgrade
                exec gunicorn 'app:app' \\
                    --bind '0.0.0.0:8000' \\
                    --workers $WORKERS \\
                    --worker-class "$WORKER_CLASS" \\
                    --access-logfile "$ACCESS_LOG"
            """,
            "Dockerfile": "FROM python:3.11-slim\nCOPY . /opt/app\n"
            'ENTRYPOINT ["/opt/app/docker-entrypoint.sh"]\n',
        },
    )
    server = detect_project(root, introspect=False).server
    assert server is not None and server.kind == "gunicorn"
    assert server.settings == {"worker_class": "gevent", "workers": 4}
    assert server.source == "docker-entrypoint.sh:9"
    assert server.missing == []


def test_granian_in_a_dockerfile_cmd(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "requirements.txt": "flask\ngranian\n",
            "Dockerfile": (
                'FROM python:3.12-slim\nCMD ["granian", "--interface", "wsgi", "app:app"]\n'
            ),
        },
    )
    server = detect_project(root, introspect=False).server
    assert server is not None and (server.kind, server.missing) == ("granian", [])


def test_nothing_named_is_the_default_with_the_line_to_add(tmp_path: Path) -> None:
    root = make(tmp_path, {"requirements.txt": "flask==3.1.3\n"})
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import"])
    assert result.exit_code == 0, result.output
    assert load_spec(root / "flaskprod.toml").server.kind == "granian"
    assert (
        "note: the project does not list granian, which the stack runs (server.kind = "
        "'granian'): add 'granian==2.8.7' to requirements.txt (or run init with --add-deps)"
    ) in result.stdout.splitlines()


def test_microblog_runs_gunicorn_as_its_server_deployment_does(tmp_path: Path) -> None:
    """Its Procfile and its supervisor config both start gunicorn: the supervisor
    program (the Linux server deployment, with its 4 workers) is the one kept."""
    root = copy_real("microblog", tmp_path)
    info = detect_project(root, introspect=False)
    assert info.server is not None and info.database is not None
    assert (info.server.kind, info.server.source, info.server.missing) == (
        "gunicorn",
        "deployment/supervisor/microblog.conf:2",
        [],
    )
    assert info.server.settings == {"worker_class": "sync", "workers": 4}
    assert (info.database.engine, info.database.driver) == ("postgresql", "psycopg2")


def test_flask_on_docker_gunicorn_and_psycopg2(tmp_path: Path) -> None:
    root = copy_real("flask-on-docker", tmp_path) / "services" / "web"
    info = detect_project(root, introspect=False)
    assert info.server is not None and info.database is not None
    assert (info.server.kind, info.server.missing) == ("gunicorn", [])
    assert (info.database.driver, info.database.missing) == ("psycopg2", None)


# -- the database driver --------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirement", "driver"),
    [
        ("psycopg2-binary==2.9.9", "psycopg2"),
        ("psycopg2==2.9.9", "psycopg2"),
        ("psycopg[binary]==3.2.1", "psycopg"),
        ("pg8000==1.31.2", "pg8000"),
    ],
)
def test_the_driver_the_project_ships_is_the_urls(
    tmp_path: Path, requirement: str, driver: str
) -> None:
    root = make(
        tmp_path,
        {"requirements.txt": f"flask\nflask-sqlalchemy\ngunicorn\n{requirement}\n"},
    )
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import"])
    assert result.exit_code == 0, result.output
    spec = load_spec(root / "flaskprod.toml")
    assert spec.database.driver == driver
    url = f"postgresql+{driver}://"
    assert f"DATABASE_URL={url}" in (root / "deploy/.env.example").read_text()
    assert f"DATABASE_URL: {url}" in (root / "deploy/compose.yaml").read_text()
    assert f"DATABASE_URL: {url}" in (root / f".github/workflows/{spec.app.name}.yml").read_text()


def test_a_mysql_only_project_gets_mariadb_with_its_driver(tmp_path: Path) -> None:
    root = make(tmp_path, {"requirements.txt": "flask\nflask-sqlalchemy\ngunicorn\npymysql\n"})
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import"])
    assert result.exit_code == 0, result.output
    database = load_spec(root / "flaskprod.toml").database
    assert (database.engine, database.driver) == ("mariadb", "pymysql")
    assert "database: MariaDB through pymysql (database.driver)" in result.stdout.splitlines()
    url = "mysql+pymysql://"
    assert f"DATABASE_URL={url}" in (root / "deploy/.env.example").read_text()


@pytest.mark.parametrize(
    ("package", "driver"),
    [("mysqlclient", "mysqldb"), ("mysql-connector-python", "mysqlconnector")],
)
def test_each_mysql_driver_is_detected(tmp_path: Path, package: str, driver: str) -> None:
    root = make(tmp_path, {"requirements.txt": f"flask\nflask-sqlalchemy\n{package}\n"})
    database = detect_project(root, "app:app", introspect=False).database
    assert database is not None
    assert (database.engine, database.driver) == ("mariadb", driver)


def test_a_postgresql_driver_wins_over_a_mysql_one(tmp_path: Path) -> None:
    root = make(tmp_path, {"requirements.txt": "flask\npymysql\npsycopg2-binary\n"})
    database = detect_project(root, "app:app", introspect=False).database
    assert database is not None
    assert (database.engine, database.driver) == ("postgresql", "psycopg2")


def test_flaskr_on_its_own_sqlite_file_gets_sqlite_and_a_writable_instance(
    tmp_path: Path,
) -> None:
    """flaskr: sqlite3 on app.instance_path/flaskr.sqlite, no DATABASE_URL read: no
    PostgreSQL, and the server keeps its instance folder writable for the app user."""
    root = copy_real("flaskr", tmp_path)
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import"])
    assert result.exit_code == 0, result.output
    spec = load_spec(root / "flaskprod.toml")
    assert spec.database.engine == "sqlite"
    assert (
        "note: the app keeps its data in SQLite through sqlite3 and reads no DATABASE_URL: "
        'database.engine = "sqlite" (no PostgreSQL in the stack)'
    ) in result.stdout.splitlines()
    unit = (root / "deploy/systemd/flaskr.service").read_text().splitlines()
    instance = f"{spec.app.install_dir}/instance"
    (writable,) = [line for line in unit if line.startswith("ReadWritePaths=")]
    assert instance in writable.split("=", 1)[1].split()
    assert f"ExecStartPre=+/usr/bin/install -d -o flaskr -g flaskr -m 0750 {instance}" in unit
    dockerfile = (root / "deploy/Dockerfile").read_text()
    assert f"RUN mkdir -p {instance} \\\n    && chown 10001:10001 {instance}\n" in dockerfile
    # the kit's own files (the entry module's sqlite3 readiness) do not change the facts
    again = CliRunner().invoke(cli, ["render", "--check", str(root), "--no-import"])
    assert again.exit_code == 0, again.output


def test_sqlite3_with_a_database_url_stays_postgresql(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "requirements.txt": "flask\n",
            "db.py": "import os, sqlite3\nURL = os.environ['DATABASE_URL']\n",
        },
    )
    info = detect_project(root, introspect=False)
    assert info.database is not None and info.database.engine == "postgresql"
    assert info.instance_folder is False


# -- init --add-deps ------------------------------------------------------------------


def test_add_deps_appends_exactly_the_missing_lines(tmp_path: Path) -> None:
    """An app using SQLAlchemy with no driver and no app server: both lines, pinned,
    appended; the rest of the file is untouched; nothing is installed."""
    before = "flask==3.1.3\nflask-sqlalchemy==3.1.1"  # no final newline
    root = make(tmp_path, {"requirements.txt": before})
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import", "--add-deps"])
    assert result.exit_code == 0, result.output
    after = (root / "requirements.txt").read_text()
    assert after == before + "\ngranian==2.8.7\npsycopg[binary]==3.3.9\n"
    assert (
        "Added to requirements.txt (not installed): granian==2.8.7, psycopg[binary]==3.3.9"
    ) in result.stdout.splitlines()
    assert "--add-deps" not in result.stdout  # no note asking for what was just done
    # a second run adds nothing
    again = CliRunner().invoke(cli, ["init", str(root), "--no-import", "--add-deps", "--force"])
    assert again.exit_code == 0, again.output
    assert (root / "requirements.txt").read_text() == after
    assert "Added to" not in again.stdout


def test_add_deps_on_microblog_with_granian(tmp_path: Path) -> None:
    """microblog ships gunicorn and psycopg2: choosing granian adds granian only."""
    root = copy_real("microblog", tmp_path)
    before = (root / "requirements.txt").read_text()
    result = CliRunner().invoke(
        cli, ["init", str(root), "--no-import", "--server", "granian", "--add-deps"]
    )
    assert result.exit_code == 0, result.output
    assert (root / "requirements.txt").read_text() == before + "granian==2.8.7\n"


def test_add_deps_into_flaskrs_pyproject_changes_only_its_dependencies(tmp_path: Path) -> None:
    """flaskr declares its dependencies in pyproject.toml only: the lines go into
    [project].dependencies; every other byte of the file stays as it was."""
    root = copy_real("flaskr", tmp_path)
    before = (root / "pyproject.toml").read_text()
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import", "--add-deps"])
    assert result.exit_code == 0, result.output
    after = (root / "pyproject.toml").read_text()
    assert after == before.replace('    "flask",\n', '    "flask",\n    "granian==2.8.7",\n', 1)
    old, new = tomllib.loads(before), tomllib.loads(after)
    assert new["project"].pop("dependencies") == ["flask", "granian==2.8.7"]
    old["project"].pop("dependencies")
    assert new == old
    assert "Added to pyproject.toml (not installed): granian==2.8.7" in result.stdout.splitlines()
    assert "--add-deps" not in result.stdout  # no note asking for what was just done
    again = CliRunner().invoke(cli, ["init", str(root), "--no-import", "--add-deps", "--force"])
    assert again.exit_code == 0, again.output
    assert (root / "pyproject.toml").read_text() == after  # nothing added twice


def test_add_deps_into_a_pyproject_it_cannot_edit_refuses_before_writing(
    tmp_path: Path,
) -> None:
    pyproject = '[tool.poetry]\nname = "a"\n\n[tool.poetry.dependencies]\nflask = "^3"\n'
    root = make(tmp_path, {"pyproject.toml": pyproject})
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import", "--add-deps"])
    assert result.exit_code == 2
    assert result.stderr == (
        "flaskprod: error: --add-deps: pyproject.toml has no [project] table: add the lines "
        "to its dependencies yourself (init without --add-deps prints the lines to add)\n"
    )
    assert (root / "pyproject.toml").read_text() == pyproject
    assert not (root / "flaskprod.toml").exists() and not (root / "deploy").exists()


def test_a_mysql_url_in_the_apps_code_without_a_driver_gets_mariadb_and_the_driver(
    tmp_path: Path,
) -> None:
    """CTFd's shape without its requirements line: config.py defaults to mysql+pymysql."""
    root = make(
        tmp_path,
        {
            "requirements.txt": "flask\nflask-sqlalchemy\n",
            "config.py": 'import os\nURL = os.environ.get("DATABASE_URL") or "mysql+pymysql://u@db/app"\n',
        },
    )
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import", "--add-deps"])
    assert result.exit_code == 0, result.output
    database = load_spec(root / "flaskprod.toml").database
    assert (database.engine, database.driver) == ("mariadb", "pymysql")
    assert "PyMySQL==1.1.1" in (root / "requirements.txt").read_text()
    # a dialect name compared in code is no URL: the usual PostgreSQL default
    plain = make(
        tmp_path / "plain",
        {"requirements.txt": "flask\nflask-sqlalchemy\n", "db.py": 'X = name == "mysql"\n'},
    )
    found = detect_project(plain, "app:app", introspect=False).database
    assert found is not None and found.engine == "postgresql"
