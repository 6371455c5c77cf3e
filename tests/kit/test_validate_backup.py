"""The rendered backup and restore scripts, run for real against the suite's throwaway
PostgreSQL and real SQLite files. They write the format of ``flaskprod backup``
(``<app>-<UTC stamp>.dump`` / ``.sqlite3`` plus a ``.sha256``), so ``flaskprod
restore`` restores their backups row for row; their retention removes exactly what
``flaskprod backup``'s does on the same folder; nothing is left behind by a failed
dump; ``restore.sh`` checks the checksum before it touches anything."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from kit_tools import run_script as run  # the kit's deploy/scripts/*.sh

from flaskprod.cli import cli
from flaskprod.ops.backup import make_backup
from flaskprod.ops.database import parse_url
from flaskprod.ops.files import folder_lock
from flaskprod.ops.manifest import list_backups, read_checksums, stamp
from flaskprod.stack.postgres import PostgresCluster, find_bin_dir


def libpq_url(url: str) -> str:
    return url.replace("+psycopg", "")


# Values whose text form is easy to get wrong: time zones, numerics, bytes, JSON,
# NULLs, quotes and non-ASCII; one table without a primary key.
SCHEMA = """
CREATE TABLE orders (
    id serial PRIMARY KEY, note text, amount numeric(10, 2), at timestamptz,
    data bytea, tags jsonb
);
INSERT INTO orders (note, amount, at, data, tags)
SELECT 'order ' || n || ' / Ünïcode, O''Brien', n * 1.25,
       '2026-01-01 10:00+02'::timestamptz + n * interval '1 hour',
       decode(lpad(to_hex(n), 4, '0'), 'hex'), jsonb_build_object('n', n)
