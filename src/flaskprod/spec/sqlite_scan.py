"""An app that keeps its data in a SQLite file of its own (the Flask tutorial's flaskr:
``sqlite3.connect(current_app.config["DATABASE"])`` with ``DATABASE`` under
``app.instance_path``) and reads no database URL from the environment: PostgreSQL
would be started for nothing, and the instance folder must stay writable.

Read only, nothing imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flaskprod.spec import pysource

#: Names that say "the database comes from the environment / SQLAlchemy".
_URL_WORDS = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "DATABASE_URI", "DB_URL")
_ORMS = frozenset({"sqlalchemy", "flask_sqlalchemy", "peewee", "pony", "tortoise", "mongoengine"})


@dataclass(frozen=True)
class SqliteUse:
    """What :func:`scan_sqlite` found."""

    #: The app talks to SQLite through the standard library and reads no database URL.
    own_sqlite: bool = False
    #: The app keeps files in its instance folder (``app.instance_path``): ``instance``
    #: in the folder it runs from (Flask's default for a package or module imported
    #: from there; an installed package's is under the venv instead).
    uses_instance: bool = False


def scan_sqlite(files: Iterable[Path]) -> SqliteUse:
    sqlite3 = url = orm = instance = False
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            modules = pysource.imports(text)
        except (OSError, ValueError, SyntaxError):
            continue
        sqlite3 = sqlite3 or "sqlite3" in modules
        orm = orm or bool(modules & _ORMS)
        url = url or any(word in text for word in _URL_WORDS)
        instance = instance or "instance_path" in text
    return SqliteUse(own_sqlite=sqlite3 and not url and not orm, uses_instance=instance)
