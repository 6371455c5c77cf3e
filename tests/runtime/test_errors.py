from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask import Flask, abort
from runtime_helpers import GOOD_KEY, MakeApp

from flaskprod import Production


def test_unknown_api_route_is_json_404(make_app: MakeApp) -> None:
    response = make_app().test_client().get("/api/nothing-here", headers={"X-Request-ID": "r404"})
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["status"] == 404 and error["code"] == "not_found"
    assert error["request_id"] == "r404" and error["message"]


def test_unknown_page_is_small_html(make_app: MakeApp) -> None:
    response = make_app().test_client().get("/nothing-here")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<h1>Not Found</h1>" in response.get_data(as_text=True)


def test_json_clients_get_json_anywhere(make_app: MakeApp) -> None:
    client = make_app().test_client()
    response = client.get("/nothing-here", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"
    browser = client.get("/nothing-here", headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser.mimetype == "text/html"
    anything = client.get("/nothing-here", headers={"Accept": "*/*"})
    assert anything.mimetype == "text/html"


def test_malformed_json_is_400_json(make_app: MakeApp) -> None:
    client = make_app().test_client()
    response = client.post("/api/echo", data='{"a": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"] == {
        "status": 400,
        "code": "invalid_json",
        "message": "The request body is not valid JSON.",
        "request_id": response.headers["X-Request-ID"],
    }
    ok = client.post("/api/echo", json={"a": 1})
    assert ok.status_code == 200 and ok.json == {"got": {"a": 1}}


def test_body_over_limit_is_413(make_app: MakeApp) -> None:
    client = make_app(env={"MAX_CONTENT_LENGTH": "1k"}).test_client()
    response = client.post("/api/echo", data=b"x" * 2048, content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "request_entity_too_large"
    # A view that never reads the body still refuses it.
    page = client.post("/missing-or-not", data=b"x" * 2048)
    assert page.status_code == 413
    assert client.post("/upload", data=b"x" * 1024).get_data() == b"1024"


@pytest.mark.parametrize("size, status", [(1400, 413), (1025, 413), (1024, 200), (10, 200)])
def test_chunked_body_limit(make_app: MakeApp, size: int, status: int) -> None:
    """A chunked body has no Content-Length: Werkzeug alone would silently cut it at
    the limit (the view would see 1024 bytes of a 1400-byte upload)."""
    client = make_app(env={"MAX_CONTENT_LENGTH": "1k"}).test_client()
    response = client.post(
        "/upload",
        input_stream=io.BytesIO(b"x" * size),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == status
    if status == 200:
        assert response.get_data() == str(size).encode()


def test_500_is_generic_with_request_id(make_app: MakeApp) -> None:
    client = make_app().test_client()
    page = client.get("/boom", headers={"X-Request-ID": "page-500"})
    text = page.get_data(as_text=True)
    assert page.status_code == 500 and "Internal Server Error" in text and "page-500" in text
    assert "hunter2" not in text and "Traceback" not in text
    api = client.get("/boom", headers={"Accept": "application/json"})
    assert api.json["error"]["message"] == "Internal Server Error"
    assert "hunter2" not in api.get_data(as_text=True)


def test_5xx_descriptions_are_not_shown(make_app: MakeApp) -> None:
    app = make_app()

    @app.get("/api/abort")
    def aborting() -> str:
        abort(503, "db at 10.0.0.5 user admin is down")

    response = app.test_client().get("/api/abort")
    assert response.status_code == 503
    assert response.json["error"]["message"] == "Service Unavailable"


def test_405_keeps_allow_header(make_app: MakeApp) -> None:
    response = make_app().test_client().delete("/api/echo")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.json["error"]["code"] == "method_not_allowed"


def test_csrf_failure_is_400(make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_wtf.csrf import CSRFProtect

    app = make_app()
    CSRFProtect(app)

    @app.post("/form")
    def form() -> str:
        return "posted"

    client = app.test_client()
    page = client.post("/form", data={"x": "1"})
    assert page.status_code == 400 and page.mimetype == "text/html"
    assert "CSRF" in page.get_data(as_text=True)
    api = client.post("/form", data={"x": "1"}, headers={"Accept": "application/json"})
    assert api.json["error"]["code"] == "csrf_failed"


def test_template_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "templates" / "errors").mkdir(parents=True)
    (tmp_path / "templates" / "errors" / "404.html").write_text(
        "custom {{ status }} {{ code }} {{ request_id }}"
    )
    monkeypatch.setenv("FLASKPROD_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    app = Flask("custom", root_path=str(tmp_path))
    Production(app)
    response = app.test_client().get("/nope", headers={"X-Request-ID": "tpl"})
    assert response.status_code == 404
    assert response.get_data(as_text=True) == "custom 404 not_found tpl"
    # No template for 405: the built-in page.
    other = app.test_client().get("/api-like-but-not", headers={"Accept": "text/html"})
    assert other.get_data(as_text=True) == "custom 404 not_found " + other.headers["X-Request-ID"]
    gone = app.test_client().post("/health")
    assert gone.status_code == 405


def test_app_handlers_win(make_app: MakeApp) -> None:
    app = make_app()

    @app.errorhandler(404)
    def mine(error: Exception) -> tuple[str, int]:
        return "my 404", 404

    assert app.test_client().get("/api/none").get_data() == b"my 404"


def test_no_debugger_even_if_asked_in_development(make_app: MakeApp) -> None:
    client = make_app("development").test_client()
    text = client.get("/boom").get_data(as_text=True)
    assert "Traceback" not in text and "hunter2" not in text
