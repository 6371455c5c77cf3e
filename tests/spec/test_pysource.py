"""Project sources are parsed once (flaskprod.spec.pysource): the same tree for the same
text, a new one for an edit, and a file that does not parse fails every time."""

from __future__ import annotations

import ast

import pytest

from flaskprod.spec import pysource


def test_one_parse_per_text_and_a_new_one_after_an_edit() -> None:
    text = "import redis\nfrom flask_migrate import Migrate\nimport os.path\n"
    assert pysource.parse(text) is pysource.parse("".join(text))
    assert pysource.imports(text) == {"redis", "flask_migrate", "os"}
    assert pysource.nodes(text) == tuple(ast.walk(pysource.parse(text)))
    edited = text + "import sqlite3\n"
    assert pysource.parse(edited) is not pysource.parse(text)
    assert pysource.imports(edited) == {"redis", "flask_migrate", "os", "sqlite3"}


def test_a_syntax_error_is_raised_each_time() -> None:
    for _ in range(2):
        with pytest.raises(SyntaxError):
            pysource.imports("def broken(:\n")
