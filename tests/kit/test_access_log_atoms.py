"""The rendered gunicorn config's JSON access line (the shop's kit with server.kind =
"gunicorn"): its own atoms() (only what the format uses, for speed) must write exactly
the line gunicorn's full atoms() would."""

from __future__ import annotations

import datetime
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench.shop_gunicorn import gunicorn_shop  # noqa: E402

NOW = "[21/Nov/2026:09:30:00 +0000]"


@pytest.fixture(scope="module")
def shop_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gunicorn_shop(tmp_path_factory.mktemp("gunicorn-shop")) / "deploy/gunicorn.conf.py"


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch, shop_conf: Path) -> ModuleType:
    # The config sets FLASKPROD_ACCESS_LOG=off on import: keep it out of this process.
    monkeypatch.setenv("FLASKPROD_ACCESS_LOG", "on")
    spec = importlib.util.spec_from_file_location("shop_gunicorn_conf", shop_conf)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _line(logger_class: type[Logger], conf: ModuleType, tmp_path: Path, **request: Any) -> str:
    path = tmp_path / f"{logger_class.__name__}.log"
    cfg = Config()
    cfg.set("accesslog", str(path))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    cfg.set("access_log_format", conf.access_log_format)
    logger = logger_class(cfg)
    logger.now = lambda: NOW  # type: ignore[method-assign]
    headers = request["headers"]
    environ = {
        "REQUEST_METHOD": request["method"],
        "RAW_URI": request["path"] + ("?" + request["query"] if request["query"] else ""),
        "PATH_INFO": request["path"],
        "QUERY_STRING": request["query"],
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request["remote"],
        "wsgi.url_scheme": "https",
    }
    for name, value in headers:  # as gunicorn builds it: repeated headers joined by ","
        key = "HTTP_" + name.replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    response = SimpleNamespace(
        status=request["status"], sent=request["sent"], headers=[("Content-Type", "text/html")]
    )
    logger.access(
        response,
        SimpleNamespace(headers=headers),
        environ,
        datetime.timedelta(seconds=1, microseconds=2345),
    )
    for handler in logger.access_log.handlers:
        handler.flush()
        handler.close()
    logger.access_log.handlers.clear()
    return path.read_text()


@pytest.mark.parametrize(
    "request_fields",
    [
        {
            "method": "GET",
            "path": "/api/products/3",
            "query": "",
            "remote": "127.0.0.1",
            "status": "200 OK",
            "sent": 230,
            "headers": [
                ("HOST", "localhost"),
                ("X-REQUEST-ID", "first"),
                ("USER-AGENT", 'probe "quoted" back\\slash\ttab\x01'),
                ("X-REQUEST-ID", "last"),
            ],
        },
        {
            "method": "POST",
            "path": '/a"b\\c',
            "query": "q=\x7f&x=\u00e9",
            "remote": "::1",
            "status": 503,
            "sent": None,
            "headers": [("HOST", "localhost")],
        },
    ],
)
def test_fast_atoms_write_the_line_gunicorns_atoms_would(
    conf: ModuleType, tmp_path: Path, request_fields: dict[str, Any]
) -> None:
    class Reference(Logger):
        """gunicorn's own atoms() (every header and environ entry), the same escaping."""

        atoms_wrapper_class = conf._JsonAtoms

    fast = _line(conf.JsonAccessLogger, conf, tmp_path, **request_fields)
    reference = _line(Reference, conf, tmp_path, **request_fields)
    assert fast == reference
    entry = json.loads(fast)
    assert entry["method"] == request_fields["method"]
    assert entry["path"] == request_fields["path"]
    assert entry["duration_us"] == 1_002_345
    headers = dict(request_fields["headers"])
    assert entry["request_id"] == headers.get("X-REQUEST-ID", "-")
    assert entry["user_agent"] == headers.get("USER-AGENT", "-")
