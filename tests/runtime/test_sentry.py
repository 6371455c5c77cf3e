"""Sentry in a subprocess (sentry_sdk.init patches Flask process-wide), reporting to a
real HTTP endpoint on loopback that stands in for sentry.io."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from runtime_helpers import GOOD_KEY

from flaskprod.runtime.sentry import sentry_options

CHILD = """
import sys
from flask import Flask
from flaskprod import Production

app = Flask("sentried")
Production(app)

@app.get("/boom")
def boom():
    raise RuntimeError("reported to sentry")

print(app.test_client().get("/boom").status_code)
if "sentry_sdk" in sys.modules:
    import sentry_sdk
    sentry_sdk.flush(timeout=5)
print("sentry_sdk" in sys.modules)
"""


class Collector(BaseHTTPRequestHandler):
    envelopes: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Collector.envelopes.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[int]:
    Collector.envelopes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_child(**env: str) -> list[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "FLASKPROD_", "SENTRY_")) and k != "GIT_SHA"
    }
    base |= {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY, "DATABASE_URL": "sqlite://"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-2:]


def test_no_dsn_no_sentry() -> None:
    assert run_child() == ["500", "False"]


def test_dsn_reports_with_environment_and_release(collector: int) -> None:
    dsn = f"http://public@127.0.0.1:{collector}/42"
    env = {"SENTRY_DSN": dsn, "GIT_SHA": "abc123", "SENTRY_RELEASE": "shop@1.2.3"}
    assert run_child(**env) == ["500", "True"]
    events = []
    for envelope in Collector.envelopes:
        for line in envelope.splitlines():
            if line.startswith(b"{") and b'"exception"' in line:
                events.append(json.loads(line))
    assert len(events) == 1
    event = events[0]
    assert event["environment"] == "production"
    assert event["release"] == "shop@1.2.3"
    assert event["exception"]["values"][-1]["value"] == "reported to sentry"


def test_release_falls_back_to_git_sha() -> None:
    options = sentry_options({"SENTRY_DSN": "http://k@h/1", "GIT_SHA": "abc123"}, "testing")
    assert options is not None
    assert options["release"] == "abc123" and options["environment"] == "testing"
    assert options["send_default_pii"] is False
    assert sentry_options({"GIT_SHA": "abc123"}, "production") is None
