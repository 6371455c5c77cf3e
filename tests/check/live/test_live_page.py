"""``check --url`` on what the page itself says (issue #12, items 8 and 13): a home page
answering 500 fails (never graded A), a URL with a path probes that page and the site's
own paths, and a CSP that blocks what the page loads is reported, not rewarded.

The site is a real HTTP server on loopback (the standard library's), recording every
path it is asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from live_support import describe, run_live

from flaskprod.check.model import Finding, Level
from flaskprod.check.summary import grade

#: microblog's page: Bootstrap and moment from CDNs, an inline script and handler.
MICROBLOG_PAGE = """<!doctype html><html><head>
<link href="https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/css/bootstrap.min.css"
 rel="stylesheet">
<script src="https://cdnjs.cloudflare.com/ajax/libs/moment.js/2.29.4/moment-with-locales.min.js">
</script>
<script>moment.locale("en");</script>
</head><body><a href="/explore" onclick="flask_moment_render_all()">Explore</a>
<script src="/static/app.js"></script></body></html>"""
STRICT = "default-src 'self'"
FITTING = (
    "default-src 'self'; script-src 'self' https://cdnjs.cloudflare.com 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net"
)
#: Headers that earn a good Observatory grade, CSP aside.
GOOD_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


@dataclass
class Site:
    """What the server answers on '/' and '/auth/login', and every path asked for."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = MICROBLOG_PAGE
    asked: list[str] = field(default_factory=list)
    port: int = 0
    #: More paths answered like the page (a liveness route of the app's own).
    extra: tuple[str, ...] = ()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.asked.append(self.path)
            page = self.path.split("?")[0] in ("/", "/auth/login", *site.extra)
            body = (site.body if page else "not found").encode()
            self.send_response(site.status if page else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            for name, value in site.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # quiet
            pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    state = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def live(tmp_path: Path, url: str) -> tuple[list[Finding], dict[str, object] | None]:
    result = run_live(tmp_path, url=url, timeout=3.0)
    observatory = result.context.cache.get("observatory")
    return result.findings, observatory


@pytest.mark.covers("LIV000:fail")
def test_a_home_page_answering_500_fails_and_is_never_an_a(tmp_path: Path, site: Site) -> None:
    site.status = 500
    site.headers = {**GOOD_HEADERS, "Content-Security-Policy": FITTING}
    findings, observatory = live(tmp_path, site.url())
    down = [f for f in findings if f.id == "LIV000"]
    assert [(f.level, f.message) for f in down] == [(Level.CRITICAL, f"{site.url()} answers 500")]
    assert grade(findings) not in ("A", "B"), describe(findings)
    assert observatory is None  # an error page's headers earn no grade


def test_a_url_with_a_path_probes_that_page_and_the_sites_paths(tmp_path: Path, site: Site) -> None:
    live(tmp_path, site.url("/auth/login"))
    assert "/auth/login" in site.asked
    assert "/health" in site.asked  # the site's health path, from its origin
    assert not [p for p in site.asked if p.startswith("/auth/login/")], site.asked


@pytest.mark.covers("LIV026:fail")
def test_a_csp_that_blocks_the_page_is_reported_not_rewarded(tmp_path: Path, site: Site) -> None:
    site.headers = {**GOOD_HEADERS, "Content-Security-Policy": STRICT}
    findings, observatory = live(tmp_path, site.url())
    (finding,) = [f for f in findings if f.id == "LIV026"]
    assert finding.level is Level.WARNING
    assert finding.message == (
        "the Content-Security-Policy blocks what the home page loads: stylesheet from "
        "https://cdn.jsdelivr.net, script from https://cdnjs.cloudflare.com, inline script, "
        "inline event handler"
    )
    assert observatory is not None
    names = [m["name"] for m in observatory["modifiers"]]  # type: ignore[index, union-attr]
    assert not [n for n in names if n.startswith("csp-implemented-with-no-unsafe")], names


@pytest.mark.covers("LIV026:pass")
@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Security-Policy": FITTING},
        {"Content-Security-Policy-Report-Only": STRICT},  # reports, blocks nothing
        {},
    ],
    ids=["policy-fits-the-page", "report-only", "no-policy"],
)
def test_a_csp_the_page_fits_is_not_reported(
    tmp_path: Path, site: Site, headers: dict[str, str]
) -> None:
    site.headers = {**GOOD_HEADERS, **headers}
    findings, _ = live(tmp_path, site.url())
    assert not [f for f in findings if f.id == "LIV026"], describe(findings)


@pytest.mark.parametrize("chosen", [False, True], ids=["by-accident", "spec-says-so"])
def test_a_report_only_csp_is_named_for_what_it_is(
    tmp_path: Path, site: Site, chosen: bool
) -> None:
    """Report-Only protects nothing: a warning, unless flaskprod.toml chose it
    (http.csp_report_only, for pages a policy would break), then a note."""
    if chosen:
        (tmp_path / "flaskprod.toml").write_text(
            '[app]\ntarget = "app:app"\nname = "x"\n\n[http]\ncsp_report_only = true\n'
        )
    site.headers = {**GOOD_HEADERS, "Content-Security-Policy-Report-Only": STRICT}
    findings, _ = live(tmp_path, site.url())
    (finding,) = [f for f in findings if f.id == "LIV021"]
    assert finding.message.startswith("the CSP is only reported")
    assert finding.level is (Level.INFO if chosen else Level.WARNING)


def test_an_up_route_is_a_common_health_path(tmp_path: Path, site: Site) -> None:
    """docker-flask-example answers /up (Rails' name): no spec, and LIV050 is content."""
    findings, _ = live(tmp_path, site.url())
    assert "none of the common health paths" in " ".join(
        f.message for f in findings if f.id == "LIV050"
    )
    site.extra = ("/up",)
    findings, _ = live(tmp_path, site.url())
    assert not [f for f in findings if f.id == "LIV050"], describe(findings)
