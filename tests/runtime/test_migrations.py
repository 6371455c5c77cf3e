"""flaskprod.runtime.migrations: heads read without Alembic agree with Alembic's."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy
from alembic.config import Config
from alembic.script import ScriptDirectory

from flaskprod.runtime.migrations import database_heads, script_heads

#: (revision, down_revision, depends_on) of each script.
Script = tuple[str, str | tuple[str, ...] | None, str | None]


def write_scripts(directory: Path, scripts: list[Script]) -> None:
    versions = directory / "versions"
    versions.mkdir(parents=True)
    (versions / "__init__.py").write_text("")  # never a script, for Alembic either
    for revision, down, depends in scripts:
        (versions / f"{revision}_step.py").write_text(
            textwrap.dedent(
                f'''\
                """step {revision}"""
                revision = {revision!r}
                down_revision = {down!r}
                branch_labels = None
                depends_on = {depends!r}


                def upgrade():
                    pass


                def downgrade():
                    pass
                '''
            )
        )


def alembic_heads(directory: Path) -> frozenset[str]:
    config = Config()
    config.set_main_option("script_location", str(directory))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


HISTORIES: dict[str, list[Script]] = {
    "linear": [("a1", None, None), ("b2", "a1", None), ("c3", "b2", None)],
    "branched": [("a1", None, None), ("b2", "a1", None), ("c3", "a1", None)],
    "merged": [
        ("a1", None, None),
        ("b2", "a1", None),
        ("c3", "a1", None),
        ("d4", ("b2", "c3"), None),
    ],
    "two bases": [("a1", None, None), ("b2", None, None), ("c3", "a1", None)],
    # A dependency is not a parent: b2 stays a head (alembic's get_heads()).
    "depends on": [("a1", None, None), ("b2", None, None), ("c3", "a1", "b2")],
}


@pytest.mark.parametrize("history", HISTORIES)
def test_heads_agree_with_alembic(tmp_path: Path, history: str) -> None:
    write_scripts(tmp_path, HISTORIES[history])
    heads = script_heads(tmp_path)
    assert heads == alembic_heads(tmp_path)
    assert heads  # every history above has a head


def test_expected_heads(tmp_path: Path) -> None:
    write_scripts(tmp_path, HISTORIES["branched"])
    assert script_heads(tmp_path) == {"b2", "c3"}


def test_no_scripts_no_heads(tmp_path: Path) -> None:
    assert script_heads(tmp_path) == frozenset() == alembic_heads(tmp_path)
    (tmp_path / "versions").mkdir()
    assert script_heads(tmp_path) == frozenset() == alembic_heads(tmp_path)


def test_a_computed_revision_is_left_to_alembic(tmp_path: Path) -> None:
    write_scripts(tmp_path, [("a1", None, None)])
    script = tmp_path / "versions" / "a1_step.py"
    script.write_text(script.read_text().replace("revision = 'a1'", "revision = 'a' + '1'"))
    assert script_heads(tmp_path) is None
    assert alembic_heads(tmp_path) == {"a1"}


def test_a_script_without_down_revision_is_left_to_alembic(tmp_path: Path) -> None:
    write_scripts(tmp_path, [("a1", None, None)])
    script = tmp_path / "versions" / "a1_step.py"
    script.write_text(script.read_text().replace("down_revision = None\n", ""))
    assert script_heads(tmp_path) is None


@pytest.mark.parametrize("option", ["version_locations = %(here)s/other", "sourceless = true"])
def test_an_ini_that_moves_the_scripts_is_left_to_alembic(tmp_path: Path, option: str) -> None:
    write_scripts(tmp_path, [("a1", None, None)])
    (tmp_path / "alembic.ini").write_text(f"[alembic]\n{option}\n")
    assert script_heads(tmp_path) is None
    (tmp_path / "alembic.ini").write_text("[alembic]\n# file_template = x\n")
    assert script_heads(tmp_path) == {"a1"}


def test_database_heads(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    with engine.connect() as connection:
        assert database_heads(connection) == frozenset()
        connection.execute(sqlalchemy.text("CREATE TABLE alembic_version (version_num TEXT)"))
        assert database_heads(connection) == frozenset()
        connection.execute(sqlalchemy.text("INSERT INTO alembic_version VALUES ('b2'), ('c3')"))
        assert database_heads(connection) == {"b2", "c3"}
    engine.dispose()


def test_database_heads_on_postgresql(postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    )
    with engine.connect() as connection:
        assert database_heads(connection) == frozenset()
        connection.execute(
            sqlalchemy.text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        )
        connection.execute(sqlalchemy.text("INSERT INTO alembic_version VALUES ('a1')"))
        assert database_heads(connection) == {"a1"}
        connection.rollback()
    engine.dispose()
