"""MariaDB/MySQL traps: what works on a laptop and breaks in production.

- MDB001: pooled connections outlive the server's ``wait_timeout``: the server closes
  them, the next request on one fails with "MySQL server has gone away".
- MDB002: a connection character set other than utf8mb4 (MySQL's "utf8" holds 3 bytes
  a character: an emoji is an error, or silently mangled).
- MDB003: the app connects as ``root``: every bug or injection is the whole server's.
- MDB004: the server runs without a strict SQL mode: a too-long value or a bad date is
  stored truncated or zeroed, with a warning nobody reads.
- MDB005: the server's own character set is not utf8mb4 (tables created without one
  get it).
A published MariaDB port is CMP002 (every database image).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.rules.app import _app, _database_uri, app_file
from flaskprod.launch.compose import ComposeFile, LineDict

#: MariaDB's and MySQL's default wait_timeout (8 hours) when nothing says otherwise.
DEFAULT_WAIT_TIMEOUT = 28800
_MYSQL_SCHEMES = ("mysql", "mariadb")
_SERVER_IMAGES = ("mariadb", "mysql", "percona")
#: Drivers whose default connection character set is utf8mb4 (PyMySQL >= 1.0).
_UTF8MB4_BY_DEFAULT = ("pymysql",)


def _mysql_url(url: str) -> tuple[str, str, dict[str, str]] | None:
    """(driver, user, query options) of a MySQL/MariaDB SQLAlchemy URL, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme, _, driver = parts.scheme.lower().partition("+")
    if scheme not in _MYSQL_SCHEMES:
        return None
    return driver or "mysqldb", unquote(parts.username or ""), dict(parse_qsl(parts.query))


def _wait_timeout(ctx: Context) -> tuple[int, str]:
    """The server's wait_timeout: the spec's for a MariaDB/MySQL engine, else the
    default; and where that figure comes from."""
    spec = ctx.spec
    if spec is not None and spec.database.is_mysql:
        return spec.database.wait_timeout, "flaskprod.toml's database.wait_timeout"
    return DEFAULT_WAIT_TIMEOUT, "the server's default wait_timeout"


@rule(
    "MDB001",
    layer="app",
    level=Level.ERROR,
    title="MySQL pool without pool_recycle below wait_timeout",
    help="Set SQLALCHEMY_ENGINE_OPTIONS = {'pool_pre_ping': True, 'pool_recycle': 1800} "
    "(below the server's wait_timeout, 28800 s by default; flaskprod.Production sets "
    "both): MariaDB closes connections idle longer than wait_timeout, and the next "
    "request on such a pooled connection fails with 'MySQL server has gone away'.",
    requires=("app",),
    example="SQLALCHEMY_DATABASE_URI = 'mysql+pymysql://app:...@db/app'  # no pool_recycle",
)
def pool_recycle(ctx: Context) -> Iterator[Finding]:
    app = _app(ctx)
    limit, source = _wait_timeout(ctx)
    recycles = [e.get("recycle", -1) for e in app.engines if e.get("backend") in _MYSQL_SCHEMES]
    if not recycles and _mysql_url(_database_uri(app.config)) is not None and not app.engines:
        options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
        recycles = [options.get("pool_recycle", -1) if isinstance(options, dict) else -1]
    for recycle in recycles:
        if not isinstance(recycle, int | float) or recycle < 0:
            yield pool_recycle.finding(
                "the MySQL pool has no pool_recycle: connections idle past the server's "
                "wait_timeout die ('MySQL server has gone away')",
                file=app_file(ctx),
            )
        elif recycle >= limit:
            yield pool_recycle.finding(
                f"pool_recycle is {recycle:g} s, not below {source} ({limit} s): the "
                "server closes idle pooled connections first ('MySQL server has gone away')",
                file=app_file(ctx),
            )
        else:
            continue
        return


@rule(
    "MDB002",
    layer="app",
    level=Level.WARNING,
    title="MySQL connection character set is not utf8mb4",
    help="Add ?charset=utf8mb4 to DATABASE_URL: MySQL's 'utf8' (utf8mb3) and latin1 "
    "cannot store 4-byte characters (emoji, many CJK): they fail or turn into '?'.",
    requires=("app",),
    example="DATABASE_URL=mysql+mysqldb://app:...@db/app?charset=utf8",
)
def connection_charset(ctx: Context) -> Iterator[Finding]:
    app = _app(ctx)
    found = _mysql_url(_database_uri(app.config))
    if found is None:
        return
    driver, _, options = found
    charset = options.get("charset", "").lower()
    if charset == "utf8mb4" or (not charset and driver in _UTF8MB4_BY_DEFAULT):
        return
    said = f"charset={charset}" if charset else f"no charset, and {driver}'s default is not"
    yield connection_charset.finding(
        f"the app's MySQL connection is not utf8mb4 ({said}): 4-byte characters are "
        "lost or refused",
        file=app_file(ctx),
    )


