"""``flaskprod check --url`` against real servers: the shop under ``flaskprod up`` (the
passing case of every live rule) and one nginx with deliberately misconfigured sites in
front of a careless gunicorn app (the failing cases). Each test declares the rule cases
it proves with ``@pytest.mark.covers("LIV001:fail", ...)``; the meta-test in
tests/check/test_rule_fixtures.py requires a failing and a passing case per rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from live_support import (
    BadSites,
    Shop,
    describe,
    flaskprod,
    ids,
    run_live,
    start_bad_sites,
    start_shop,
)

from flaskprod.check.live import live_report, observatory
from flaskprod.check.model import REGISTRY, Finding, Level
from flaskprod.check.runner import CheckResult, load_rules

load_rules()
LIVE_IDS = sorted(r.id for r in REGISTRY if r.layer == "live")
ALL_PASS = [f"{rule_id}:pass" for rule_id in LIVE_IDS]


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    yield from start_shop("flaskprod-live-shop-", seed=True)  # uploads on the home page


@pytest.fixture(scope="module")
def bad() -> Iterator[BadSites]:
    yield from start_bad_sites()


@pytest.fixture(scope="module")
def shop_result(shop: Shop) -> CheckResult:
    return run_live(shop.project, url=shop.url, ca=str(shop.ca), crawl=10)


@pytest.fixture(scope="module")
def careless_result(bad: BadSites, shop: Shop) -> CheckResult:
    """The careless site, checked with the shop's spec (its health paths, 10m limit)."""
    return run_live(
        shop.project,
        url=bad.url("careless_https"),
        ca=str(bad.ca),
        crawl=5,
        http_url=bad.http("careless_http"),
    )


@pytest.fixture(scope="module")
def careless(careless_result: CheckResult) -> list[Finding]:
    return careless_result.findings


def test_careless_observatory_score(careless_result: CheckResult) -> None:
    observatory = careless_result.context.cache["observatory"]
    applied = {m["name"]: m["points"] for m in observatory["modifiers"]}
    assert applied == {
        "csp-implemented-with-unsafe-inline": -20,
        "hsts-not-implemented": -20,
        "x-content-type-options-not-implemented": -5,
        "referrer-policy-unsafe": -5,
        "redirection-missing": -20,
        "cookies-session-without-secure-flag": -40,
        "cookies-session-without-httponly-flag": -30,
    }, observatory
    # 100 - 140, never below 0; bonuses only count from 90 up
    assert (observatory["score"], observatory["grade"]) == (0, "F")


@pytest.mark.covers(*ALL_PASS)
def test_the_shop_under_up_gives_nothing_at_warning_or_above(shop_result: CheckResult) -> None:
    findings = shop_result.findings
    assert not ids(findings, Level.WARNING), describe(findings)
    # every live rule really ran (nothing skipped for a missing precondition)
    assert sorted(shop_result.rules_run) == LIVE_IDS
    observatory = shop_result.context.cache["observatory"]
    assert observatory["grade"] in ("A+", "A"), observatory


@pytest.mark.covers("LIV060:pass")
def test_uploads_named_by_uuid_are_immutable(shop_result: CheckResult) -> None:
    """The seeded shop's product images (/media/<uuid4 hex>.png) are among the assets
    LIV060 judged, served for a year as immutable by the kit's nginx; its static files
    (plain names) briefly, revalidated (issue #15: LIV060 warned on the shop's uploads)."""
    assets = live_report(shop_result.context).get("assets").value
    control = {
        urlsplit(a["url"]).path: ", ".join(observatory.values(a["headers"], "cache-control"))
        for a in assets
    }
    media = {path: value for path, value in control.items() if path.startswith("/media/")}
    assert media, control
    assert set(media.values()) == {"public, max-age=31536000, immutable"}, control
    static = {path: value for path, value in control.items() if path.startswith("/static/")}
    assert static and set(static.values()) == {"public, max-age=3600, must-revalidate"}, control


