"""Roles as deployed: the app's role owns its database but may not create others.

The local stack's cluster has a superuser the commands use for scratch and new
databases; anywhere else a role without CREATEDB gets a one-line error naming the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from ops_helpers import table_rows

from flaskprod.stack.postgres import PostgresCluster
from flaskprod.stack.state import StackState, StateDir


@pytest.fixture
def app_role_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A database owned by a LOGIN role without CREATEDB, with a table of rows."""
    from psycopg import sql

    role = f"ops_app_{os.getpid()}"
    name = f"{role}_db"
    with postgres_cluster.connect() as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        create = sql.SQL("CREATE DATABASE {} OWNER {}")
        conn.execute(create.format(sql.Identifier(name), sql.Identifier(role)))
    url = postgres_cluster.url(name).replace("postgres@", f"{role}@")
    with postgres_cluster.connect(name) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.execute("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes (body) SELECT 'note ' || i FROM generate_series(1, 50) i")
    yield url
    with postgres_cluster.connect() as conn:
        for database in postgres_cluster.databases():
            if database.startswith(role):
                postgres_cluster.drop_database(database)
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _stack_project(folder: Path, url: str) -> Path:
    StateDir.for_project(folder).write(
        StackState(
            project=str(folder),
            started_at=0.0,
            supervisor_pid=None,
            url="https://localhost:8443",
            http_port=0,
            https_port=0,
            env={"DATABASE_URL": url},
        )
    )
    return folder


def test_on_the_local_stack_the_drill_and_into_use_its_superuser(
    app_role_url: str,
    tmp_path: Path,
    run_cli: Callable[..., Result],
    postgres_cluster: PostgresCluster,
) -> None:
    project = _stack_project(tmp_path, app_role_url)
    made = run_cli("backup", str(project), "--verify-restore")
    assert made.exit_code == 0, made.stderr
    assert "restore drill passed" in made.stderr

    # --into: created for the app's role, which can then restore into it.
    copy = app_role_url.rsplit("/", 1)[1] + "_copy"
    restored = run_cli("restore", made.stdout.strip(), "--project", str(project), "--into", copy)
    assert restored.exit_code == 0, restored.stderr
    copy_url = app_role_url.rsplit("/", 1)[0] + f"/{copy}"
    assert table_rows(copy_url) == table_rows(app_role_url)
    with postgres_cluster.connect() as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (copy,)
        ).fetchone()
    assert owner is not None and owner[0] == app_role_url.split("://")[1].split("@")[0]


def test_elsewhere_a_role_without_createdb_is_told_the_fix(
    app_role_url: str, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    result = run_cli(
        *("backup", "--database-url", app_role_url, "--output", str(tmp_path / "b")),
        "--verify-restore",
    )
    assert result.exit_code == 3, result.stderr
    assert "may not create database" in result.stderr and "CREATEDB" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("flaskprod: error:")