@rule(
    "MDB003",
    layer="app",
    level=Level.ERROR,
    title="The app connects to MySQL as root",
    help="Create a user granted on the app's database only (CREATE USER 'app'@'%' ...; "
    "GRANT ALL ON app.* TO 'app'@'%') and put it in DATABASE_URL: as root, one SQL "
    "injection reads or drops every database on the server, and the app can change "
    "its settings.",
    requires=("app",),
    example="DATABASE_URL=mysql+pymysql://root:...@db/app",
)
def root_user(ctx: Context) -> Iterator[Finding]:
    app = _app(ctx)
    found = _mysql_url(_database_uri(app.config))
    if found is not None and found[1] == "root":
        yield root_user.finding("DATABASE_URL connects as MySQL's root user", file=app_file(ctx))


# -- the server's settings in compose ---------------------------------------------------


def _servers(ctx: Context) -> Iterator[tuple[ComposeFile, str, LineDict]]:
    for compose in parse_compose_files(ctx):
        if compose.error is not None:
            continue
        for name, service in compose.services.items():
            image = str(service.get("image") or "").lower().rsplit("/", 1)[-1]
            if image.startswith(_SERVER_IMAGES):
                yield compose, name, service


def _settings(service: LineDict) -> dict[str, str]:
    """mariadbd/mysqld options of the service's command (``--sql-mode=...``), with
    names normalised (``sql_mode``)."""
    command = service.get("command")
    words = command.split() if isinstance(command, str) else list(command or [])
    found: dict[str, str] = {}
    for index, word in enumerate(str(w) for w in words):
        match = re.match(r"^--([a-z][a-z0-9_-]*)(?:=(.*))?$", word)
        if match is None:
            continue
        value = match.group(2)
        if value is None and index + 1 < len(words) and not str(words[index + 1]).startswith("-"):
            value = str(words[index + 1])
        found[match.group(1).replace("-", "_")] = (value or "").strip("'\"")
    return found


@rule(
    "MDB004",
    layer="compose",
    level=Level.WARNING,
    title="MariaDB/MySQL without a strict SQL mode",
    help="Run the server with --sql-mode=STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION (MariaDB's default since 10.2.4; the kit's compose sets it): "
    "without STRICT_TRANS_TABLES a too-long string is truncated and a bad date stored as "
    "zeros, with only a warning.",
    example='db:\n  image: mariadb:10.11\n  command: ["--sql-mode=NO_ENGINE_SUBSTITUTION"]',
)
def sql_mode(ctx: Context) -> Iterator[Finding]:
    for compose, name, service in _servers(ctx):
        mode = _settings(service).get("sql_mode")
        if mode is not None and "STRICT_" not in mode.upper():
            yield sql_mode.finding(
                f"service {name!r} runs with sql_mode {mode or '(empty)'!r}: no strict "
                "mode, bad values are stored silently changed",
                file=ctx.relative(compose.path),
                line=compose.line(name, "command"),
            )


@rule(
    "MDB005",
    layer="compose",
    level=Level.WARNING,
    title="MariaDB/MySQL server character set is not utf8mb4",
    help="Run the server with --character-set-server=utf8mb4 "
    "--collation-server=utf8mb4_unicode_ci (the kit's compose does): tables created "
    "without a character set take the server's, and 'utf8' or latin1 cannot store "
    "4-byte characters.",
    example='db:\n  image: mariadb:10.11\n  command: ["--character-set-server=utf8"]',
)
def server_charset(ctx: Context) -> Iterator[Finding]:
    for compose, name, service in _servers(ctx):
        charset = _settings(service).get("character_set_server")
        if charset is not None and charset.lower() != "utf8mb4":
            yield server_charset.finding(
                f"service {name!r} runs with character_set_server {charset!r}, not utf8mb4",
                file=ctx.relative(compose.path),
                line=compose.line(name, "command"),
            )
