"""Helpers of the runtime tests (a module of its own: pytest fixtures live in conftest)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

GOOD_KEY = "k" * 8 + "f3c9a1b27d4e8f60c5b1a9e2d7f4c8b3"  # 40 chars, not a placeholder

MakeApp = Callable[..., Flask]


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
