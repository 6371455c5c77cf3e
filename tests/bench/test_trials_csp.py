"""bench.trials_csp: what a browser refuses to load under a page's CSP (the trials'
check that a 200 page is not broken by the kit's policy)."""

from __future__ import annotations

import base64
import hashlib

from bench.trials_csp import blocked

PAGE = "https://localhost:8443/auth/login"
# microblog's base template, as served: Bootstrap and moment from CDNs, inline scripts.
HTML = """<html><head>
<link href="https://cdn.jsdelivr.net/npm/bootstrap@5.3.2/dist/css/bootstrap.min.css"
 rel="stylesheet">
<link rel="icon" href="https://elsewhere.example/favicon.ico">
</head><body><img src="/static/loading.gif">
<script src="https://cdn.jsdelivr.net/npm/bootstrap@5.3.2/dist/js/bootstrap.bundle.min.js"></script>
<script>moment.locale("en");</script>
<script type="application/json">{"data": 1}</script>
<script src="/static/app.js"></script>
</body></html>"""


def test_self_only_blocks_the_cdn_and_inline_code() -> None:
    assert blocked(HTML, PAGE, "default-src 'self'") == [
        "style https://cdn.jsdelivr.net/npm/bootstrap@5.3.2/dist/css/bootstrap.min.css",
        "script https://cdn.jsdelivr.net/npm/bootstrap@5.3.2/dist/js/bootstrap.bundle.min.js",
        "inline script",
    ]


def test_a_policy_that_names_what_the_page_loads_blocks_nothing() -> None:
    policy = (
        "default-src 'self'; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
        "style-src 'self' cdn.jsdelivr.net"
    )
    assert blocked(HTML, PAGE, policy) == []
    assert blocked(HTML, PAGE, "default-src *; script-src https: 'unsafe-inline'") == []


def test_nonces_and_hashes_turn_unsafe_inline_off() -> None:
    inline = 'moment.locale("en");'
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    cdn = "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'"
    assert blocked(HTML, PAGE, f"{cdn} 'nonce-abc'; style-src *") == ["inline script"]
    assert blocked(HTML, PAGE, f"{cdn} 'sha256-{digest}'; style-src *") == []
    with_nonce = HTML.replace("<script>", '<script nonce="abc">')
    assert blocked(with_nonce, PAGE, f"{cdn} 'nonce-abc'; style-src *") == []


def test_other_origins_and_schemes() -> None:
    assert blocked('<img src="http://localhost:8443/x.png">', PAGE, "img-src 'self'") == [
        "img http://localhost:8443/x.png"
    ]
    assert blocked('<img src="data:image/png;base64,AA">', PAGE, "img-src 'self' data:") == []
    assert blocked('<img src="https://a.cdn.example/x.png">', PAGE, "img-src *.cdn.example") == []


def test_the_first_asset_a_page_loads_from_its_own_origin() -> None:
    """What a trial GETs when the app has no static folder (CTFd serves its themes)."""
    import httpx

    from bench.trials_http import same_origin_asset

    def page(html: str) -> httpx.Response:
        return httpx.Response(200, text=html, request=httpx.Request("GET", PAGE))

    assert same_origin_asset(page(HTML)) == "/static/loading.gif"
    themed = '<link rel="stylesheet" href="/themes/core/static/main.css?d=1"><script>x()</script>'
    assert same_origin_asset(page(themed)) == "/themes/core/static/main.css?d=1"
    cdn_only = '<script src="https://unpkg.com/x.js"></script>'
    assert same_origin_asset(page(cdn_only)) is None
