"""Log output: JSON lines on stdout in production, readable lines otherwise.

One handler on the root logger, so the app's, the libraries' and flaskprod's own
records all come out the same way. Records made during a request carry its id.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from flask import Flask, has_request_context, request
from flask.logging import default_handler

from flaskprod.runtime.request_id import request_id_from

ACCESS_LOGGER = "flaskprod.access"
#: Extra attributes copied from a record into its JSON line when present.
_FIELDS = ("request_id", "method", "path", "status", "duration_ms", "remote_addr")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
# JSONEncoder.encode builds a new C encoder on every call; build it once (2x faster
# per line). Without the C accelerator, fall back to the encoder's Python path.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks: Callable[[Any, int], Any] | None = (
    _c_encoder(None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    if _c_encoder is not None
    else None
)


def encode(data: dict[str, Any]) -> str:
    """``data`` as compact JSON (non-ASCII kept, unknown types as ``str()``)."""
    if _encode_chunks is not None:
        return "".join(_encode_chunks(data, 0))
    return _ENCODER.encode(data)


class JsonFormatter(logging.Formatter):
    """One JSON object per record. On the hot path: one dict and one encode per line."""

    def __init__(self) -> None:
        super().__init__()
        # (second, "YYYY-MM-DDTHH:MM:SS"): strftime once per second, not per line.
        # One tuple so that threads never see half an update.
        self._stamp: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        stamp = self._stamp
        if stamp[0] != second:
            stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._stamp = stamp
        data: dict[str, Any] = {
            "time": f"{stamp[1]}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        for field in _FIELDS:
            value = attributes.get(field)
            if value is not None:
                data[field] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = record.stack_info
        return encode(data)


class TextFormatter(logging.Formatter):
    """``12:00:00 INFO app [request-id] message`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


class RequestContextFilter(logging.Filter):
    """Adds the request's id, method and path to records made during a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            environ = request.environ
            record.request_id = request_id_from(environ)
            record.method = environ.get("REQUEST_METHOD")
            record.path = environ.get("PATH_INFO")
        return True


class StdoutHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stdout`` is now (gunicorn and test runners replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.addFilter(RequestContextFilter())

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(app: Flask, log_format: str, level: str | int) -> None:
    """Install (once per process) the stdout handler on the root logger."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, StdoutHandler)), None)
    if handler is None:
        handler = StdoutHandler()
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Flask's own stderr handler would print every app record a second time.
    app.logger.removeHandler(default_handler)
