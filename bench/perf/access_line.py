"""CPU per access line of the rendered gunicorn config's JSON logger, against gunicorn's
own atoms() (every header and environ entry) with the same escaping.

    .venv/bin/python -m bench.perf.access_line [path/to/deploy/gunicorn.conf.py]

Without a path: the config of the shop switched to server.kind = "gunicorn" (its
default is granian), rendered into a temporary folder. In process, no server: a request
like the benchmark's product read, the line written to /dev/null, best of 3 rounds of
20,000 lines.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from gunicorn.config import Config
from gunicorn.glogging import Logger

from bench.shop_gunicorn import gunicorn_shop

LINES = 20_000

_HEADERS = [
    ("HOST", "localhost"),
    ("X-REAL-IP", "127.0.0.1"),
    ("X-FORWARDED-FOR", "127.0.0.1"),
    ("X-FORWARDED-PROTO", "https"),
    ("X-REQUEST-ID", "5f0c" * 8),
    ("CONNECTION", ""),
]


def load(path: Path) -> ModuleType:
    before = os.environ.get("FLASKPROD_ACCESS_LOG")
    spec = importlib.util.spec_from_file_location("rendered_gunicorn_conf", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if before is None:  # the config sets it for the app; not this process's business
        os.environ.pop("FLASKPROD_ACCESS_LOG", None)
    return module


def per_line(logger_class: type[Logger], conf: ModuleType) -> float:
    """Best CPU microseconds per access line."""
    cfg = Config()
    cfg.set("accesslog", os.devnull)
    cfg.set("errorlog", os.devnull)
    cfg.set("access_log_format", conf.access_log_format)
    logger = logger_class(cfg)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/api/products/3",
        "PATH_INFO": "/api/products/3",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443",
        "SCRIPT_NAME": "",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "",
        "wsgi.url_scheme": "https",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input": object(),
        "wsgi.errors": object(),
        "wsgi.file_wrapper": object,
        "wsgi.input_terminated": True,
        "gunicorn.socket": object(),
        **{"HTTP_" + name.replace("-", "_"): value for name, value in _HEADERS},
    }
    response = SimpleNamespace(
        status="200 OK",
        sent=230,
        headers=[
            ("Content-Type", "application/json"),
            ("Content-Length", "230"),
            ("X-Request-ID", "5f0c" * 8),
            ("Vary", "Cookie"),
        ],
    )
    request = SimpleNamespace(headers=_HEADERS)
    took = datetime.timedelta(microseconds=1234)
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(LINES):
            logger.access(response, request, environ, took)
        best = min(best, (time.process_time() - started) / LINES * 1e6)
    return best


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args:
        conf = load(Path(args[0]))
    else:
        with tempfile.TemporaryDirectory(prefix="flaskprod-access-line-") as base:
            conf = load(gunicorn_shop(Path(base)) / "deploy" / "gunicorn.conf.py")

    class FullAtoms(Logger):
        """gunicorn's atoms() with the config's escaping: what the kit had before."""

        atoms_wrapper_class = conf._JsonAtoms

    full, fast = per_line(FullAtoms, conf), per_line(conf.JsonAccessLogger, conf)
    print(f"gunicorn's atoms(), JSON-escaped: {full:5.1f} us per line")
    print(f"the config's JsonAccessLogger:    {fast:5.1f} us per line")


if __name__ == "__main__":
    main()
