"""The rendered backup and restore scripts, run for real against the suite's throwaway
PostgreSQL: a verified custom-format dump, retention by age that keeps the newest,
nothing left behind by a failed dump, and a restore into a new database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flaskprod.stack.postgres import find_bin_dir


def libpq_url(url: str) -> str:
    return url.replace("+psycopg", "")


@pytest.fixture
def script_env(tmp_path: Path, postgres_url: str) -> dict[str, str]:
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
        conn.execute("INSERT INTO orders (note) SELECT 'order ' || n FROM generate_series(1, 50) n")
    path = f"{find_bin_dir()}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {
        "PATH": path,
        "DATABASE_URL": postgres_url,  # the app's SQLAlchemy URL, as in the env file
        "BACKUP_DIR": str(tmp_path / "backups"),
    }


def run(kit: Any, script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kit.path(f"deploy/scripts/{script}")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def dumps(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.dump"))


def test_backup_writes_a_verified_dump(kit: Any, script_env: dict[str, str]) -> None:
    result = run(kit, "backup.sh", script_env)
    assert result.returncode == 0, result.stderr
    folder = Path(script_env["BACKUP_DIR"])
    (dump,) = dumps(folder)
    assert dump.name.startswith(f"{kit.spec.app.name}-")
    assert not list(folder.glob("*.partial"))
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format
    assert dump.stat().st_mode & 0o077 == 0  # umask 077: nobody else reads backups


def test_backup_retention_keeps_the_newest(kit: Any, script_env: dict[str, str]) -> None:
    folder = Path(script_env["BACKUP_DIR"])
    folder.mkdir()
    name = kit.spec.app.name
    now = time.time()
    ages = {"a": 50, "b": 45, "c": 40, "d": 5}  # days
    for tag, days in ages.items():
        old = folder / f"{name}-2000010{ord(tag) - 96}T000000Z.dump"
        old.write_bytes(b"PGDMP old")
        os.utime(old, (now - days * 86400, now - days * 86400))
    unrelated = folder / "notes.txt"
    unrelated.write_text("keep me")
    env = {**script_env, "BACKUP_KEEP": "2", "BACKUP_MAX_AGE_DAYS": "30"}
    result = run(kit, "backup.sh", env)
    assert result.returncode == 0, result.stderr
    left = {p.name for p in dumps(folder)}
    # newest two kept whatever their age (the new dump and "d"); then only the young
    # ones survive: a, b and c are older than 30 days
    assert len(left) == 2 and f"{name}-20000104T000000Z.dump" in left
    assert unrelated.exists()
    assert result.stdout.count("removed") == 3


def test_failed_dump_leaves_nothing(kit: Any, script_env: dict[str, str]) -> None:
    env = {**script_env, "DATABASE_URL": script_env["DATABASE_URL"] + "_missing"}
    result = run(kit, "backup.sh", env)
    assert result.returncode != 0
    folder = Path(script_env["BACKUP_DIR"])
    assert not dumps(folder) and not list(folder.glob("*.partial"))


def test_backup_needs_database_url(kit: Any, script_env: dict[str, str]) -> None:
    env = {k: v for k, v in script_env.items() if k != "DATABASE_URL"}
    result = run(kit, "backup.sh", env)
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def test_restore_into_a_new_database(
    kit: Any, script_env: dict[str, str], postgres_cluster: Any
) -> None:
    assert run(kit, "backup.sh", script_env).returncode == 0
    (dump,) = dumps(Path(script_env["BACKUP_DIR"]))
    target = f"restored_{os.getpid()}_{time.monotonic_ns() % 100000}"
    try:
        result = run(kit, "restore.sh", script_env, str(dump), target)
        assert result.returncode == 0, result.stderr
        with psycopg.connect(libpq_url(postgres_cluster.url(target))) as conn:
            count = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert count == (50,)
        # a second restore to the same name refuses: never over an existing database
        again = run(kit, "restore.sh", script_env, str(dump), target)
        assert again.returncode != 0
        assert "already exists" in again.stderr
    finally:
        postgres_cluster.drop_database(target)


def test_restore_rejects_a_corrupt_dump(
    kit: Any, script_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"not a dump")
    result = run(kit, "restore.sh", script_env, str(bad), "never_created")
    assert result.returncode != 0
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


def test_sqlite_backup_and_restore(sqlite_kit: Any, tmp_path: Path) -> None:
    database = tmp_path / "live.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany("INSERT INTO orders (note) VALUES (?)", [(f"o{n}",) for n in range(50)])
    conn.close()
    env = sqlite_env(tmp_path, database)
    result = run(sqlite_kit, "backup.sh", env)
    assert result.returncode == 0, result.stderr
    (backup,) = dumps(tmp_path / "backups")
    target = tmp_path / "restored.sqlite3"
    result = run(sqlite_kit, "restore.sh", env, str(backup), str(target))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (50,)
    conn.close()
    again = run(sqlite_kit, "restore.sh", env, str(backup), str(target))
    assert again.returncode != 0 and "already exists" in again.stderr


def test_sqlite_backup_of_a_broken_file_leaves_nothing(sqlite_kit: Any, tmp_path: Path) -> None:
    database = tmp_path / "broken.sqlite3"
    database.write_bytes(b"this is not a database" * 100)
    result = run(sqlite_kit, "backup.sh", sqlite_env(tmp_path, database))
    assert result.returncode != 0
    folder = tmp_path / "backups"
    assert not dumps(folder) and not list(folder.glob("*.partial"))
