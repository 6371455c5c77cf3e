"""--add-deps into pyproject.toml: [project].dependencies gains the entries, the rest of
the file stays byte for byte; forms the edit cannot keep are refused."""

from __future__ import annotations

import tomllib

import pytest

from flaskprod.errors import ProjectError
from flaskprod.spec.pyproject_deps import add_dependencies

NEW = ["granian==2.8.7", "psycopg[binary]==3.3.9"]
TAIL = '\n[project.optional-dependencies]\ntest = ["pytest"]\n\n[tool.x]\ndependencies = ["q"]\n'


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        ('["flask", "click"]', '["flask", "click", "granian==2.8.7", "psycopg[binary]==3.3.9"]'),
        ("[]", '["granian==2.8.7", "psycopg[binary]==3.3.9"]'),
        # comments stay on their entries' lines; a missing trailing comma is added
        (
            '[\n  "flask",  # web\n  "x[y]>=1" # z\n]',
            '[\n  "flask",  # web\n  "x[y]>=1", # z\n  "granian==2.8.7",\n'
            '  "psycopg[binary]==3.3.9",\n]',
        ),
        (
            '[\n    "flask",\n    "b"]',
            '[\n    "flask",\n    "b",\n    "granian==2.8.7",\n    "psycopg[binary]==3.3.9"]',
        ),
        # brackets, quotes and hashes inside strings are no syntax
        (
            '[\'fla]sk\', "c#d\\"]"]',
            '[\'fla]sk\', "c#d\\"]", "granian==2.8.7", "psycopg[binary]==3.3.9"]',
        ),
    ],
)
def test_entries_are_appended_in_the_arrays_own_style(array: str, expected: str) -> None:
    head = '[project]\nname = "a"\n# the deps\ndependencies = '
    text = head + array + "\n" + TAIL
    out = add_dependencies(text, NEW)
    assert out == head + expected + "\n" + TAIL  # everything else byte for byte
    before, after = tomllib.loads(text), tomllib.loads(out)
    assert after["project"]["dependencies"] == [*before["project"]["dependencies"], *NEW]


def test_a_project_without_dependencies_gets_the_key() -> None:
    text = '[project]\nname = "a"\n' + TAIL
    out = add_dependencies(text, NEW)
    assert tomllib.loads(out)["project"]["dependencies"] == NEW
    assert out.endswith(TAIL) and out.startswith("[project]\n")
    assert tomllib.loads(out)["tool"] == tomllib.loads(text)["tool"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('[tool.poetry]\nname = "a"\n', "has no [project] table"),
        (
            '[project]\nname = "a"\ndynamic = ["dependencies"]\n',
            "declares its dependencies as dynamic",
        ),
        ('project = {name = "a", dependencies = []}\n', "defines [project] in a form"),
        ('[project]\nname = "a"\nproject.x = 1\n[project\n', "is not valid TOML"),
    ],
)
def test_forms_it_cannot_keep_are_refused(text: str, why: str) -> None:
    with pytest.raises(ProjectError, match=f"--add-deps: pyproject.toml {why}".replace("[", r"\[")):
        add_dependencies(text, NEW)
