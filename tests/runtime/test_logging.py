from __future__ import annotations

import json
import logging
import sys

import pytest
from runtime_helpers import MakeApp, json_lines

from flaskprod.runtime.logging import JsonFormatter, TextFormatter

ACCESS_KEYS = {
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "remote_addr",
}


def access(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in lines if line["logger"] == "flaskprod.access"]


def test_one_json_access_line_per_request(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_app("production").test_client()
    capsys.readouterr()
    for path in ("/", "/missing", "/health", "/boom"):
        client.get(path, headers={"X-Request-ID": f"rid{path.replace('/', '-')}"})
    client.post("/api/echo", data="{nope", content_type="application/json")
    lines = json_lines(capsys.readouterr().out)
    lines_access = access(lines)
    assert [(a["path"], a["status"]) for a in lines_access] == [
        ("/", 200),
        ("/missing", 404),
        ("/health", 200),
        ("/boom", 500),
        ("/api/echo", 400),
    ]
    for line in lines_access:
        assert set(line) == ACCESS_KEYS
        assert line["level"] == "INFO" and line["method"] in ("GET", "POST")
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert str(line["time"]).endswith("Z") and "T" in str(line["time"])
    assert lines_access[0]["request_id"] == "rid-"


def test_records_in_a_request_carry_its_id(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_app("production").test_client()
    capsys.readouterr()
    client.get("/", headers={"X-Request-ID": "abc123"})
    lines = json_lines(capsys.readouterr().out)
    view = [line for line in lines if line["message"] == "in the view"]
    assert len(view) == 1
    assert view[0]["request_id"] == "abc123" and view[0]["logger"] == "testapp"
    assert view[0]["path"] == "/" and view[0]["method"] == "GET"


def test_exception_logged_with_traceback_never_shown(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_app("production").test_client()
    capsys.readouterr()
    response = client.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "hunter2" not in body and "Traceback" not in body and "RuntimeError" not in body
    assert "boom-1" in body
    lines = json_lines(capsys.readouterr().out)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "boom-1"
    assert "Traceback (most recent call last)" in str(errors[0]["exc_info"])
    assert "RuntimeError: secret internals" in str(errors[0]["exc_info"])
    assert len(access(lines)) == 1


def test_propagated_exception_logged_once(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    # The testing profile propagates exceptions (Flask's TESTING): still one access line.
    client = make_app("testing").test_client()
    capsys.readouterr()
    with pytest.raises(RuntimeError):
        client.get("/boom")
    out = capsys.readouterr().out
    assert out.count("flaskprod.access") == 1
    assert "GET /boom 500" in out
    assert out.count("Traceback (most recent call last)") == 1


def test_development_lines_are_readable(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_app("development").test_client()
    capsys.readouterr()
    client.get("/", headers={"X-Request-ID": "dev-1"})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].endswith("INFO testapp [dev-1] in the view")
    assert " INFO flaskprod.access [dev-1] GET / 200 " in out[1]
    with pytest.raises(json.JSONDecodeError):
        json.loads(out[1])


def test_one_handler_whatever_the_number_of_apps(make_app: MakeApp) -> None:
    make_app("production")
    make_app("production")
    from flaskprod.runtime.logging import StdoutHandler

    ours = [h for h in logging.getLogger().handlers if isinstance(h, StdoutHandler)]
    assert len(ours) == 1


def record(
    msg: str = "hello %s", args: tuple[object, ...] = ("world",), **extra: object
) -> logging.LogRecord:
    rec = logging.LogRecord("app.x", logging.WARNING, __file__, 1, msg, args, None)
    rec.created = 1700000000.25
    rec.msecs = 250.0
    rec.__dict__.update(extra)
    return rec


def test_json_formatter_fields_and_escaping() -> None:
    line = JsonFormatter().format(record('quote " and\nnewline %s', ("ü",), status=201))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2023-11-14T22:13:20.250Z",
        "level": "WARNING",
        "logger": "app.x",
        "message": 'quote " and\nnewline ü',
        "status": 201,
    }


def test_json_formatter_exc_info() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        rec = record(exc_info=sys.exc_info())
    rec.exc_info = rec.__dict__["exc_info"]
    data = json.loads(JsonFormatter().format(rec))
    assert data["exc_info"].startswith("Traceback") and "ValueError: bad" in data["exc_info"]


def test_json_formatter_unserialisable_extra() -> None:
    data = json.loads(JsonFormatter().format(record(request_id=object())))
    assert data["request_id"].startswith("<object object")


def test_text_formatter() -> None:
    assert (
        TextFormatter().format(record(request_id="r1")).endswith("WARNING app.x [r1] hello world")
    )
    assert TextFormatter().format(record()).endswith("WARNING app.x hello world")


def test_access_log_can_be_left_to_gunicorn(
    make_app: MakeApp, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_app("production", env={"FLASKPROD_ACCESS_LOG": "off"}).test_client()
    capsys.readouterr()
    client.get("/")
    lines = json_lines(capsys.readouterr().out)
    assert [line["logger"] for line in lines] == ["testapp"]
