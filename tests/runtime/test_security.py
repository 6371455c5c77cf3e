from __future__ import annotations

from runtime_helpers import MakeApp

SECURITY = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
)


def test_headers_sent_once_with_defaults(make_app: MakeApp) -> None:
    client = make_app("production").test_client()
    for path in ("/", "/missing", "/health", "/api/nothing"):
        headers = client.get(path).headers
        for name in SECURITY:
            assert len(headers.getlist(name)) == 1, (path, name)
    headers = client.get("/").headers
    assert headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Permissions-Policy"] == "camera=(), microphone=(), geolocation=()"


def test_hsts_only_over_https(make_app: MakeApp) -> None:
    client = make_app("production", env={"TRUSTED_PROXIES": "0"}).test_client()
    assert "Strict-Transport-Security" not in client.get("/", base_url="http://localhost").headers
    secure = client.get("/", base_url="https://example.test")
    assert secure.headers.getlist("Strict-Transport-Security") == [
        "max-age=63072000; includeSubDomains"
    ]


def test_hsts_behind_proxy_follows_forwarded_proto(make_app: MakeApp) -> None:
    client = make_app("production").test_client()
    # PREFERRED_URL_SCHEME is https in production: say http explicitly here.
    response = client.get("/", base_url="http://localhost", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=63072000")
    assert "Strict-Transport-Security" not in client.get("/", base_url="http://localhost").headers


def test_all_off_when_the_proxy_sends_them(make_app: MakeApp) -> None:
    client = make_app("production", env={"FLASKPROD_SECURITY_HEADERS": "nginx"}).test_client()
    response = client.get("/", base_url="https://example.test")
    for name in (*SECURITY, "Strict-Transport-Security"):
        assert name not in response.headers
    assert "X-Request-ID" in response.headers
    app = make_app("production", SECURITY_HEADERS=False)
    assert "X-Frame-Options" not in app.test_client().get("/").headers


def test_view_headers_are_never_overwritten(make_app: MakeApp) -> None:
    headers = make_app("production").test_client().get("/own-headers").headers
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers.getlist("Content-Security-Policy") == ["img-src *"]
    assert headers.getlist("X-Content-Type-Options") == ["nosniff"]


def test_each_header_configurable(make_app: MakeApp) -> None:
    app = make_app(
        "production",
        CONTENT_SECURITY_POLICY="default-src 'self' cdn.example",
        PERMISSIONS_POLICY="",
        HSTS_MAX_AGE=300,
        HSTS_INCLUDE_SUBDOMAINS=False,
    )
    headers = app.test_client().get("/", base_url="https://x.test").headers
    assert headers["Content-Security-Policy"] == "default-src 'self' cdn.example"
    assert "Permissions-Policy" not in headers
    assert headers["Strict-Transport-Security"] == "max-age=300"


def test_session_cookie_flags_in_production(make_app: MakeApp) -> None:
    app = make_app("production")
    cookie = app.test_client().get("/login", base_url="https://x.test").headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_HTTPONLY"] is True
    assert app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax"


def test_session_cookie_not_secure_in_development(make_app: MakeApp) -> None:
    cookie = make_app("development").test_client().get("/login").headers["Set-Cookie"]
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_config_changed_after_production_is_honoured(make_app: MakeApp) -> None:
    # Factories often finish their config after Production(app): read at first request.
    app = make_app("production")
    app.config["SECURITY_HEADERS"] = False
    assert "X-Frame-Options" not in app.test_client().get("/").headers


def test_csp_report_only_from_the_environment(make_app: MakeApp) -> None:
    """FLASKPROD_CSP_REPORT_ONLY (http.csp_report_only, security_headers = "app"): the
    policy is reported, not enforced, under the other header name, never both."""
    env = {"FLASKPROD_CSP_REPORT_ONLY": "true", "FLASKPROD_CONTENT_SECURITY_POLICY": "img-src *"}
    headers = make_app("production", env=env).test_client().get("/").headers
    assert headers.getlist("Content-Security-Policy-Report-Only") == ["img-src *"]
    assert "Content-Security-Policy" not in headers
    off = make_app("production", env={"FLASKPROD_CSP_REPORT_ONLY": "false"}).test_client()
    assert "Content-Security-Policy-Report-Only" not in off.get("/").headers