FROM generate_series(1, 50) n;
INSERT INTO orders (note) VALUES (NULL);
CREATE TABLE events (kind text, happened date);
INSERT INTO events VALUES ('signup', '2026-11-01'), ('signup', '2026-11-01'), ('buy', NULL);
"""


def pg_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return {
            "orders": conn.execute("SELECT * FROM orders ORDER BY id").fetchall(),
            "events": conn.execute("SELECT * FROM events ORDER BY 1, 2").fetchall(),
        }


@pytest.fixture
def script_env(tmp_path: Path, postgres_url: str) -> dict[str, str]:
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        conn.execute(SCHEMA)
    path = f"{find_bin_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {
        "PATH": path,
        "DATABASE_URL": postgres_url,  # the app's SQLAlchemy URL, as in the env file
        "BACKUP_DIR": str(tmp_path / "backups"),
    }


def dumps(folder: Path) -> list[Path]:
    """The database files of backups (not the hidden temp files)."""
    return sorted(
        p for p in folder.glob("*") if p.suffix in (".dump", ".sqlite3") and p.name[0] != "."
    )


def leftovers(folder: Path) -> list[Path]:
    """Temp files (the lock file is meant to stay)."""
    return [p for p in folder.glob(".*") if not p.name.endswith(".lock")]


@pytest.fixture
def flaskprod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``flaskprod ARGS`` in-process, from an empty folder, without the caller's
    DATABASE_URL / FLASKPROD_* environment."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def invoke(*args: str) -> Result:
        clean = {"DATABASE_URL": None, "FLASKPROD_STATE_DIR": None, "MEDIA_ROOT": None}
        return CliRunner().invoke(cli, list(args), env=clean, catch_exceptions=False)

    return invoke


@pytest.fixture
def scratch_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    name = f"restored_{os.getpid()}_{time.monotonic_ns() % 1000000}"
    yield name
    postgres_cluster.resume()
    postgres_cluster.drop_database(name)


def test_backup_writes_a_verified_dump_and_its_checksum(
    kit: Any, script_env: dict[str, str]
) -> None:
    result = run(kit, "backup.sh", script_env)
    assert result.returncode == 0, result.stderr
    folder = Path(script_env["BACKUP_DIR"])
    (dump,) = dumps(folder)
    name = kit.spec.app.name
    assert dump.name.startswith(f"{name}-") and dump.suffix == ".dump"
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format
    assert dump.stat().st_mode & 0o077 == 0  # umask 077: nobody else reads backups
    # The .sha256 in sha256sum format, as flaskprod writes and reads it; no manifest.
    sums = dump.with_suffix(".sha256")
    digest = hashlib.sha256(dump.read_bytes()).hexdigest()
    assert sums.read_text() == f"{digest}  {dump.name}\n"
    assert read_checksums(sums) == {dump.name: digest}
    check = subprocess.run(["sha256sum", "-c", sums.name], cwd=folder, capture_output=True)
    assert check.returncode == 0, check.stderr
    assert not list(folder.glob("*.json")) and not leftovers(folder)
    # flaskprod counts it as a backup (retention, the host check HST012).
    (listed,) = list_backups(folder, name)
    assert listed.database_path == dump and not listed.has_manifest


def test_flaskprod_restore_reads_a_script_dump_row_for_row(
    kit: Any, script_env: dict[str, str], flaskprod: Any, scratch_database: str
) -> None:
    assert run(kit, "backup.sh", script_env).returncode == 0
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    url = script_env["DATABASE_URL"]
    result = flaskprod("restore", str(dump), "--database-url", url, "--into", scratch_database)
    assert result.exit_code == 0, result.stderr
    assert "row counts could not be compared" in result.stderr
    assert "sha256 matched" in result.stderr
    restored = url.rsplit("/", 1)[0] + f"/{scratch_database}"
    assert pg_rows(restored) == pg_rows(url)
    assert len(pg_rows(restored)["orders"]) == 51


def test_flaskprod_restore_without_a_checksum_says_so(
    kit: Any, script_env: dict[str, str], flaskprod: Any, scratch_database: str
) -> None:
    assert run(kit, "backup.sh", script_env).returncode == 0
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    dump.with_suffix(".sha256").unlink()  # e.g. a dump by the old backup.sh
    url = script_env["DATABASE_URL"]
    result = flaskprod("restore", str(dump), "--database-url", url, "--into", scratch_database)
    assert result.exit_code == 0, result.stderr
    assert "checksum was NOT verified" in result.stderr
    assert pg_rows(url.rsplit("/", 1)[0] + f"/{scratch_database}") == pg_rows(url)


def test_a_damaged_script_dump_is_refused_by_both_restores(
    kit: Any,
    script_env: dict[str, str],
    flaskprod: Any,
    scratch_database: str,
    postgres_cluster: PostgresCluster,
) -> None:
    assert run(kit, "backup.sh", script_env).returncode == 0
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    url = script_env["DATABASE_URL"]
    result = flaskprod("restore", str(dump), "--database-url", url, "--into", scratch_database)
    assert result.exit_code == 6 and "checksum mismatch" in result.stderr
    script = run(kit, "restore.sh", script_env, str(dump), scratch_database)
    assert script.returncode == 6 and "damaged" in script.stderr
    with postgres_cluster.connect() as conn:  # neither created the target
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (scratch_database,)
        ).fetchone()
    assert row is None


@pytest.mark.parametrize("driver", ["psycopg2", "pg8000"])
def test_backup_reads_any_drivers_url(kit: Any, script_env: dict[str, str], driver: str) -> None:
    """database.driver names the scheme (postgresql+psycopg2://): libpq gets it without."""
    url = script_env["DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://")
    env = {**script_env, "DATABASE_URL": url.replace("+psycopg://", f"+{driver}://", 1)}
    result = run(kit, "backup.sh", env)
    assert result.returncode == 0, result.stderr
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    assert dump.read_bytes()[:5] == b"PGDMP"


def test_failed_dump_leaves_nothing(kit: Any, script_env: dict[str, str]) -> None:
    env = {**script_env, "DATABASE_URL": script_env["DATABASE_URL"] + "_missing"}
    result = run(kit, "backup.sh", env)
    assert result.returncode != 0
    folder = Path(script_env["BACKUP_DIR"])
    assert not dumps(folder) and not list(folder.glob("*.sha256")) and not leftovers(folder)


def test_a_dead_writers_temp_file_is_removed(kit: Any, script_env: dict[str, str]) -> None:
    folder = Path(script_env["BACKUP_DIR"])
    folder.mkdir()
    name = kit.spec.app.name
    gone = subprocess.Popen(["true"])  # a pid that has ended
    gone.wait()
    stale = folder / f".{name}-20260101T000000Z.dump.{gone.pid}.tmp"
    stale.write_bytes(b"PGDMP half")
    alive = folder / f".{name}-20260101T000000Z.dump.{os.getpid()}.tmp"
    alive.write_bytes(b"PGDMP being written")
    assert run(kit, "backup.sh", script_env).returncode == 0
    assert not stale.exists() and alive.exists()


def test_the_password_stays_off_command_lines(
    kit: Any, script_env: dict[str, str], tmp_path: Path, scratch_database: str
) -> None:
    # Recording stand-ins in front of the real tools: each logs its argv and the
    # PGPASSWORD it got, then runs the real one (the suite's server trusts loopback,
    # so the backup and restore work whatever the password).
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("pg_dump", "pg_restore", "createdb"):
        stand_in = stand_ins / tool
        stand_in.write_text(
            f'#!/bin/sh\nprintf "%s %s PGPASSWORD=%s\\n" "${{0##*/}}" "$*" "$PGPASSWORD" >>{log}\n'
            f'exec {find_bin_dir()}/{tool} "$@"\n'
        )
        stand_in.chmod(0o755)
    password = "p@ss:w/rd%"
    url = script_env["DATABASE_URL"].replace("://postgres@", "://postgres:p%40ss%3Aw%2Frd%25@")
    env = {**script_env, "DATABASE_URL": url, "PATH": f"{stand_ins}:{script_env['PATH']}"}
    assert run(kit, "backup.sh", env).returncode == 0
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    result = run(kit, "restore.sh", env, str(dump), scratch_database)
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    tools = [call.split()[0] for call in calls]
    # pg_dump, its 2 checks; restore: pg_restore --list, createdb, pg_restore
    assert tools == ["pg_dump", "pg_restore", "pg_restore", "pg_restore", "createdb", "pg_restore"]
    for call in calls:
        argv, _, secret = call.rpartition(" PGPASSWORD=")
        assert "p%40ss" not in argv and "p@ss" not in argv, call
        assert secret == password, call


def test_the_script_waits_for_flaskprods_folder_lock(kit: Any, script_env: dict[str, str]) -> None:
    folder = Path(script_env["BACKUP_DIR"])
    folder.mkdir()
    script = kit.path("deploy/scripts/backup.sh")
    with folder_lock(folder, kit.spec.app.name):  # what `flaskprod backup` holds
        proc = subprocess.Popen(
            [str(script)], env=script_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)  # blocked on flock: nothing written meanwhile
            assert not dumps(folder)
        except BaseException:
            proc.kill()
            raise
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert len(dumps(folder)) == 1


def test_backup_needs_database_url(kit: Any, script_env: dict[str, str]) -> None:
    env = {k: v for k, v in script_env.items() if k != "DATABASE_URL"}
    result = run(kit, "backup.sh", env)
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def test_restore_into_a_new_database(
    kit: Any, script_env: dict[str, str], postgres_cluster: PostgresCluster, scratch_database: str
) -> None:
    assert run(kit, "backup.sh", script_env).returncode == 0
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    result = run(kit, "restore.sh", script_env, str(dump), scratch_database)
    assert result.returncode == 0, result.stderr
    assert "matches its checksum" in result.stdout
    assert pg_rows(postgres_cluster.url(scratch_database)) == pg_rows(script_env["DATABASE_URL"])
    # a second restore to the same name refuses: never over an existing database
    again = run(kit, "restore.sh", script_env, str(dump), scratch_database)
    assert again.returncode != 0
    assert "already exists" in again.stderr


def test_restore_rejects_a_corrupt_dump(
    kit: Any, script_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"not a dump")
    result = run(kit, "restore.sh", script_env, str(bad), "never_created")
    assert result.returncode != 0
    assert "checksum is NOT verified" in result.stderr  # no .sha256 beside it
    usage = run(kit, "restore.sh", script_env)
    assert usage.returncode == 2 and "usage" in usage.stderr


# ---- SQLite: the same scripts, rendered for a spec with database.engine = "sqlite" ----


@pytest.fixture(scope="module")
def sqlite_kit(make_kit: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_kit(
        tmp_path_factory.mktemp("sqlite-kit"),
        {"database": {"engine": "sqlite"}, "redis": {"enabled": False}},
        {"uses_redis": False},
    )


def sqlite_env(tmp_path: Path, database: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"sqlite:///{database}",  # four slashes: an absolute path
        "BACKUP_DIR": str(tmp_path / "backups"),
        "PYTHON": sys.executable,
    }


def sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT * FROM orders ORDER BY id").fetchall()
    conn.close()
    return rows


@pytest.fixture
def live_sqlite(tmp_path: Path) -> Path:
    database = tmp_path / "live.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # as apps often run it
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT, x REAL, b BLOB)")
        conn.executemany(
            "INSERT INTO orders (note, x, b) VALUES (?, ?, ?)",
            [(f"o{n} Ünï", n / 3, bytes([n])) for n in range(50)] + [(None, None, None)],
        )
    conn.close()
    return database


def test_sqlite_backup_and_restore(sqlite_kit: Any, tmp_path: Path, live_sqlite: Path) -> None:
    env = sqlite_env(tmp_path, live_sqlite)
    result = run(sqlite_kit, "backup.sh", env)
    assert result.returncode == 0, result.stderr
    (backup,) = dumps(tmp_path / "backups")
    assert backup.suffix == ".sqlite3"  # not .dump: the name says what it is
    assert backup.read_bytes()[:16] == b"SQLite format 3\x00"
    assert not (tmp_path / "backups" / f"{backup.name}-wal").exists()
    target = tmp_path / "restored.sqlite3"
    result = run(sqlite_kit, "restore.sh", env, str(backup), str(target))
    assert result.returncode == 0, result.stderr
    assert "matches its checksum" in result.stdout
    assert sqlite_rows(target) == sqlite_rows(live_sqlite)
    again = run(sqlite_kit, "restore.sh", env, str(backup), str(target))
    assert again.returncode != 0 and "already exists" in again.stderr


def test_flaskprod_restore_reads_a_script_sqlite_copy(
    sqlite_kit: Any, tmp_path: Path, live_sqlite: Path, flaskprod: Any
) -> None:
    assert run(sqlite_kit, "backup.sh", sqlite_env(tmp_path, live_sqlite)).returncode == 0
    (backup,) = dumps(tmp_path / "backups")
    target = tmp_path / "restored.sqlite3"
    result = flaskprod("restore", str(backup), "--into", str(target))
    assert result.exit_code == 0, result.stderr
    assert "row counts could not be compared" in result.stderr
    assert sqlite_rows(target) == sqlite_rows(live_sqlite)
    assert len(sqlite_rows(target)) == 51


def test_sqlite_restore_sh_refuses_a_damaged_copy(
    sqlite_kit: Any, tmp_path: Path, live_sqlite: Path
) -> None:
    env = sqlite_env(tmp_path, live_sqlite)
    assert run(sqlite_kit, "backup.sh", env).returncode == 0
    (backup,) = dumps(tmp_path / "backups")
    with backup.open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\xff")
    target = tmp_path / "restored.sqlite3"
    result = run(sqlite_kit, "restore.sh", env, str(backup), str(target))
    assert result.returncode == 6 and "damaged" in result.stderr
    assert not target.exists()


def test_sqlite_backup_of_a_broken_file_leaves_nothing(sqlite_kit: Any, tmp_path: Path) -> None:
    database = tmp_path / "broken.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    result = run(sqlite_kit, "backup.sh", sqlite_env(tmp_path, database))
    assert result.returncode != 0
    folder = tmp_path / "backups"
    assert not dumps(folder) and not list(folder.glob("*.sha256")) and not leftovers(folder)


# ---- one retention rule: the script and `flaskprod backup` on the same folder ----


def test_script_and_flaskprod_retention_remove_the_same_backups(
    sqlite_kit: Any, tmp_path: Path, live_sqlite: Path, flaskprod: Any
) -> None:
    name = sqlite_kit.spec.app.name
    url = f"sqlite:///{live_sqlite}"
    now = datetime.now(UTC).replace(microsecond=0)
    fixture = tmp_path / "fixture"
    # Backups by flaskprod (manifest + .sha256) and by the script (.sha256 only), with
    # ages on both sides of 30 days by an hour: find -mtime +30 would keep 30 d + 1 h.
    for age in (timedelta(days=45), timedelta(days=30, hours=1), timedelta(days=2)):
        make_backup(parse_url(url), app=name, folder=fixture, now=now - age)
    made = tmp_path / "made"
    made_env = {**sqlite_env(tmp_path, live_sqlite), "BACKUP_DIR": str(made)}
    assert run(sqlite_kit, "backup.sh", made_env).returncode == 0
    (copy,) = dumps(made)
    for age in (timedelta(days=40), timedelta(days=30) - timedelta(hours=1)):
        old = f"{name}-{stamp(now - age)}"
        shutil.copyfile(copy, fixture / f"{old}.sqlite3")
        digest = hashlib.sha256(copy.read_bytes()).hexdigest()
        (fixture / f"{old}.sha256").write_text(f"{digest}  {old}.sqlite3\n")
    # Never touched: a dump without .sha256 (the old script's), a .sha256 without its
    # database file, another app's backup, an unrelated file.
    strays = [f"{name}-20000101T000000Z.dump", f"{name}-20000102T000000Z.sha256"]
    strays += ["other-20000101T000000Z.sqlite3", "other-20000101T000000Z.sha256", "notes.txt"]
    for stray in strays:
        (fixture / stray).write_text("x")
    before = {p.name for p in fixture.iterdir() if p.name[0] != "."}

    by_script, by_flaskprod = tmp_path / "a", tmp_path / "b"
    shutil.copytree(fixture, by_script)
    shutil.copytree(fixture, by_flaskprod)
    env = {**sqlite_env(tmp_path, live_sqlite), "BACKUP_DIR": str(by_script)}
    script = run(sqlite_kit, "backup.sh", {**env, "BACKUP_KEEP": "2", "BACKUP_MAX_AGE_DAYS": "30"})
    assert script.returncode == 0, script.stderr
    project = tmp_path / "project"
    project.mkdir()
    (project / "flaskprod.toml").write_text(f'[app]\ntarget = "app:app"\nname = "{name}"\n')
    result = flaskprod(
        *("backup", str(project), "--database-url", url, "--output", str(by_flaskprod)),
        *("--keep", "2", "--max-age", "30", "--no-media"),
    )
    assert result.exit_code == 0, result.stderr

    def kept(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir()} & before

    gone_stamps = {stamp(now - timedelta(days=d, hours=h)) for d, h in ((45, 0), (30, 1), (40, 0))}
    expected = {n for n in before if not any(s in n for s in gone_stamps)}
    assert kept(by_script) == kept(by_flaskprod) == expected
    assert len(before - expected) == 3 + 3 + 2  # two flaskprod backups (3 files), one script's
    assert script.stdout.count("removed") == 3
    assert result.stderr.count("removed") == 3
    # Each made one new backup, and each tool counts the other's.
    for folder in (by_script, by_flaskprod):
        listed = list_backups(folder, name)
        assert len(listed) == 3 and listed[0].manifest.created >= now  # new, 2 d, 30 d - 1 h


def test_the_script_copies_the_backup_off_the_host_and_restore_takes_it_back(
    make_kit: Any,
    tmp_path: Path,
    script_env: dict[str, str],
    s3_env: dict[str, str],
    flaskprod: Any,
    scratch_database: str,
) -> None:
    """storage.kind = "s3": backup.sh copies the verified dump and its .sha256 to the
    bucket, signed by curl (no Python: a database host has no release of the app); a
    wrong key fails the unit and keeps the backup here; with the host's folder gone,
    ``flaskprod restore --from-s3 latest`` takes it back (checksum checked) row for row."""
    from flaskprod.runtime.storage import s3_client

    kit = make_kit(tmp_path / "s3kit", {"storage": {"kind": "s3"}})
    app = kit.spec.app.name
    refused = run(kit, "backup.sh", script_env | s3_env | {"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert refused.returncode != 0, refused.stdout
    assert "The requested URL returned error: 403" in refused.stderr, refused.stderr
    assert "wrong" not in refused.stderr  # the key never printed
    assert len(dumps(Path(script_env["BACKUP_DIR"]))) == 1  # kept here
    shutil.rmtree(script_env["BACKUP_DIR"])
    result = run(kit, "backup.sh", script_env | s3_env)
    assert result.returncode == 0, result.stderr
    assert f"backup: copied to s3://shop-media/backups/{app}/ (2 files" in result.stdout
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    listed = s3_client(s3_env).list_objects_v2(Bucket="shop-media", Prefix=f"backups/{app}/")
    names = {item["Key"].rsplit("/", 1)[1] for item in listed["Contents"]}
    assert {dump.name, dump.with_suffix(".sha256").name} <= names
    shutil.rmtree(script_env["BACKUP_DIR"])  # the host is gone
    project = tmp_path / app  # no spec: the app's name is the folder's
    project.mkdir()
    url = script_env["DATABASE_URL"]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_env.items():
            patch.setenv(name, value)
        restored = flaskprod(
            "restore", "--from-s3", "latest", "--database-url", url, "--into",
            scratch_database, "--project", str(project),
        )  # fmt: skip
    assert restored.exit_code == 0, restored.stderr
    assert f"restore: fetched {dump.stem} from s3://shop-media/" in restored.stderr
    assert "sha256 matched" in restored.stderr
    assert pg_rows(url.rsplit("/", 1)[0] + f"/{scratch_database}") == pg_rows(url)
