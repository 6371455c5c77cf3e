"""A real throwaway PostgreSQL cluster: start, databases, restart, pause, failures."""

from __future__ import annotations

import os
import pwd
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from flaskprod.errors import EnvironmentProblem
from flaskprod.stack import process
from flaskprod.stack.postgres import PG_USER, PostgresCluster, find_bin_dir


@pytest.fixture
def running(postgres_cluster: PostgresCluster) -> PostgresCluster:
    """The suite's cluster (initdb costs a second or more): these tests stop, restart,
    pause it and move its port, and leave it running where it was."""
    postgres_cluster.resume()
    postgres_cluster.start()
    return postgres_cluster


def select_one(cluster: PostgresCluster, dbname: str = "postgres", timeout: int = 5) -> object:
    with psycopg.connect(cluster.dsn(dbname), connect_timeout=timeout) as conn:
        row = conn.execute("SELECT 1").fetchone()
    return None if row is None else row[0]


def test_runs_on_loopback_with_our_settings_and_the_right_user(running: PostgresCluster) -> None:
    assert running.port not in (5432, 0)
    with running.connect() as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('listen_addresses', 'port', 'fsync', 'data_directory', 'server_encoding')"
            ).fetchall()
        )
    assert settings == {
        "listen_addresses": "127.0.0.1",
        "port": str(running.port),
        "fsync": "off",  # the suite's cluster trades safety for speed
        "data_directory": str(running.data_dir),
        "server_encoding": "UTF8",
    }
    assert running.pid is not None
    uid = int(Path(f"/proc/{running.pid}/status").read_text().split("Uid:")[1].split()[0])
    # As root, PostgreSQL refuses to run: it must run as the postgres user.
    expected = pwd.getpwnam(PG_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert uid == expected


def test_url_and_databases_are_created_and_dropped(running: PostgresCluster) -> None:
    url = running.create_database("shop_test")
    assert url == f"postgresql+psycopg://postgres@127.0.0.1:{running.port}/shop_test"
    assert "shop_test" in running.databases()
    with psycopg.connect(running.dsn("shop_test")) as conn:
        conn.execute("CREATE TABLE t (a int)")
        held = psycopg.connect(running.dsn("shop_test"))  # a session still open...
    running.drop_database("shop_test")  # ...does not block the drop
    held.close()
    assert "shop_test" not in running.databases()
    running.drop_database("shop_test")  # dropping a missing database is fine


def test_restart_on_the_same_data_keeps_data_and_port(running: PostgresCluster) -> None:
    running.create_database("keep")
    with psycopg.connect(running.dsn("keep"), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    port, pid = running.port, running.pid
    running.stop()
    assert not running.running
    assert pid is not None and not process.is_alive(pid)
    with pytest.raises(psycopg.OperationalError):
        select_one(running)
    running.start()
    assert running.port == port
    assert running.pid != pid
    with psycopg.connect(running.dsn("keep")) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    running.drop_database("keep")


def answers(port: int, timeout: float = 0.5) -> bool:
    """Whether a PostgreSQL server answers on ``port`` (an SSLRequest gets 'N' or 'S')."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!ii", 8, 80877103))
            return sock.recv(1) in (b"N", b"S")
    except OSError:  # includes the timeout
        return False


def test_pause_hangs_new_and_open_sessions_and_resume_restores_them(
    running: PostgresCluster,
) -> None:
    assert answers(running.port)
    with psycopg.connect(running.dsn(), autocommit=True) as conn:
        results: list[object] = []
        running.pause()
        try:
            # New connections get no answer from the frozen postmaster...
            assert not answers(running.port)
            # ...and a query on a session opened before hangs in its frozen backend.
            query = threading.Thread(
                target=lambda: results.append(conn.execute("SELECT 42").fetchone())
            )
            query.start()
            query.join(timeout=0.5)
            assert query.is_alive()
            assert results == []
        finally:
            running.resume()
        query.join(timeout=5)
        assert results == [(42,)]
    assert answers(running.port)
    assert select_one(running) == 1


def test_missing_binaries_say_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem) as caught:
        PostgresCluster(tmp_path / "data", bin_dir=tmp_path / "no-bin")
    assert "initdb, postgres" in str(caught.value)
    assert str(tmp_path / "no-bin") in str(caught.value)
    assert "apt-get install postgresql" in str(caught.value)


def test_the_newest_installed_version_is_found() -> None:
    found = find_bin_dir()
    assert (found / "postgres").is_file()
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if installed:
        assert found == installed[-1]


def test_a_port_held_by_someone_else(running: PostgresCluster) -> None:
    original = running.port
    running.stop()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        try:
            # A port given explicitly is not changed behind the user's back...
            running.port, running._fixed_port = port, True
            with pytest.raises(EnvironmentProblem, match=f"port {port} on 127.0.0.1 is already"):
                running.start()
            assert not running.running
            # ...a port picked for us is retried on a fresh one.
            running._fixed_port = False
            running.start()
            assert running.running
            assert running.port not in (port, original)
            assert select_one(running) == 1
        finally:
            # Back where the rest of the suite expects it.
            running.stop()
            running.port, running._fixed_port = original, False
            running.start()
    assert running.port == original


def test_data_folder_reachability_depends_on_who_runs_it(tmp_path: Path) -> None:
    # pytest's tmp_path lies under a 0700 folder of ours.
    cluster = PostgresCluster(tmp_path / "pg" / "data", fsync=False, die_with_parent=True)
    if os.geteuid() == 0:
        # As root the server runs as postgres, which cannot reach it: a clear refusal.
        with pytest.raises(EnvironmentProblem, match="the postgres user cannot reach") as caught:
            cluster.start()
        assert "is not traversable" in str(caught.value)
        assert not cluster.running
    else:
        # As an ordinary user the server runs as ourselves: any folder of ours will do.
        try:
            cluster.start()
            assert select_one(cluster) == 1
        finally:
            cluster.stop()


def test_a_crashed_run_does_not_leave_the_server_running(running: PostgresCluster) -> None:
    # Another "test run" starts a server on the same data with die_with_parent and is
    # SIGKILLed: no finalizer, no atexit. The kernel's parent-death signal must stop it.
    running.stop()
    pid_file = running.data_dir.with_name("crashed-run.pid")
    code = (
        "import time; from pathlib import Path\n"
        "from flaskprod.stack.postgres import PostgresCluster\n"
        f"c = PostgresCluster(Path({str(running.data_dir)!r}), die_with_parent=True)\n"
        f"c.start(); Path({str(pid_file)!r}).write_text(str(c.pid)); time.sleep(600)\n"
    )
    runner = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert runner.poll() is None, "the run died before its server was ready"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        postmaster = int(pid_file.read_text())
        assert process.is_alive(postmaster)
    finally:
        runner.kill()
        runner.wait()
    try:
        assert process._wait_gone(postmaster, 10.0), "postgres outlived the crashed run"
    finally:
        pid_file.unlink(missing_ok=True)
        running.start()  # the suite's cluster, back on its data
    assert select_one(running) == 1


def test_starts_despite_a_stale_lock_naming_a_recycled_pid(
    running: PostgresCluster, tmp_path: Path
) -> None:
    # After a crash, postmaster.pid may name a pid that now belongs to some other
    # process of the same user: PostgreSQL alone would refuse to start.
    running.stop()
    lock = running.data_dir / "postmaster.pid"
    neighbour = process.start(
        ["sleep", "60"], name="neighbour", log_path=tmp_path / "n.log", user=running.user
    )
    try:
        lock.write_text(f"{neighbour.pid}\n{running.data_dir}\n0\n{running.port}\n\n\n\nready\n")
        running.start()
        assert select_one(running) == 1
        assert neighbour.alive()  # and the neighbour was left alone
    finally:
        neighbour.stop()
        running.start()
