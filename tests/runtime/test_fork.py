"""after_fork() in a real gunicorn: with preload_app the master imports the app (and
here even connects) before forking; post_fork must give each worker its own
connections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from runtime_helpers import GOOD_KEY

from flaskprod.stack.ports import free_port

APP = """
import os, sys, time
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text
from flaskprod import Production

app = Flask(__name__)
Production(app)
db = SQLAlchemy(app)

def backend():
    return db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()

with app.app_context():
    print("MASTER_BACKEND", backend(), file=sys.stderr, flush=True)

@app.get("/who")
def who():
    time.sleep(0.2)  # held, so that a concurrent request goes to the other worker
    return {"worker": os.getpid(), "backend": backend()}
"""
CONF = """
from flaskprod.runtime.fork import after_fork

def post_fork(server, worker):
    after_fork()
"""


@pytest.mark.services
def test_preloaded_gunicorn_workers_get_their_own_connections(
    tmp_path: Path, postgres_url: str
) -> None:
    (tmp_path / "forkapp.py").write_text(APP)
    (tmp_path / "gunicorn_conf.py").write_text(CONF)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FLASKPROD_"))}
    env |= {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY, "DATABASE_URL": postgres_url}
    err = (tmp_path / "stderr.log").open("w+")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    argv = [str(gunicorn), "--no-control-socket", "--bind", f"127.0.0.1:{port}", "--workers"]
    argv += ["2", "--preload", "-c", "gunicorn_conf.py", "forkapp:app"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
    seen: dict[int, int] = {}

    def who() -> dict[str, int] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/who", timeout=5) as r:
                answer: dict[str, int] = json.load(r)
                return answer
        except OSError:
            return None

    try:
        deadline = time.monotonic() + 20
        # Two requests at once, each held 0.2 s: a sync worker serves one at a time, so
        # both workers answer (one after another, the kernel may wake the same one).
        with ThreadPoolExecutor(max_workers=2) as pool:
            for _ in range(50):
                answers = list(pool.map(lambda _: who(), range(2)))
                for data in answers:
                    if data is not None:
                        seen[data["worker"]] = data["backend"]
                if len(seen) == 2:
                    break
                if None in answers:
                    assert proc.poll() is None, "gunicorn died"
                    assert time.monotonic() < deadline, "gunicorn did not answer in 20 s"
                    time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    err.seek(0)
    log = err.read()
    err.close()
    master = next(int(line.split()[1]) for line in log.splitlines() if line.startswith("MASTER_"))
    assert len(seen) == 2, f"only saw workers {seen} in 50 rounds of 2 concurrent requests"
    backends = set(seen.values())
    assert len(backends) == 2 and master not in backends
    assert "Traceback" not in log


GC_APP = """
import gc
from flask import Flask

app = Flask(__name__)
# Objects of the preloaded app, as its modules would have.
keep = [[n] for n in range(50_000)]  # lists: always tracked by the collector

@app.get("/frozen")
def frozen():
    return {"frozen": gc.get_freeze_count()}
"""
GC_CONF = """
from flaskprod.runtime.fork import before_fork

def pre_fork(server, worker):
    before_fork()
"""


@pytest.mark.parametrize("hook", [True, False], ids=["before_fork", "without"])
def test_before_fork_freezes_the_preloaded_app_for_the_workers(tmp_path: Path, hook: bool) -> None:
    (tmp_path / "gcapp.py").write_text(GC_APP)
    (tmp_path / "gunicorn_conf.py").write_text(GC_CONF if hook else "")
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    argv = [str(gunicorn), "--no-control-socket", "--bind", f"127.0.0.1:{port}", "--workers"]
    argv += ["1", "--preload", "-c", "gunicorn_conf.py", "gcapp:app"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/frozen", timeout=2) as r:
                    frozen = json.load(r)["frozen"]
                break
            except OSError:
                assert proc.poll() is None, "gunicorn died"
                assert time.monotonic() < deadline, "gunicorn did not answer in 20 s"
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    if hook:
        assert frozen > 50_000  # the app's objects (and gunicorn's) are frozen
    else:
        assert frozen == 0
