"""backup/restore of a MariaDB database on a real server (the suite's own MariaDB):
mariadb-dump --single-transaction, the manifest's per-table stats read from the dump,
the restore drill in a scratch database, a restore compared table by table, a damaged
dump refused before anything is touched, and the kit's backup.sh/restore.sh."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from flaskprod.kit.artifacts import artifacts_for
from flaskprod.kit.render import render_kit
from flaskprod.ops import mariadb as ops_mariadb
from flaskprod.ops.database import parse_url
from flaskprod.spec.model import Spec
from flaskprod.stack.mariadb import MariaDBServer

_numbers = itertools.count(1)
ROWS = 300
SCHEMA = """
CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(80) NOT NULL,
  avatar BLOB, joined DATETIME(6) NOT NULL, score DECIMAL(10,2)) ENGINE=InnoDB;
CREATE TABLE audit (what TEXT, at DOUBLE) ENGINE=InnoDB;
CREATE TABLE empty_one (id INT PRIMARY KEY) ENGINE=InnoDB;
CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('abc123');
"""


def spec() -> Spec:
    return Spec.model_validate(
        {"app": {"target": "app:app", "name": "shop"}, "database": {"engine": "mariadb"}}
    )


def fill(server: MariaDBServer) -> tuple[str, str]:
    """A database with awkward data (4-byte UTF-8, binary, NULLs, newlines and quotes,
    a table without a primary key holding duplicate rows); its app URL and name."""
    name = f"ops_{os.getpid()}_{next(_numbers)}"
    server.ensure_database(name, name, "pw'x")
    rows = ",".join(
        f"('user {i} \U0001f6a9 \\n \\'q\\'', UNHEX('00FF{i:04X}'), "
        f"'2026-01-02 03:04:05.{i:06d}', {i}.25)"
        for i in range(ROWS)
    )
    audit = ",".join(["('dup', 1.5)"] * 3 + ["(NULL, NULL)", "('é', 2.0)"])
    inserts = f"INSERT INTO users (name, avatar, joined, score) VALUES {rows};"  # noqa: S608
    audits = f"INSERT INTO audit VALUES {audit};"  # noqa: S608
    server.sql(SCHEMA + inserts + audits, database=name)
    return spec().database.url(name, "pw'x", "127.0.0.1", server.port, name), name


def checksums(server: MariaDBServer, database: str) -> dict[str, str]:
    """The server's own CHECKSUM TABLE of every table: independent of flaskprod's."""
    tables = [row[0] for row in server.sql("SHOW TABLES;", database=database)]
    found = server.sql(f"CHECKSUM TABLE {', '.join(f'`{t}`' for t in tables)};", database=database)
    return {row[0].split(".", 1)[1]: row[1] for row in found}


def test_backup_drop_restore_gives_identical_tables(
    mariadb_server: MariaDBServer, run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    url, name = fill(mariadb_server)
    before = checksums(mariadb_server, name)
    out = tmp_path / "backups"
    made = run_cli("backup", "--database-url", url, "--output", str(out), "--json")
    assert made.exit_code == 0, made.output
    summary = json.loads(made.stdout)["backup"]
    assert summary["path"].endswith(".sql.gz")
    assert summary["tables"] == {
        "alembic_version": 1,
        "audit": 5,
        "empty_one": 0,
        "users": ROWS,
    }
    assert summary["schema_revision"] == "abc123"
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["database_kind"] == "mariadb"
    assert manifest["tool"].endswith("--single-transaction")

    # the restore drill needs a server account that may create a scratch database
    mariadb_server.sql(f"GRANT ALL ON *.* TO '{name}'@'127.0.0.1';")
    drill = run_cli("backup", "--database-url", url, "--output", str(out), "--verify-restore")
    assert drill.exit_code == 0, drill.output
    assert "restore drill passed: 4 tables, 306 rows" in drill.stderr
    assert mariadb_server.databases().count(name) == 1  # the scratch copy is gone
    assert not [db for db in mariadb_server.databases() if db.startswith("flaskprod_verify")]

    mariadb_server.sql(f"DROP DATABASE `{name}`; CREATE DATABASE `{name}`;")
    restored = run_cli("restore", summary["path"], "--database-url", url, "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["differences"] == []
    assert "identical to the manifest" in restored.stderr
    assert checksums(mariadb_server, name) == before

    # over data: refused without --yes (exit 5), replaced with it
    again = run_cli("restore", summary["path"], "--database-url", url)
    assert again.exit_code == 5 and "is not empty" in again.stderr
    mariadb_server.sql("DELETE FROM users WHERE id < 10;", database=name)
    replaced = run_cli("restore", summary["path"], "--database-url", url, "--yes")
    assert replaced.exit_code == 0, replaced.output
    assert checksums(mariadb_server, name) == before


def test_a_changed_row_is_named_and_a_damaged_dump_is_refused(
    mariadb_server: MariaDBServer, run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    url, name = fill(mariadb_server)
    made = run_cli("backup", "--database-url", url, "--output", str(tmp_path), "--json")
    path = Path(json.loads(made.stdout)["backup"]["path"])
    db = parse_url(url)
    stats = ops_mariadb.current_stats(db).result()
    mariadb_server.sql("UPDATE users SET score = 0 WHERE id = 5;", database=name)
    changed = ops_mariadb.current_stats(db).result()
    assert changed["users"].rows == stats["users"].rows
    assert changed["users"].sha256 != stats["users"].sha256
    assert changed["audit"] == stats["audit"]

    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    before = checksums(mariadb_server, name)
    refused = run_cli("restore", str(path), "--database-url", url, "--yes")
    assert refused.exit_code == 6
    assert "checksum mismatch" in refused.stderr and "Traceback" not in refused.output
    assert checksums(mariadb_server, name) == before  # nothing touched


def test_the_kits_scripts_back_up_and_restore_mariadb(
    mariadb_server: MariaDBServer, run_cli: Callable[..., Result], tmp_path: Path
) -> None:
    url, name = fill(mariadb_server)
    files = render_kit(spec())
    assert {a.output for a in artifacts_for(spec())} >= {"deploy/mariadb/shop.cnf"}
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for script in ("backup.sh", "restore.sh"):
        (scripts / script).write_text(files[f"deploy/scripts/{script}"])
    out = tmp_path / "kit-backups"
    env = {**os.environ, "DATABASE_URL": url, "BACKUP_DIR": str(out)}
    done = subprocess.run(
        ["bash", str(scripts / "backup.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (dump,) = out.glob("shop-*.sql.gz")
    assert gzip.decompress(dump.read_bytes()).rstrip().splitlines()[-1].startswith(b"-- Dump")
    # the script's password went through a 0600 file, never argv: nothing left behind
    assert "pw'x" not in done.stdout + done.stderr

    # flaskprod restore reads the script's backup (no manifest: checksum, then read back)
    copy = f"{name}_copy"
    mariadb_server.sql(
        f"CREATE DATABASE `{copy}`; GRANT ALL ON `{copy}`.* TO '{name}'@'127.0.0.1';"
    )
    target = url.replace(f"/{name}?", f"/{copy}?")
    restored = run_cli("restore", str(dump), "--database-url", target)
    assert restored.exit_code == 0, restored.output
    assert checksums(mariadb_server, copy) == checksums(mariadb_server, name)

    # and the kit's restore.sh into another new database
    other = f"{name}_sh"
    mariadb_server.sql(
        f"CREATE DATABASE `{other}`; GRANT ALL ON `{other}`.* TO '{name}'@'127.0.0.1';"
    )
    back = subprocess.run(
        ["bash", str(scripts / "restore.sh"), str(dump), other],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert back.returncode == 0, back.stderr
    assert "matches its checksum" in back.stdout
    assert checksums(mariadb_server, other) == checksums(mariadb_server, name)
    refused = subprocess.run(
        ["bash", str(scripts / "restore.sh"), str(dump), other],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "already holds 4 tables" in refused.stderr


@pytest.mark.parametrize(
    ("url", "kind", "port"),
    [
        ("mysql+pymysql://u:p%40ss@db:3307/app?charset=utf8mb4", "mariadb", 3307),
        ("mariadb+mariadbconnector://u@localhost/app", "mariadb", 3306),
    ],
)
def test_mysql_urls_are_understood(url: str, kind: str, port: int) -> None:
    db = parse_url(url)
    assert (db.kind, db.port, db.dbname) == (kind, port, "app")
