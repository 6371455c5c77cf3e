"""Where backup finds things: URL parsing, the local stack's state, progress lines."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from flaskprod.errors import UserError
from flaskprod.ops.database import parse_url
from flaskprod.ops.files import Progress
from flaskprod.stack.state import StackState, StateDir


def test_urls_of_the_app_become_libpq_parameters_without_the_password() -> None:
    db = parse_url("postgresql+psycopg://shop:p%40ss@db.internal:6543/shop?sslmode=require")
    assert (db.kind, db.host, db.port, db.user, db.dbname) == (
        "postgresql",
        "db.internal",
        6543,
        "shop",
        "shop",
    )
    assert "p@ss" not in db.conninfo_string() and "sslmode='require'" in db.conninfo_string()
    assert db.environ() == {"PGPASSWORD": "p@ss"}
    assert db.with_name("other").dbname == "other" and db.where == "db.internal:6543"
    assert parse_url("sqlite:////var/lib/app.db").path == Path("/var/lib/app.db")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mssql+pyodbc://u:secret@localhost/shop", "not PostgreSQL, MariaDB/MySQL or SQLite"),
        ("postgresql://u:secret@localhost/", "names no database"),
        ("mysql+pymysql://u:secret@localhost/", "names no database"),
        ("sqlite://", "in-memory"),
    ],
)
def test_unusable_urls_are_one_line_without_the_password(url: str, says: str) -> None:
    with pytest.raises(UserError, match=says) as raised:
        parse_url(url)
    assert "secret" not in str(raised.value)


def test_the_local_stack_database_is_used_and_backups_stay_in_its_folder(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    database = tmp_path / ".flaskprod" / "app.sqlite3"
    database.parent.mkdir()
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    StateDir.for_project(tmp_path).write(
        StackState(
            project=str(tmp_path),
            started_at=0.0,
            supervisor_pid=None,
            url="https://localhost:8443",
            http_port=0,
            https_port=0,
            env={"DATABASE_URL": f"sqlite:///{database}"},
        )
    )
    result = run_cli("backup", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    made = Path(result.stdout.strip())
    assert made.parent == tmp_path / ".flaskprod" / "backups"


def test_no_database_anywhere_is_a_usage_error(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    result = run_cli("backup", str(tmp_path), "--output", str(tmp_path / "b"))
    assert result.exit_code == 2, result.stderr
    assert "--database-url" in result.stderr and "flaskprod up" in result.stderr
    assert not (tmp_path / "b").exists()


def test_progress_is_quiet_for_small_work_and_periodic_for_large() -> None:
    quiet = io.StringIO()
    Progress("backup x", stream=quiet).update(10, 100)
    assert quiet.getvalue() == ""
    loud = io.StringIO()
    progress = Progress("backup x", after=0, every=0, stream=loud)
    progress.update(512 * 1024, 1024 * 1024)
    progress.update(7, 9, unit="tables")
    lines = loud.getvalue().splitlines()
    assert lines[0].startswith("backup x: 512.0 KB of 1.0 MB (50%)")
    assert lines[1].startswith("backup x: 7 tables of 9 tables (77%)")
