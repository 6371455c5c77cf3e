"""A real throwaway redis-server: config, password, persistence, pause, failures."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flaskprod.errors import EnvironmentProblem
from flaskprod.stack import process
from flaskprod.stack.redis import RedisServer


def client(server: RedisServer, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(
        server.url(), socket_timeout=timeout, socket_connect_timeout=timeout
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password="s3cret p@ss/word", die_with_parent=True)
    server.start()
    yield server
    server.stop()


def test_runs_on_loopback_with_a_password_and_no_persistence(server: RedisServer) -> None:
    assert server.url() == f"redis://:s3cret%20p%40ss%2Fword@127.0.0.1:{server.port}/0"
    assert server.port != 6379
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as anonymous:
        anonymous.sendall(b"PING\r\n")
        assert anonymous.recv(100).startswith(b"-NOAUTH")
    c = client(server)
    config = c.config_get("*")
    assert config["bind"] == "127.0.0.1"
    assert config["save"] == ""
    assert config["appendonly"] == "no"
    assert config["dir"] == str(server.dir)
    assert c.info("server")["process_id"] == server.pid
    c.close()


def test_restart_without_persistence_starts_empty(server: RedisServer) -> None:
    client(server).set("k", "v")
    pid = server.pid
    server.stop()
    assert pid is not None and not process.is_alive(pid)
    server.start()
    assert client(server).get("k") is None


def test_restart_with_persistence_keeps_data(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persistence=True, die_with_parent=True)
    server.start()
    try:
        client(server).set("k", "kept")
        server.stop()
        server.start()
        assert client(server).get("k") == b"kept"
    finally:
        server.stop()


def test_pause_hangs_commands_and_resume_restores_them(server: RedisServer) -> None:
    c = client(server, timeout=0.3)
    assert c.ping()
    server.pause()
    try:
        with pytest.raises(redis.TimeoutError):
            c.ping()
    finally:
        server.resume()
    assert client(server).ping()


def test_missing_binary_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem) as caught:
        RedisServer(tmp_path, binary=tmp_path / "bin" / "redis-server")
    assert "redis-server not found" in str(caught.value)
    assert "apt-get install redis-server" in str(caught.value)


def test_a_taken_port_is_retried_unless_it_was_given(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        fixed = RedisServer(tmp_path / "fixed", port=port, die_with_parent=True)
        with pytest.raises(EnvironmentProblem, match=f"port {port} on 127.0.0.1 is already in use"):
            fixed.start()
        assert not fixed.running
        moving = RedisServer(tmp_path / "moving", die_with_parent=True)
        moving.port = port  # as if someone took the free port we had picked
        try:
            moving.start()
            assert moving.port != port
            assert client(moving).ping()
        finally:
            moving.stop()


@pytest.mark.parametrize("stop_at_exit", [True, False])
def test_stopped_when_the_interpreter_exits_unless_asked_to_outlive_it(
    tmp_path: Path, stop_at_exit: bool
) -> None:
    pid_file = tmp_path / "pid"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from flaskprod.stack.redis import RedisServer\n"
            f"s = RedisServer(Path({str(tmp_path / 'r')!r}), stop_at_exit={stop_at_exit})\n"
            f"s.start(); Path({str(pid_file)!r}).write_text(f'{{s.pid}}')\n",
        ],
        check=True,
        timeout=30,
    )
    pid = int(pid_file.read_text())
    if stop_at_exit:
        assert not process.is_alive(pid)
    else:
        try:
            assert process.is_alive(pid)  # outlived the command that started it
        finally:
            assert process.stop_pid(pid) is True


def test_the_specs_memory_limit_and_policy(tmp_path: Path) -> None:
    """``up`` runs Redis as compose does: a job queue (RQ, Celery) gets noeviction."""
    server = RedisServer(
        tmp_path / "redis", maxmemory="64mb", maxmemory_policy="noeviction", die_with_parent=True
    )
    server.start()
    try:
        config = client(server).config_get("maxmemory*")
        assert config["maxmemory-policy"] == "noeviction"
        assert config["maxmemory"] == str(64 * 1024 * 1024)
    finally:
        server.stop()
