"""Importing an app for judgement makes no network connection (issue #12, item 13).

Production's settings name production's hosts (a compose service ``cache:6379``) and,
after ``init``, placeholder passwords: ``check`` once connected to whatever Redis
listened on this machine's 6379. This machine does run Redis on 6379 and PostgreSQL on
5432, and the tests listen on a port of their own, counting every connection: the app
below tries all of them at import (redis-py, a raw socket, libpq through psycopg, a
name lookup) and must meet a refusal at once, with nothing reached.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_files import write

from flaskprod.check import app_loader
from flaskprod.check.app_loader import probe
from flaskprod.check.model import Level
from flaskprod.check.runner import CheckOptions, run_checks

APP = """\
import os
import socket

import psycopg
import redis
from flask import Flask

app = Flask(__name__)
PORT = int(os.environ["LISTENER_PORT"])


def attempt(name, action):
    try:
        action()
        app.config[name] = "reached"
    except Exception as error:
        app.config[name] = f"{type(error).__name__}: {error}"


attempt("REDIS_LOCAL", lambda: redis.Redis.from_url(os.environ["REDIS_URL"]).ping())
attempt("REDIS_COMPOSE", lambda: redis.Redis.from_url("redis://cache:6379/0").ping())
attempt("TCP_LISTENER", lambda: socket.create_connection(("127.0.0.1", PORT), 5).close())
attempt("RAW_LISTENER", lambda: socket.socket().connect(("127.0.0.1", PORT)))
attempt("LOOKUP", lambda: socket.getaddrinfo("db", 5432))
attempt("LIBPQ_LOCAL", lambda: psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5))
attempt(
    "LIBPQ_LISTENER",
    lambda: psycopg.connect(f"postgresql://u:p@127.0.0.1:{PORT}/db", connect_timeout=5),
)
"""
ATTEMPTS = (
    "REDIS_LOCAL",
    "REDIS_COMPOSE",
    "TCP_LISTENER",
    "RAW_LISTENER",
    "LOOKUP",
    "LIBPQ_LOCAL",
    "LIBPQ_LISTENER",
)


class Listener:
    """A real TCP server on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def project(root: Path) -> Path:
    write(root, {"app.py": APP})
    return root


def env(listener: Listener) -> dict[str, str]:
    return {
        "LISTENER_PORT": str(listener.port),
        # init's placeholders, pointing at this machine's real Redis and PostgreSQL
        "REDIS_URL": "redis://:change-me@127.0.0.1:6379/0",
        "DATABASE_URL": "postgresql://app:change-me@127.0.0.1:5432/app",
    }


def test_nothing_is_reached_while_the_app_is_judged(tmp_path: Path, listener: Listener) -> None:
    started = time.monotonic()
    result = probe(project(tmp_path), "app:app", env(listener))
    elapsed = time.monotonic() - started
    assert result.info is not None, result.error
    said = {name: result.info.config[name] for name in ATTEMPTS}
    assert not [name for name, outcome in said.items() if outcome == "reached"], said
    # refused, not answered: no AUTH error from Redis, no password error from PostgreSQL
    assert not [v for v in said.values() if "auth" in v.lower() or "password" in v.lower()], said
    assert listener.accepted == 0
    assert elapsed < 10  # failing at once, not after connect timeouts


def test_without_a_network_namespace_python_clients_are_still_refused(
    tmp_path: Path, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where unshare is not allowed, the probe's own refusal still stops every Python
    client (redis-py, sockets, lookups) and C database driver (libpq) at once."""
    monkeypatch.setattr(app_loader, "offline_prefix", lambda: ())
    result = probe(project(tmp_path), "app:app", env(listener))
    assert result.info is not None, result.error
    for name in ATTEMPTS:
        assert "no network connection" in result.info.config[name], result.info.config[name]
    assert listener.accepted == 0


def test_an_app_that_connects_at_import_is_app000_info_at_once(tmp_path: Path) -> None:
    """A compose project whose app pings its Redis service (cache:6379) at import: no
    lookup on this machine, an immediate answer, and APP000 says why it was not judged."""
    write(
        tmp_path,
        {
            "app.py": "import os\n\nimport redis\nfrom flask import Flask\n\n"
            "app = Flask(__name__)\nredis.Redis.from_url(os.environ['REDIS_URL']).ping()\n",
            "compose.yaml": "services:\n  web:\n    build: .\n"
            "    command: gunicorn -w 2 -b 0.0.0.0:8000 app:app\n"
            "    environment:\n      REDIS_URL: redis://cache:6379/0\n"
            "  cache:\n    image: redis:7\n",
        },
    )
    started = time.monotonic()
    result = run_checks(CheckOptions(root=tmp_path, select=("APP000",)))
    assert time.monotonic() - started < 10
    (finding,) = result.findings
    assert finding.level is Level.INFO
    assert finding.message.startswith("the app opens a connection while it is imported")
    assert "cache:6379" in finding.message
