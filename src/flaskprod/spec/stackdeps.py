"""What the stack needs from the project's own dependencies: an app server and a
database driver (PostgreSQL's, or MariaDB/MySQL's).

flaskprod never installs into the project's environment. Where the project lacks
something the stack runs (granian or gunicorn, a driver), it names the exact
requirements line to add, and ``flaskprod init --add-deps`` appends it on request.
The pins are the versions flaskprod is tested with (requirements/dev.txt).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: The requirements line per package the stack may need, pinned as flaskprod tests it.
PINNED = {
    "gunicorn": "gunicorn==27.0.1",
    "gevent": "gevent==26.9.0",
    "granian": "granian==2.8.7",
    "psycopg": "psycopg[binary]==3.3.9",
    "psycopg2": "psycopg2-binary==2.9.10",
    "pg8000": "pg8000==1.31.2",
    "pymysql": "PyMySQL==1.1.1",
    "mysqldb": "mysqlclient==2.2.7",
    "mysqlconnector": "mysql-connector-python==9.1.0",
}

#: The module each driver is imported as (what ``up`` looks for in the project's venv).
DRIVER_MODULES = {
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
    "mysqldb": "MySQLdb",
    "mysqlconnector": "mysql.connector",
}

#: Distribution names (canonical) -> the SQLAlchemy driver, in order of preference.
_DRIVERS = (
    ("psycopg", "psycopg"),
    ("psycopg-binary", "psycopg"),
    ("psycopg2", "psycopg2"),
    ("psycopg2-binary", "psycopg2"),
    ("pg8000", "pg8000"),
)
#: MariaDB/MySQL distributions -> the SQLAlchemy driver (``mysql+DRIVER://``).
_MYSQL_DRIVERS = (
    ("pymysql", "pymysql"),
    ("mysqlclient", "mysqldb"),
    ("mysql-connector-python", "mysqlconnector"),
    ("mysql-connector", "mysqlconnector"),
)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
#: A MySQL/MariaDB SQLAlchemy URL in the app's own code (a config default, CTFd's
#: ``drivername="mysql+pymysql"``): the driver it names, if any.
_MYSQL_URL = re.compile(
    r"""["'](?:mysql|mariadb)(?:\+(pymysql|mysqldb|mysqlconnector)(?:://|["'])|://)"""
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(root: Path, files: tuple[str, ...]) -> set[str]:
    """Canonical names of the distributions the project's dependency files list
    (requirements files, pyproject's [project] dependencies). Lock files are left out:
    what production installs is declared, not merely resolved."""
    names: set[str] = set()
    for relative in files:
        path = root / relative
        if relative.endswith((".txt", ".in")):
            names |= _requirement_names(path)
        elif relative.endswith("pyproject.toml"):
            names |= _pyproject_names(path)
    return names


def _requirement_names(path: Path) -> set[str]:
    names: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return names
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = _NAME.match(line)
        if match and "://" not in line.split("@", 1)[0]:
            names.add(canonical(match.group(1)))
    return names


def _pyproject_names(path: Path) -> set[str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return set()
    project = data.get("project") or {}
    entries = list(project.get("dependencies") or [])
    names: set[str] = set()
    for entry in entries:
        match = _NAME.match(str(entry))
        if match:
            names.add(canonical(match.group(1)))
    return names


@dataclass(frozen=True)
class DatabaseChoice:
    """The database the project can talk to, from its declared packages."""

    engine: str  # "postgresql", "mariadb" or "sqlite"
    driver: str  # "psycopg", "psycopg2", "pg8000", "pymysql", "mysqldb", "mysqlconnector"
    #: A package to add (its requirements line) when the project ships no PG driver.
    missing: str | None = None
    note: str | None = None


def mysql_in_sources(files: Iterable[Path]) -> str | None:
    """The driver of a MySQL URL the app's own code names (``"mysql+pymysql://..."``;
    ``pymysql`` for a bare ``mysql://``), or None when it names none."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        match = _MYSQL_URL.search(text)
        if match is not None:
            return match.group(1) or "pymysql"
    return None


def detect_database(
    names: set[str],
    uses_database: bool,
    *,
    own_sqlite: bool = False,
    mysql_url: str | None = None,
) -> DatabaseChoice:
    """The driver the project ships: a PostgreSQL one first, else a MariaDB/MySQL one
    (the stack then runs MariaDB), else the MySQL driver its code's URL names
    (``mysql_url``, to be added); for an app on its own SQLite file that reads no
    database URL (``own_sqlite``), SQLite: a server it never connects to would only be
    started for nothing."""
    for package, driver in _DRIVERS:
        if package in names:
            return DatabaseChoice("postgresql", driver)
    if own_sqlite:
        return DatabaseChoice(
            "sqlite",
            "psycopg",
            note=(
                "the app keeps its data in SQLite through sqlite3 and reads no DATABASE_URL: "
                'database.engine = "sqlite" (no PostgreSQL in the stack)'
            ),
        )
    for package, driver in _MYSQL_DRIVERS:
        if package in names:
            return DatabaseChoice(
                "mariadb",
                driver,
                note=(
                    f"the project ships a MySQL driver ({package}) and no PostgreSQL one: "
                    f'database.engine = "mariadb" (mysql+{driver}://, utf8mb4)'
                ),
            )
    if mysql_url is not None:
        return DatabaseChoice(
            "mariadb",
            mysql_url,
            missing=mysql_url,
            note=(
                f"the app's code names a mysql+{mysql_url}:// database and the project "
                f'ships no driver: database.engine = "mariadb"; add {PINNED[mysql_url]} '
                "to its requirements (init --add-deps does)"
            ),
        )
    if not (uses_database or names & {"sqlalchemy", "flask-sqlalchemy"}):
        return DatabaseChoice("postgresql", "psycopg")
    return DatabaseChoice(
        "postgresql",
        "psycopg",
        missing="psycopg",
        note=(
            "the project ships no PostgreSQL driver: the app needs one to reach the stack's "
            f"database: add {PINNED['psycopg']} to its requirements (init --add-deps does)"
        ),
    )


def missing_lines(root: Path, requirements: str, packages: list[str]) -> list[str]:
    """The pinned lines of ``packages`` that ``requirements`` does not list yet."""
    present = _requirement_names(root / requirements)
    return [PINNED[package] for package in packages if canonical(package) not in present]
