"""MariaDB/MySQL for backups: mariadb-dump, the client, and per-table stats.

``mariadb-dump --single-transaction`` reads every InnoDB table in one consistent
snapshot without locking the app out. That snapshot cannot be shared with another
session (PostgreSQL's ``--snapshot`` has no MariaDB counterpart), so the manifest's
row counts and checksums are read from the dump itself, as it streams into the
gzip file: they describe exactly what the backup holds. The dump has one row per
``INSERT`` line (``--skip-extended-insert``) with binary values in hex, so a row's
text is the same whichever server wrote it; a table's checksum is the sum (mod
2^256) of its rows' sha256, independent of row order (tables without a primary key
come back in any order). After a restore the database is dumped again the same way
and compared table by table.

The password never goes on a command line: the tools read it from a 0600 defaults
file in a private temp folder, removed after use.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from flaskprod.errors import EnvironmentProblem, ServiceFailed, VerificationFailed
from flaskprod.ops.database import Database
from flaskprod.ops.files import Progress, no_space
from flaskprod.ops.manifest import TableStats
from flaskprod.spec.mariadb import DUMP_OPTIONS
from flaskprod.stack.mariadb import quote_identifier, quote_string

INSTALL_HINT = "install it: apt-get install mariadb-client"
_MODULUS = 1 << 256
_INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES (.*);\r?\n?$", re.DOTALL)
_CREATE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)` \(")


def tool(*names: str) -> Path:
    """The first of ``names`` on PATH (mariadb-dump, else mysqldump)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EnvironmentProblem(f"{names[0]} not found on PATH", hint=INSTALL_HINT)


@contextlib.contextmanager
def defaults_file(db: Database) -> Iterator[str]:
    """``--defaults-extra-file=PATH`` holding the connection (and password), 0600."""
    folder = Path(tempfile.mkdtemp(prefix="flaskprod-my-"))
    path = folder / "client.cnf"
    lines = ["[client]", "default-character-set=utf8mb4"]
    if db.user:
        lines.append(f"user={_option(db.user)}")
    if db.password:
        lines.append(f"password={_option(db.password)}")
    socket = db.options.get("unix_socket") or db.options.get("socket")
    if socket:
        lines.append(f"socket={_option(socket)}")
    else:
        lines += [f"host={_option(db.host or '127.0.0.1')}", f"port={db.port}", "protocol=tcp"]
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        yield f"--defaults-extra-file={path}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _option(value: str) -> str:
    # my.cnf values: quoted, with backslash escapes
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0]


def query(db: Database, sql: str, *, database: str | None = None) -> list[list[str]]:
    """Rows of ``sql`` (tab-separated fields) run by the ``mariadb`` client as ``db``'s
    user; an unreachable server is a one-line error."""
    client = tool("mariadb", "mysql")
    with defaults_file(db) as defaults:
        argv = [str(client), defaults, "--batch", "--skip-column-names", "--raw"]
        if database:
            argv.append(f"--database={database}")
        result = subprocess.run(
            argv, input=sql, capture_output=True, text=True, timeout=120, check=False
        )
    if result.returncode != 0:
        raise EnvironmentProblem(
            f"MariaDB at {db.where} (database {database or db.dbname}): "
            f"{_first_error(result.stderr)}"
        )
    return [line.split("\t") for line in result.stdout.splitlines()]


def server_version(db: Database) -> str:
    return query(db, "SELECT VERSION();")[0][0]


def table_count(db: Database) -> int:
    """Tables and views in the database: 0 means empty."""
    rows = query(
        db,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE();",
        database=db.dbname,
    )
    return int(rows[0][0])


def database_exists(db: Database, name: str) -> bool:
    rows = query(db, f"SHOW DATABASES LIKE {quote_string(name)};")
    return any(row[0] == name for row in rows)


def create_database(db: Database, name: str, owner: str | None = None) -> None:
    """``CREATE DATABASE`` (utf8mb4) through ``db``; ``owner``: an existing user of
    the server granted on it (the app's user when restoring ``--into`` a new one)."""
    target = quote_identifier(name)
    sql = f"CREATE DATABASE {target} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    if owner and owner != db.user:
        account = quote_string(owner)
        select = f"SELECT Host FROM mysql.user WHERE User = {account};"  # noqa: S608 - quoted
        hosts = query(db, select)
        sql += "".join(
            f"GRANT ALL PRIVILEGES ON {target}.* TO {account}@{quote_string(row[0])};"
            for row in hosts
        )
    query(db, sql)


def drop_database(db: Database, name: str) -> None:
    query(db, f"DROP DATABASE IF EXISTS {quote_identifier(name)};")


