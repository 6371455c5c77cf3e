"""Which database a backup or restore talks to, from a SQLAlchemy-style URL.

The app's ``DATABASE_URL`` names a driver (``postgresql+psycopg://``) that libpq and
``pg_dump`` do not understand: it is taken apart here once, into libpq parameters
for PostgreSQL or a file path for SQLite. The password never goes on a command
line (other users can read those in ``ps``): tools get it through ``PGPASSWORD``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from flaskprod.errors import UserError

POSTGRESQL = "postgresql"
MARIADB = "mariadb"  # MariaDB and MySQL: mysql[+driver]:// and mariadb[+driver]:// URLs
SQLITE = "sqlite"
#: Database names flaskprod creates or accepts for --into (no quoting surprises).
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database (``host``, ``port``, ``dbname``...) or a SQLite file."""

    kind: str
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    options: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        """The database's name (PostgreSQL) or file name (SQLite)."""
        return self.path.name if self.path is not None else self.dbname

    @property
    def where(self) -> str:
        """``host:port`` (or the socket folder) / the file: for messages."""
        if self.path is not None:
            return str(self.path)
        return f"{self.host or 'localhost'}:{self.port}"

    def conninfo(self) -> dict[str, str]:
        """libpq keywords, without the password (see :meth:`environ`)."""
        params = {"dbname": self.dbname, "port": str(self.port), **self.options}
        if self.host:
            params["host"] = self.host
        if self.user:
            params["user"] = self.user
        return params

    def conninfo_string(self) -> str:
        def quote(value: str) -> str:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        return " ".join(f"{key}={quote(value)}" for key, value in self.conninfo().items())

    def environ(self) -> dict[str, str]:
        """Extra environment for pg_dump/pg_restore: the password, if any."""
        return {"PGPASSWORD": self.password} if self.password else {}

    def with_name(self, dbname: str) -> Database:
        """The same server and credentials, another database."""
        return replace(self, dbname=dbname)


def parse_url(url: str, *, source: str = "the database URL") -> Database:
    """``postgresql[+driver]://user:pw@host:port/db?opts``, ``mysql[+driver]://...``
    (MariaDB/MySQL) or ``sqlite:///path``."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme in ("mysql", "mariadb"):
        return _server(parts, url, source, MARIADB, 3306)
    if scheme in ("postgresql", "postgres"):
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise UserError(f"{source} names no database: {_redact(url)}")
        try:
            port = parts.port or 5432
        except ValueError:
            raise UserError(f"{source} has a bad port: {_redact(url)}") from None
        options = dict(parse_qsl(parts.query))
        host = unquote(parts.hostname or "") or options.pop("host", "")
        return Database(
            kind=POSTGRESQL,
            host=host,
            port=port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            dbname=dbname,
            options=options,
        )
    if scheme == SQLITE:
        # sqlite:///relative.db, sqlite:////absolute.db; relative to the current folder.
        raw = url.split("://", 1)[1].split("?", 1)[0]
        path_text = raw[1:] if raw.startswith("/") else raw
        if not path_text or path_text == ":memory:":
            raise UserError(f"{source} is an in-memory SQLite database: nothing to back up")
        return Database(kind=SQLITE, path=Path(unquote(path_text)).absolute())
    raise UserError(
        f"{source} is not PostgreSQL, MariaDB/MySQL or SQLite: {_redact(url)}",
        hint="flaskprod backs up postgresql://, mysql:// and sqlite:/// databases",
    )


def _server(parts: SplitResult, url: str, source: str, kind: str, default_port: int) -> Database:
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise UserError(f"{source} names no database: {_redact(url)}")
    try:
        port = parts.port or default_port
    except ValueError:
        raise UserError(f"{source} has a bad port: {_redact(url)}") from None
    return Database(
        kind=kind,
        host=unquote(parts.hostname or ""),
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        dbname=dbname,
        options=dict(parse_qsl(parts.query)),
    )


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)
