"""Helpers of the runtime tests (a module of its own: pytest fixtures live in conftest)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask

GOOD_KEY = "k" * 8 + "f3c9a1b27d4e8f60c5b1a9e2d7f4c8b3"  # 40 chars, not a placeholder

MakeApp = Callable[..., Flask]

#: This environment's scripts (gunicorn, granian).
BIN = Path(sys.executable).parent


def add_views(app: Flask) -> None:
    from flask import request, session

    @app.get("/")
    def index() -> str:
        app.logger.info("in the view")
        return "ok"

    @app.post("/api/echo")
    def echo() -> Any:
        return {"got": request.get_json()}

    @app.post("/upload")
    def upload() -> str:
        return str(len(request.get_data()))

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals: password=hunter2")

    @app.get("/own-headers")
    def own_headers() -> Any:
        return "x", 200, {"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "img-src *"}

    @app.get("/login")
    def login() -> str:
        session["user"] = 1
        return "in"

    @app.get("/remote")
    def remote() -> Any:
        return {"remote_addr": request.remote_addr, "scheme": request.scheme}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as JSON (fails the test on a non-JSON line)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class HangingServer:
    """A real loopback TCP server that accepts connections and never answers:
    what a frozen PostgreSQL or Redis looks like from the client's side."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        # shutdown() wakes the blocked accept() (close() alone does not, on Linux).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()


def in_child(work: Any) -> int:
    """Fork; run ``work()`` in the child; return the int it wrote back."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.write(write, str(work()).encode())
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return int(answer)


# -- an app in a real server (gunicorn or granian) of its own -------------------------


def server_env(**variables: str) -> dict[str, str]:
    """This environment without the runner's FLASK_/FLASKPROD_ settings, for an app in
    production with a real secret key, reached directly (no proxy to trust)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FLASKPROD_"))}
    env |= {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY, "TRUSTED_PROXIES": "0"}
    return env | variables


def gunicorn_argv(port: int, worker_class: str, app: str) -> list[str]:
    """gunicorn with one worker of ``worker_class`` (4 threads where it has threads);
    its own timeout 30 s, far above what the runtime's guards bound."""
    argv = [str(BIN / "gunicorn"), "--no-control-socket", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", "1", "--worker-class", worker_class, "--threads", "4"]
    return [*argv, "--timeout", "30", "--graceful-timeout", "3", app]


def get_json(port: int, path: str, timeout: float = 5) -> tuple[int, Any]:
    """GET ``path`` of the server on ``port``: its status and JSON body (an error's too)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@contextlib.contextmanager
def app_server(
    tmp_path: Path, port: int, argv: list[str], env: dict[str, str]
) -> Iterator[tuple[Path, Path]]:
    """Run ``argv`` (a server of an app in ``tmp_path``, listening on ``port``) until
    /health answers; yield its stdout and stderr logs. Its main process must still run
    at the end; then SIGTERM (SIGKILL after 15 s), by the pid started here."""
    name = Path(argv[0]).name
    assert Path(argv[0]).is_file(), f"{argv[0]} is missing: pip install -e '.[dev]'"
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                get_json(port, "/health", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, f"{name} died: {err.read_text()}"
                assert time.monotonic() < deadline, f"{name} did not answer in 20 s"
                time.sleep(0.05)
        yield out, err
        assert proc.poll() is None, f"{name}'s main process died"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