@dataclass
class DumpStats:
    """Per-table rows and checksums read from a dump's lines (see the module)."""

    tables: dict[str, list[int]] = field(default_factory=dict)  # name -> [rows, sum]
    alembic: list[str] = field(default_factory=list)

    def feed(self, line: bytes) -> None:
        if line.startswith(b"INSERT INTO `"):
            match = _INSERT.match(line)
            if match is None:
                return
            name = match.group(1).replace(b"``", b"`").decode("utf-8", "replace")
            entry = self.tables.setdefault(name, [0, 0])
            digest = hashlib.sha256(match.group(2)).digest()
            entry[0] += 1
            entry[1] = (entry[1] + int.from_bytes(digest, "big")) % _MODULUS
            if name == "alembic_version":
                self.alembic.append(match.group(2).strip(b"()'").decode("utf-8", "replace"))
        elif line.startswith(b"CREATE TABLE `"):
            match = _CREATE.match(line)
            if match is not None:
                name = match.group(1).replace(b"``", b"`").decode("utf-8", "replace")
                self.tables.setdefault(name, [0, 0])

    def result(self) -> dict[str, TableStats]:
        return {
            name: TableStats(rows=rows, sha256=f"{total:064x}")
            for name, (rows, total) in sorted(self.tables.items())
        }

    @property
    def schema_revision(self) -> str | None:
        return ",".join(sorted(self.alembic)) or None


class _Dump:
    """``mariadb-dump`` of ``db``; its output read line by line (:meth:`lines`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._defaults = defaults_file(db)
        argv = [str(tool("mariadb-dump", "mysqldump")), self._defaults.__enter__()]
        self.proc = subprocess.Popen(
            [*argv, *DUMP_OPTIONS, db.dbname],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stderr = b""
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self._stderr = self.proc.stderr.read()

    def lines(self) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        yield from self.proc.stdout

    def finish(self) -> None:
        try:
            self.proc.wait()
            self._reader.join()
        finally:
            self._defaults.__exit__(None, None, None)
        if self.proc.returncode != 0:
            stderr = self._stderr.decode("utf-8", "replace")
            raise ServiceFailed(f"mariadb-dump of {self.db.dbname} failed: {_first_error(stderr)}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def dump(db: Database, out: Path, progress: Progress) -> DumpStats:
    """Dump ``db`` into the gzip file ``out``; the stats of exactly what was written."""
    stats = DumpStats()
    running = _Dump(db)
    written = 0
    try:
        with gzip.open(out, "wb", compresslevel=6) as handle:
            for line in running.lines():
                handle.write(line)
                stats.feed(line)
                written += len(line)
                if written % (1 << 20) < len(line):
                    progress.update(written)
        running.finish()
    except OSError as error:
        running.kill()
        if error.errno == 28:  # ENOSPC
            raise no_space(out.parent) from None
        raise
    except BaseException:
        running.kill()
        raise
    return stats


def current_stats(db: Database) -> DumpStats:
    """The stats of ``db`` as it is now: dumped the same way, nothing written."""
    stats = DumpStats()
    running = _Dump(db)
    try:
        for line in running.lines():
            stats.feed(line)
        running.finish()
    except BaseException:
        running.kill()
        raise
    return stats


def read_lines(path: Path) -> Iterable[bytes]:
    with gzip.open(path, "rb") as handle:
        yield from handle


def verify_archive(path: Path) -> DumpStats:
    """The gzip file reads to its end and holds a complete dump (mariadb-dump's
    last line); returns what it holds."""
    stats = DumpStats()
    last = b""
    try:
        for line in read_lines(path):
            stats.feed(line)
            if line.strip():
                last = line
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise VerificationFailed(f"{path.name} is not a readable gzip file: {error}") from None
    if not last.startswith(b"-- Dump completed"):
        raise VerificationFailed(f"{path.name} is cut short: no '-- Dump completed' at its end")
    return stats


def restore(db: Database, path: Path, progress: Progress) -> None:
    """Feed the dump to the ``mariadb`` client into ``db``. DDL commits on its own in
    MariaDB: a failure midway leaves the target partly restored (said in the error)."""
    client = tool("mariadb", "mysql")
    with defaults_file(db) as defaults:
        proc = subprocess.Popen(
            [str(client), defaults, "--batch", f"--database={db.dbname}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        stdin, stderr_pipe = proc.stdin, proc.stderr
        assert stdin is not None and stderr_pipe is not None
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(_read(stderr_pipe)), daemon=True)
        reader.start()
        fed = 0
        try:
            for line in read_lines(path):
                stdin.write(line)
                fed += len(line)
                if fed % (1 << 20) < len(line):
                    progress.tick("still restoring")
            stdin.close()
        except BrokenPipeError:
            pass  # the client stopped at an error: its message says which
        proc.wait()
        reader.join()
    if proc.returncode != 0:
        stderr = b"".join(errors).decode("utf-8", "replace")
        raise VerificationFailed(
            f"restore into {db.dbname} at {db.where} failed, the database may be partly "
            f"restored: {_first_error(stderr)}"
        )


def _read(stream: IO[bytes]) -> bytes:
    return stream.read()
