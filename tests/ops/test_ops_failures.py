"""What goes wrong: damaged backups, missing or old tools, no space, a dead server,
a backup killed halfway. Each ends in one line, its exit code, and no file under a
final name."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from ops_helpers import ShopData, table_rows

from flaskprod.errors import EnvironmentProblem
from flaskprod.ops.pgtools import find_tools, for_server
from flaskprod.stack.ports import free_port

FLASKPROD = Path(sys.executable).with_name("flaskprod")


def _final_files(folder: Path) -> list[str]:
    """Files under final (non-hidden) names."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _leftovers(folder: Path) -> list[str]:
    """Everything in ``folder`` but the backup lock (an empty file, kept on purpose)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def _flip_a_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_damaged_backup_is_refused_before_anything_changes(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    shop: ShopData = request.getfixturevalue(f"shop_{kind}")
    made = run_cli("backup", "--database-url", shop.url, "--output", str(tmp_path / "b"))
    assert made.exit_code == 0, made.stderr
    path = Path(made.stdout.strip())
    _flip_a_byte(path, path.stat().st_size // 2)
    before = table_rows(shop.url)

    result = run_cli("restore", str(path), "--database-url", shop.url, "--yes")
    assert result.exit_code == 6, result.stderr
    assert "checksum mismatch" in result.stderr and path.name in result.stderr
    assert "Traceback" not in result.stderr
    assert table_rows(shop.url) == before


def test_no_pg_dump_is_exit_3_naming_what_to_install(
    shop_postgres: ShopData, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    bogus = tmp_path / "no-such-bin"
    result = run_cli(
        *("backup", "--database-url", shop_postgres.url, "--output", str(tmp_path / "b")),
        env={"FLASKPROD_PG_BIN": str(bogus)},
    )
    assert result.exit_code == 3, result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert "pg_dump and pg_restore not found" in result.stderr and str(bogus) in result.stderr
    assert "apt-get install postgresql-client" in result.stderr
    assert not (tmp_path / "b").exists() or _final_files(tmp_path / "b") == []
    # The same with PATH as the only place to look and no pg_dump on it.
    with pytest.raises(EnvironmentProblem, match="pg_dump and pg_restore not found"):
        find_tools([tmp_path])


def test_a_server_newer_than_pg_dump_names_both_versions() -> None:
    tools = find_tools()
    newest = tools[0]
    with pytest.raises(EnvironmentProblem) as raised:
        for_server(tools, newest.major + 1, f"{newest.major + 1}.2")
    message = str(raised.value)
    assert f"server is version {newest.major + 1}.2" in message
    assert f"pg_dump found is {newest.version}" in message
    assert f"postgresql-client-{newest.major + 1}" in message
    assert for_server(tools, newest.major, f"{newest.major}.0") == newest


def test_an_unreachable_server_is_one_line_with_host_and_port(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    port = free_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/shop"
    result = run_cli("backup", "--database-url", url, "--output", str(tmp_path / "b"))
    assert result.exit_code == 3, result.stderr
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port} (database shop)" in result.stderr
    assert "refused" in result.stderr.lower()  # the driver's own first line
    assert result.stderr.count("\n") == 1
    assert _leftovers(tmp_path / "b") == []


def _wrapper_bin(folder: Path, after_dump: str) -> Path:
    """A bin folder whose pg_dump runs the real one, then ``after_dump`` (shell) with
    $f = the output file: a fault injected into a real dump."""
    real = find_tools()[0].bin_dir
    folder.mkdir()
    script = folder / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'"{real}/pg_dump" "$@" || exit $?\n'
        'f=""\nfor a in "$@"; do case $a in --file=*) f=${a#--file=};; esac; done\n'
        f'if [ -n "$f" ]; then {after_dump}; fi\n'
    )
    script.chmod(0o755)
    (folder / "pg_restore").symlink_to(real / "pg_restore")
    return folder


def test_a_truncated_dump_fails_verification_and_is_removed(
    shop_postgres: ShopData, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    bin_dir = _wrapper_bin(tmp_path / "bin", 'truncate -s 3000 "$f"')
    out = tmp_path / "b"
    result = run_cli(
        *("backup", "--database-url", shop_postgres.url, "--output", str(out)),
        env={"FLASKPROD_PG_BIN": str(bin_dir)},
    )
    assert result.exit_code == 6, result.stderr
    assert "is not a readable pg_dump archive" in result.stderr
    assert _leftovers(out) == []  # the bad file is gone, temp name included


def test_a_backup_killed_mid_write_leaves_no_file_under_a_final_name(
    shop_postgres: ShopData, project: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    marker = tmp_path / "dumped"
    bin_dir = _wrapper_bin(tmp_path / "bin", f'touch "{marker}"; sleep 30')
    out = tmp_path / "b"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MEDIA_ROOT")}
    argv = [str(FLASKPROD), "backup", str(project), "--database-url", shop_postgres.url]
    proc = subprocess.Popen(
        [*argv, "--output", str(out)],
        env=env | {"FLASKPROD_PG_BIN": str(bin_dir)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group: we stop exactly what we started
    )
    try:
        deadline = time.monotonic() + 20
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    leftovers = _leftovers(out)
    assert _final_files(out) == [], leftovers
    assert len(leftovers) == 1 and leftovers[0].endswith(f".{proc.pid}.tmp")
    assert (out / leftovers[0]).stat().st_size > 0  # it was written, just never published

    # The next backup removes the dead writer's leftover and publishes its own.
    again = run_cli(
        "backup", str(project), "--database-url", shop_postgres.url, "--output", str(out)
    )
    assert again.exit_code == 0, again.stderr
    assert not (out / leftovers[0]).exists()
    assert all(not name.startswith(".") for name in _leftovers(out))


def test_no_space_is_one_line_naming_the_folder_and_leaves_nothing(
    tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a 1 MB tmpfs: run it as root", pytrace=False)
    database = tmp_path / "big.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
        conn.executemany("INSERT INTO blobs (data) VALUES (?)", [(os.urandom(4096),)] * 600)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        url = f"sqlite:///{database}"
        result = run_cli("backup", "--database-url", url, "--output", str(small))
        assert result.exit_code == 3, result.stderr
        assert f"no space left on the device of {small}" in result.stderr
        assert result.stderr.count("\n") == 1
        assert _leftovers(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_restore_that_differs_from_the_manifest_is_exit_6_naming_the_table(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    import json

    from flaskprod.errors import VerificationFailed
    from flaskprod.ops.database import parse_url
    from flaskprod.ops.manifest import read_backup
    from flaskprod.ops.restore import verify_restore

    shop: ShopData = request.getfixturevalue(f"shop_{kind}")
    made = run_cli("backup", "--database-url", shop.url, "--output", str(tmp_path / "b"))
    assert made.exit_code == 0, made.stderr
    path = Path(made.stdout.strip())
    # The manifest says one order more than the dump holds (its files are intact).
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest["tables"]["orders"]["rows"] += 1
    manifest_path.write_text(json.dumps(manifest))

    into = str(tmp_path / "copy.db") if kind == "sqlite" else f"{shop.dbname}_x"
    result = run_cli("restore", str(path), "--database-url", shop.url, "--into", into)
    try:
        assert result.exit_code == 6, result.stderr
        assert "restore: differs: orders: 8 rows, the backup has 9" in result.stderr
        assert "differs from the manifest" in result.stderr.splitlines()[-1]
        with pytest.raises(VerificationFailed, match="orders: 8 rows, the backup has 9"):
            verify_restore(read_backup(path), parse_url(shop.url))
    finally:
        if kind == "postgres":
            request.getfixturevalue("postgres_cluster").drop_database(f"{shop.dbname}_x")