@pytest.mark.covers(
    "LIV001:fail",
    "LIV014:fail",
    "LIV015:fail",
    "LIV020:fail",
    "LIV021:fail",
    "LIV023:fail",
    "LIV024:fail",
    "LIV025:fail",
    "LIV042:fail",
    "LIV043:fail",
)
def test_careless_nginx_headers_redirect_and_tls(careless: list[Finding]) -> None:
    found = {f.id: f for f in careless}
    text = describe(careless)
    assert "LIV001" in found, text  # http answers 200, no redirect
    assert "TLSv1" in found["LIV014"].message, text
    assert "LIV015" in found, text
    assert found["LIV020"].message == "no Strict-Transport-Security header"
    assert "unsafe-inline" in found["LIV021"].message
    assert "LIV023" in found, text
    assert found["LIV024"].level == Level.WARNING  # unsafe-url
    assert "x-frame-options" in found["LIV025"].message  # DENY from nginx, SAMEORIGIN app
    assert found["LIV025"].level == Level.ERROR
    assert found["LIV042"].message.startswith("Server: nginx/1.")  # server_tokens on
    assert found["LIV043"].message == "X-Powered-By: Flask/3"


@pytest.mark.covers("LIV022:fail")
def test_no_frame_protection(bad: BadSites, shop: Shop) -> None:
    # the "good" site answers with nginx's return: none of the security headers
    findings = run_live(shop.project, url=bad.url("good_https"), ca=str(bad.ca)).findings
    assert "LIV022" in ids(findings), describe(findings)


@pytest.mark.covers(
    "LIV030:fail", "LIV040:fail", "LIV041:fail", "LIV050:fail", "LIV051:fail", "LIV080:fail"
)
def test_careless_app_debugger_cookie_health_and_crawl(careless: list[Finding]) -> None:
    found: dict[str, list[Finding]] = {}
    for finding in careless:
        found.setdefault(finding.id, []).append(finding)
    text = describe(careless)
    cookie = found["LIV030"][0]
    assert "'sessionid'" in cookie.message and cookie.level == Level.ERROR, text
    assert "Secure, HttpOnly, SameSite" in cookie.message
    assert found["LIV040"][0].level == Level.CRITICAL, text
    assert any("/boom" in f.message for f in found["LIV041"]), text
    assert any(
        f.message.startswith("/health did not answer within 1 s") for f in found["LIV050"]
    ), text
    assert "database failed" in found["LIV051"][0].message, text
    assert any("/boom answers 500" in f.message for f in found["LIV080"]), text


@pytest.mark.covers("LIV060:fail", "LIV061:fail", "LIV062:fail", "LIV070:fail")
def test_careless_static_files_and_body_limit(careless: list[Finding]) -> None:
    found = {f.id: f for f in careless}
    text = describe(careless)
    assert "/static/site.css" in found["LIV060"].message, text
    assert "not compressed" in found["LIV061"].message, text
    assert "content-disposition" in found["LIV062"].message, text
    assert "waited for the body" in found["LIV070"].message, text


def test_a_body_limit_enforced_only_by_the_app(bad: BadSites, shop: Shop) -> None:
    findings = run_live(
        shop.project, url=bad.url("app_limit_https"), ca=str(bad.ca), select=("LIV070",)
    ).findings
    assert [f.message for f in findings] == [
        "a request announcing 10485761 bytes was refused by the app (Werkzeug's 413 page), "
        "not by the proxy"
    ], describe(findings)


@pytest.mark.covers("LIV002:fail", "LIV003:fail", "LIV010:fail", "LIV013:fail")
def test_off_host_redirect_losing_the_path_to_an_expired_certificate(
    bad: BadSites, shop: Shop
) -> None:
    findings = run_live(
        shop.project,
        url=bad.url("expired_https"),
        ca=str(bad.ca),
        http_url=bad.http("offhost_http"),
    ).findings
    found = {f.id: f for f in findings}
    text = describe(findings)
    assert "another host: https://127.0.0.1" in found["LIV002"].message, text
    assert "LIV003" in found, text
    assert "expired" in found["LIV010"].message, text
    assert found["LIV013"].level == Level.ERROR, text  # already past: within 7 days


@pytest.mark.covers("LIV013:fail")
def test_certificate_expiring_in_three_days(bad: BadSites, shop: Shop) -> None:
    findings = run_live(shop.project, url=bad.url("soon_https"), ca=str(bad.ca)).findings
    soon = [f for f in findings if f.id == "LIV013"]
    assert soon and soon[0].level == Level.ERROR, describe(findings)
    assert "LIV010" not in ids(findings)


def test_redirect_through_an_http_hop(bad: BadSites, shop: Shop) -> None:
    findings = run_live(
        shop.project, url=bad.url("good_https"), ca=str(bad.ca), http_url=bad.http("hop_http")
    ).findings
    hop = [f for f in findings if f.id == "LIV002"]
    assert hop and "still plain http" in hop[0].message, describe(findings)
    assert "LIV003" not in ids(findings)  # $request_uri kept the path


@pytest.mark.covers("LIV012:fail")
def test_certificate_for_another_name(bad: BadSites, shop: Shop) -> None:
    findings = run_live(shop.project, url=bad.url("wrong_name_https"), ca=str(bad.ca)).findings
    wrong = [f for f in findings if f.id == "LIV012"]
    assert wrong and "wrong.example" in wrong[0].message, describe(findings)
    assert "LIV010" not in ids(findings)


@pytest.mark.covers("LIV011:fail")
def test_self_signed_without_ca(shop: Shop) -> None:
    findings = run_live(shop.project, url=shop.url).findings
    assert ids(findings, Level.WARNING) == {"LIV011"}, describe(findings)


@pytest.mark.covers("LIV000:fail")
@pytest.mark.parametrize("site", ["dead_upstream_https", "wrong_socket_https"])
def test_dead_upstream_and_wrong_socket_give_502(bad: BadSites, shop: Shop, site: str) -> None:
    findings = run_live(shop.project, url=bad.url(site), ca=str(bad.ca)).findings
    down = [f for f in findings if f.id == "LIV000"]
    assert down and down[0].message.endswith("answers 502"), describe(findings)


def test_a_probe_that_times_out_is_reported_never_passed(bad: BadSites, shop: Shop) -> None:
    # /health sleeps 1.5 s; the upload probe waits 2 s: a 1 s budget cuts them off
    findings = run_live(
        shop.project, url=bad.url("careless_https"), ca=str(bad.ca), timeout=1.0
    ).findings
    timed_out = [f for f in findings if "did not finish within the total timeout" in f.message]
    assert {f.id for f in timed_out} >= {"LIV050", "LIV070"}, describe(findings)
    assert all(f.level == Level.WARNING for f in timed_out)


def test_cli_url_json_has_the_observatory_score(shop: Shop, tmp_path: object) -> None:
    result = flaskprod(
        "check", str(shop.project), "--url", shop.url, "--ca", str(shop.ca), "--format", "json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["observatory"]["grade"] in ("A+", "A")
    assert summary["rules_run"] == len(LIVE_IDS)


def test_cli_url_errors_are_one_line(shop: Shop) -> None:
    bad_url = flaskprod("check", str(shop.project), "--url", "ftp://x")
    missing_ca = flaskprod("check", str(shop.project), "--url", shop.url, "--ca", "/nope.pem")
    for result, needle in ((bad_url, "not an http(s) URL"), (missing_ca, "--ca /nope.pem")):
        assert result.returncode == 2, result.stderr
        assert needle in result.stderr and "Traceback" not in result.stderr


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.mark.browser
def test_html_report_shows_live_and_host_findings_with_the_score(
    shop: Shop, tmp_path: Path
) -> None:
    """--url (without --ca: the local CA is not trusted) and --host in one report, opened
    in headless Chromium; the screenshot is kept in test-artifacts/check-live-host.png."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    from flaskprod.check.report import render
    from flaskprod.check.summary import summarize

    result = run_live(shop.project, url=shop.url, host=True)
    summary = summarize(result, Level.WARNING)
    page_file = tmp_path / "report.html"
    page_file.write_text(render(result, summary, "html"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(page_file.as_uri())
            layers = [h.lower() for h in page.locator("main h2").all_inner_texts()]
            assert layers == ["live", "host"], layers
            ids_shown = page.locator(".f .id").all_inner_texts()
            assert "LIV011" in ids_shown and "HST010" in ids_shown, ids_shown
            assert page.locator(".grade b").inner_text() == summary["grade"]
            observatory = page.locator(".obs b").inner_text()
            grade = summary["observatory"]["grade"]
            assert observatory == f"HTTP Observatory: {grade} ({summary['observatory']['score']})"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "check-live-host.png"), full_page=True)
        finally:
            browser.close()
