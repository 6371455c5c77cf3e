"""Rules of the ``live`` layer: what a running deployment answers (``check --url``).

Every rule reads the probes' shared results (flaskprod.check.live). A probe that timed
out or failed gives a "could not check" warning of the rule that needed it, never a
pass; rules that read the home page say nothing when LIV000 already reports it down.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from flaskprod.check.context import Context
from flaskprod.check.live import live_report, observatory
from flaskprod.check.model import Finding, Level, Rule, rule
from flaskprod.spec.cache_names import is_immutable_name

_LIVE = "live"


def _value(ctx: Context, name: str, owner: Rule, out: list[Finding]) -> Any:
    """The probe's value, or None with a "could not check" finding appended."""
    report = live_report(ctx)
    if not report.get("home").ok:
        return None  # the site does not answer at all: LIV000 says so, once
    outcome = report.get(name)
    if outcome.ok:
        return outcome.value
    out.append(
        owner.finding(
            f"could not check ({name} probe): {outcome.why_not(report.timeout)}",
            level=Level.WARNING,
            hint="Make sure the URL answers from here; raise --timeout if the site is slow.",
        )
    )
    return None


def _home(ctx: Context) -> dict[str, Any] | None:
    outcome = live_report(ctx).get("home")
    value: dict[str, Any] | None = outcome.value if outcome.ok else None
    return value


@rule(
    "LIV000",
    layer=_LIVE,
    level=Level.ERROR,
    title="The URL does not answer",
    help="The home page could not be fetched: check DNS, the firewall, nginx and the "
    "certificate (the other live rules need it).",
)
def unreachable(ctx: Context) -> Iterator[Finding]:
    report = live_report(ctx)
    outcome = report.get("home")
    if not outcome.ok:
        yield unreachable.finding(f"{report.url}: {outcome.why_not(report.timeout)}")
    elif outcome.value["status"] >= 500:
        # The site is down for every visitor: whatever its headers, not an A.
        yield unreachable.finding(
            f"{report.url} answers {outcome.value['status']}", level=Level.CRITICAL
        )


# -- redirect ---------------------------------------------------------------------------


def _redirect(ctx: Context, owner: Rule, out: list[Finding]) -> list[dict[str, Any]] | None:
    value = _value(ctx, "redirect", owner, out)
    if not value or "hops" not in value:
        return None
    hops: list[dict[str, Any]] = value["hops"]
    return hops


@rule(
    "LIV001",
    layer=_LIVE,
    level=Level.ERROR,
    title="HTTP does not redirect to HTTPS",
    help="Answer every plain-http request with 301 to the same URL on https "
    "(nginx: 'return 301 https://$host$request_uri;' in the port 80 server).",
)
def no_https_redirect(ctx: Context) -> Iterator[Finding]:
    out: list[Finding] = []
    hops = _redirect(ctx, no_https_redirect, out)
    yield from out
    if hops is None:
        return
    if len(hops) < 2:
        yield no_https_redirect.finding(
            f"{hops[0]['url']} answers {hops[0]['status']} instead of redirecting to https"
        )
    elif not hops[-1]["url"].startswith("https://"):
        yield no_https_redirect.finding(f"the redirects from http end on {hops[-1]['url']}")


@rule(
    "LIV002",
    layer=_LIVE,
    level=Level.WARNING,
    title="The HTTPS redirect goes to another host or through an http hop",
    help="Redirect http://host/ straight to https://host/ (same host, one hop): a first "
    "hop to another host or to http keeps HSTS from protecting the first visit.",
)
def redirect_hops(ctx: Context) -> Iterator[Finding]:
    hops = _redirect(ctx, redirect_hops, [])
    if not hops or len(hops) < 2:
        return
    first = hops[1]["url"]
    if not first.startswith("https://") and hops[-1]["url"].startswith("https://"):
        yield redirect_hops.finding(f"the first redirect goes to {first}, still plain http")
    if urlsplit(first).hostname != urlsplit(hops[0]["url"]).hostname:
        yield redirect_hops.finding(f"http redirects to another host: {first}")


@rule(
    "LIV003",
    layer=_LIVE,
    level=Level.WARNING,
    title="The HTTPS redirect loses the path",
    help="Keep the path and query: 'return 301 https://$host$request_uri;' (not a "
    "redirect to '/').",
)
def redirect_loses_path(ctx: Context) -> Iterator[Finding]:
    report = live_report(ctx)
    outcome = report.get("redirect")
    if not outcome.ok or "hops" not in outcome.value or len(outcome.value["hops"]) < 2:
        return
    marker = outcome.value["marker"]
    final = outcome.value["hops"][-1]["url"]
    parts = urlsplit(final)
    if f"{parts.path}?{parts.query}" != marker:
        yield redirect_loses_path.finding(f"http{marker.split('?')[0]}... redirects to {final}")


# -- TLS --------------------------------------------------------------------------------


def _certificate(ctx: Context, owner: Rule, out: list[Finding]) -> dict[str, Any] | None:
    if urlsplit(str(ctx.options["url"])).scheme != "https":
        return None
    value: dict[str, Any] | None = _value(ctx, "certificate", owner, out)
    return value


@rule(
    "LIV010",
    layer=_LIVE,
    level=Level.CRITICAL,
    title="The certificate does not verify",
    help="Serve the full chain (fullchain.pem, not cert.pem) from a trusted CA; "
    "certbot/Let's Encrypt does both. For a private CA pass --ca FILE.",
)
def certificate_invalid(ctx: Context) -> Iterator[Finding]:
    out: list[Finding] = []
    facts = _certificate(ctx, certificate_invalid, out)
    yield from out
    if not facts or not facts.get("verify_error"):
        return
    error = str(facts["verify_error"])
    if "self-signed" in error or "self signed" in error or "hostname mismatch" in error.lower():
        return  # LIV011 / LIV012 say it more precisely
    yield certificate_invalid.finding(f"the certificate does not verify: {error}")


@rule(
    "LIV011",
    layer=_LIVE,
    level=Level.ERROR,
    title="The certificate is self-signed",
    help="Browsers refuse it: get one from a public CA (certbot). For a private CA, "
    "check with --ca FILE.",
)
def self_signed(ctx: Context) -> Iterator[Finding]:
    facts = _certificate(ctx, self_signed, [])
    if facts and facts.get("verify_error") and facts.get("self_signed"):
        yield self_signed.finding(f"self-signed certificate ({facts['subject']})")
    elif facts and "self-signed" in str(facts.get("verify_error") or ""):
        yield self_signed.finding(f"the chain ends on a self-signed root: {facts['issuer']}")


@rule(
    "LIV012",
    layer=_LIVE,
    level=Level.CRITICAL,
    title="The certificate is for another name",
    help="Issue the certificate for every domain nginx serves (server_name), e.g. "
    "'certbot --nginx -d example.com -d www.example.com'.",
)
def wrong_name(ctx: Context) -> Iterator[Finding]:
    facts = _certificate(ctx, wrong_name, [])
    if facts and "hostname mismatch" in str(facts.get("verify_error") or "").lower():
        host = urlsplit(str(ctx.options["url"])).hostname
        names = ", ".join(facts["names"]) or "no names"
        yield wrong_name.finding(f"{host} is not among the certificate's names ({names})")


@rule(
    "LIV013",
    layer=_LIVE,
    level=Level.WARNING,
    title="The certificate expires soon",
    help="Renew it (certbot renew) and make renewal automatic: a timer and a deploy hook "
    "that reloads nginx. Warning within 30 days, error within 7.",
)
def expiring(ctx: Context) -> Iterator[Finding]:
    facts = _certificate(ctx, expiring, [])
    if not facts:
        return
    days = float(facts["days_left"])
    if days < 30:
        level = Level.ERROR if days < 7 else Level.WARNING
        yield expiring.finding(
            f"the certificate expires in {days:.1f} days ({facts['not_after']})", level=level
        )


@rule(
    "LIV014",
    layer=_LIVE,
    level=Level.WARNING,
    title="TLS 1.0 or 1.1 accepted",
    help="Allow only modern versions: 'ssl_protocols TLSv1.2 TLSv1.3;' in nginx.",
)
def old_tls(ctx: Context) -> Iterator[Finding]:
    if urlsplit(str(ctx.options["url"])).scheme != "https":
        return
    out: list[Finding] = []
    versions = _value(ctx, "protocols", old_tls, out)
    yield from out
    if versions is None:
        return
    accepted = [n.replace("_", ".") for n in ("TLSv1", "TLSv1_1") if versions.get(n)]
    if accepted:
        yield old_tls.finding(f"the server completes a handshake with {', '.join(accepted)}")


@rule(
    "LIV015",
    layer=_LIVE,
    level=Level.WARNING,
    title="No TLS 1.3",
    help="Enable it: 'ssl_protocols TLSv1.2 TLSv1.3;' (nginx with OpenSSL 1.1.1+).",
)
def no_tls13(ctx: Context) -> Iterator[Finding]:
    if urlsplit(str(ctx.options["url"])).scheme != "https":
        return
    versions = _value(ctx, "protocols", no_tls13, [])
    if versions is not None and versions.get("TLSv1_3") is False:
        yield no_tls13.finding("a TLS 1.3 handshake is refused")


# -- security headers -------------------------------------------------------------------


def _headers(ctx: Context) -> list[tuple[str, str]] | None:
    home = _home(ctx)
    return None if home is None else [(str(k), str(v)) for k, v in home["headers"]]


@rule(
    "LIV020",
    layer=_LIVE,
    level=Level.ERROR,
    title="HSTS missing or weak",
    help="Send 'Strict-Transport-Security: max-age=63072000' (two years; at least six "
    "months) on every https response: nginx 'add_header ... always;'.",
)
def hsts(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None or urlsplit(str(ctx.options["url"])).scheme != "https":
        return
    found = observatory.values(headers, "strict-transport-security")
    if not found:
        yield hsts.finding("no Strict-Transport-Security header")
        return
    age = observatory.hsts_max_age(found[0])
    if age is None:
        yield hsts.finding(f"Strict-Transport-Security without max-age: {found[0]!r}")
    elif age < observatory.SIX_MONTHS:
        yield hsts.finding(f"HSTS max-age={age} is under six months", level=Level.WARNING)


@rule(
    "LIV021",
    layer=_LIVE,
    level=Level.WARNING,
    title="Content-Security-Policy missing or allows inline scripts",
    help="Send a CSP such as \"default-src 'self'\"; move inline scripts to files "
    "(or use nonces) instead of allowing 'unsafe-inline' in script-src.",
)
def csp(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None:
        return
    found = observatory.values(headers, "content-security-policy")
    reported = observatory.values(headers, "content-security-policy-report-only")
    if not found and reported:
        chosen = ctx.spec is not None and ctx.spec.http.csp_report_only
        yield csp.finding(
            "the CSP is only reported (Content-Security-Policy-Report-Only), not enforced"
            + (": flaskprod.toml's http.csp_report_only, until the pages fit it" if chosen else ""),
            level=Level.INFO if chosen else Level.WARNING,
        )
    elif not found:
        yield csp.finding("no Content-Security-Policy header")
    elif "'unsafe-inline'" in observatory.csp_script_sources(found[0]):
        yield csp.finding(f"the CSP allows inline scripts: {found[0]!r}")


@rule(
    "LIV022",
    layer=_LIVE,
    level=Level.WARNING,
    title="No frame protection",
    help="Send 'X-Frame-Options: DENY' (or SAMEORIGIN) or a CSP with frame-ancestors, "
    "so other sites cannot frame yours (clickjacking).",
)
def frames(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None:
        return
    if "x-frame-options-not-implemented" in observatory.modifiers(headers, None):
        found = observatory.values(headers, "x-frame-options")
        detail = f"X-Frame-Options {found[0]!r} is not DENY/SAMEORIGIN" if found else "none sent"
        yield frames.finding(f"no frame protection ({detail})")


@rule(
    "LIV023",
    layer=_LIVE,
    level=Level.WARNING,
    title="X-Content-Type-Options missing",
    help="Send 'X-Content-Type-Options: nosniff' so browsers do not guess content types.",
)
def nosniff(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None:
        return
    found = observatory.values(headers, "x-content-type-options")
    if [v.strip().lower() for v in found][:1] != ["nosniff"]:
        yield nosniff.finding(f"X-Content-Type-Options is {found[0]!r}" if found else "not sent")


@rule(
    "LIV024",
    layer=_LIVE,
    level=Level.INFO,
    title="Referrer-Policy missing or unsafe",
    help="Send 'Referrer-Policy: strict-origin-when-cross-origin' (or stricter); "
    "unsafe-url leaks full URLs to other sites.",
)
def referrer(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None:
        return
    found = observatory.modifiers(headers, None)
    if "referrer-policy-unsafe" in found:
        yield referrer.finding("the Referrer-Policy leaks URLs", level=Level.WARNING)
    elif not observatory.values(headers, "referrer-policy"):
        yield referrer.finding("no Referrer-Policy header (browsers' default applies)")


@rule(
    "LIV025",
    layer=_LIVE,
    level=Level.WARNING,
    title="A security header sent twice",
    help="Set each security header in one place (nginx or the app, not both): browsers "
    "combine or pick one of conflicting values, which weakens the policy.",
)
def duplicate_headers(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None:
        return
    for name in observatory.SECURITY_HEADERS:
        found = observatory.values(headers, name)
        if len(found) < 2:
            continue
        if len({v.strip().lower() for v in found}) > 1:
            yield duplicate_headers.finding(
                f"{name} sent {len(found)} times with conflicting values: {found}",
                level=Level.ERROR,
            )
        else:
            yield duplicate_headers.finding(f"{name} sent {len(found)} times")


@rule(
    "LIV026",
    layer=_LIVE,
    level=Level.WARNING,
    title="The CSP blocks what the page itself loads",
    help="Make the policy allow what the page loads (the CDN origins in script-src / "
    "style-src, nonces or hashes for inline code), or move that code into your static "
    "files; until then send it as Content-Security-Policy-Report-Only, which reports "
    "without breaking the page.",
    example="CSP default-src 'self' on a page loading Bootstrap from a CDN",
)
def csp_breaks_page(ctx: Context) -> Iterator[Finding]:
    home = _home(ctx)
    if home is None or home["status"] >= 400:
        return
    from flaskprod.check.live.csp import page_blocked  # html.parser: only with --url

    found = page_blocked(home)
    if found:
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        yield csp_breaks_page.finding(
            f"the Content-Security-Policy blocks what the home page loads: {shown}"
        )


# -- cookies ----------------------------------------------------------------------------


@rule(
    "LIV030",
    layer=_LIVE,
    level=Level.WARNING,
    title="Cookie without Secure, HttpOnly or SameSite",
    help="Set cookies with Secure, HttpOnly and SameSite=Lax (Flask: SESSION_COOKIE_SECURE"
    "=True, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE='Lax').",
)
def cookie_flags(ctx: Context) -> Iterator[Finding]:
    pages = [h for h in [_home(ctx)] if h]
    crawl = live_report(ctx).get("crawl")
    if crawl.ok:
        pages += [p for p in crawl.value if p.get("headers")]
    seen: set[str] = set()
    for page in pages:
        for cookie in observatory.cookies([(str(k), str(v)) for k, v in page["headers"]]):
            missing = [
                flag
                for flag, present in (
                    ("Secure", cookie.secure),
                    ("HttpOnly", cookie.httponly),
                    ("SameSite", cookie.samesite),
                )
                if not present
            ]
            if not missing or cookie.name in seen:
                continue
            seen.add(cookie.name)
            session = cookie.session and ("Secure" in missing or "HttpOnly" in missing)
            kind = "session cookie" if cookie.session else "cookie"
            yield cookie_flags.finding(
                f"{kind} {cookie.name!r} (from {page['url']}) without {', '.join(missing)}",
                level=Level.ERROR if session else Level.WARNING,
            )


# -- leaks ------------------------------------------------------------------------------


@rule(
    "LIV040",
    layer=_LIVE,
    level=Level.CRITICAL,
    title="The Werkzeug debugger is reachable",
    help="Never run with debug on in production: remove FLASK_DEBUG/app.run(debug=True) "
    "and serve the app with gunicorn. The debugger runs any Python code a visitor sends.",
)
def debugger(ctx: Context) -> Iterator[Finding]:
    out: list[Finding] = []
    record = _value(ctx, "debugger", debugger, out)
    yield from out
    body = record["body"] if record and record["status"] == 200 else ""
    # markers of Werkzeug's debugger.js (a page that ignores the query does not have them)
    if "__debugger__" in body and ("EVALEX" in body or "docReady" in body):
        yield debugger.finding(f"{record['url']} serves the debugger's JavaScript")


_TRACE = re.compile(
    r"Traceback \(most recent call last\)|File &quot;[^&]+&quot;, line \d+|"
    r'File "[^"]+", line \d+|Werkzeug Debugger|werkzeug\.exceptions'
)


@rule(
    "LIV041",
    layer=_LIVE,
    level=Level.ERROR,
    title="A stack trace in an error page",
    help="Error pages must not show code: turn debug off and render your own 404/500 "
    "pages (Flask errorhandler); log the traceback instead.",
)
def stack_trace(ctx: Context) -> Iterator[Finding]:
    out: list[Finding] = []
    record = _value(ctx, "not_found", stack_trace, out)
    yield from out
    pages = [record] if record else []
    crawl = live_report(ctx).get("crawl")
    if crawl.ok:
        pages += [p for p in crawl.value if (p.get("status") or 0) >= 500]
    for page in pages:
        if page.get("body") and _TRACE.search(page["body"]):
            yield stack_trace.finding(f"{page['url']} ({page['status']}) shows a stack trace")


@rule(
    "LIV042",
    layer=_LIVE,
    level=Level.WARNING,
    title="The Server header tells the version",
    help="Hide versions: 'server_tokens off;' in nginx (gunicorn's own header is "
    "replaced by nginx when it proxies).",
)
def server_version(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None:
        return
    for value in observatory.values(headers, "server"):
        if re.search(r"\d+\.\d+", value):
            yield server_version.finding(f"Server: {value}")


@rule(
    "LIV043",
    layer=_LIVE,
    level=Level.WARNING,
    title="X-Powered-By is sent",
    help="Drop it: it only tells attackers what to try ('proxy_hide_header X-Powered-By;').",
)
def powered_by(ctx: Context) -> Iterator[Finding]:
    headers = _headers(ctx)
    if headers is None:
        return
    for value in observatory.values(headers, "x-powered-by"):
        yield powered_by.finding(f"X-Powered-By: {value}")


# -- health -----------------------------------------------------------------------------


@rule(
    "LIV050",
    layer=_LIVE,
    level=Level.ERROR,
    title="A health path does not answer 200 within a second",
    help="Serve liveness and readiness through nginx (Production(app) adds /health and "
    "/health/ready); load balancers and deploys gate on them.",
)
def health(ctx: Context) -> Iterator[Finding]:
    out: list[Finding] = []
    value = _value(ctx, "health", health, out)
    yield from out
    if value is None:
        return
    paths: dict[str, dict[str, Any]] = value["paths"]
    if not value["from_spec"]:
        if not any(r.get("status") == 200 for r in paths.values()):
            yield health.finding(
                f"none of the common health paths answers 200 ({', '.join(paths)})",
                level=Level.WARNING,
            )
        return
    for path, record in paths.items():
        if record.get("slow"):
            late = f" (answered {record['status']} after {record['elapsed']:.1f} s)"
            yield health.finding(
                f"{path} did not answer within 1 s" + (late if record.get("status") else "")
            )
        elif record.get("status") != 200:
            got = record.get("status") or record.get("error")
            yield health.finding(f"{path} answers {got}")


def _failed_checks(data: Any) -> list[str]:
    """Names of dependencies a readiness document reports as failed."""
    bad = {"fail", "failed", "error", "down", "unhealthy", "degraded", "false"}
    failed = []
    checks = data.get("checks") if isinstance(data, dict) else None
    items = checks.items() if isinstance(checks, dict) else []
    for name, result in items:
        status = result.get("status") if isinstance(result, dict) else result
        if str(status).lower() in bad:
            failed.append(str(name))
    if isinstance(data, dict) and str(data.get("status", "")).lower() in bad and not failed:
        failed.append("status")
    return failed


@rule(
    "LIV051",
    layer=_LIVE,
    level=Level.ERROR,
    title="Readiness answers 200 while a dependency failed",
    help="Answer 503 when a dependency the app needs is down, so load balancers and "
    "deploys stop sending traffic to it.",
)
def ready_lies(ctx: Context) -> Iterator[Finding]:
    report = live_report(ctx)
    outcome = report.get("health")
    if not outcome.ok:
        return
    for path, record in outcome.value["paths"].items():
        if record.get("status") != 200:
            continue
        try:
            data = json.loads(record.get("body") or "")
        except ValueError:
            continue
        failed = _failed_checks(data)
        if failed:
            yield ready_lies.finding(f"{path} answers 200 but reports {', '.join(failed)} failed")


# -- static files -----------------------------------------------------------------------

_TEXT = ("text/", "javascript", "json", "svg", "xml")
_LONG_LIVED = 7 * 86400
#: Headers Flask/Werkzeug put on files it serves itself and nginx never does.
_APP_TELLTALES = ("content-disposition",)


def _assets(ctx: Context, owner: Rule, out: list[Finding]) -> list[dict[str, Any]]:
    if _home(ctx) is None:
        return []
    value: list[dict[str, Any]] | None = _value(ctx, "assets", owner, out)
    return [a for a in value or [] if a["status"] == 200]


@rule(
    "LIV060",
    layer=_LIVE,
    level=Level.WARNING,
    title="Static files without long-lived cache headers",
    help="Give files names that never mean other bytes (a content hash, a fingerprint, a "
    "fresh uuid for an upload) and serve those with 'Cache-Control: public, "
    "max-age=31536000, immutable'; files with plain names need a short max-age with "
    "must-revalidate, or a deploy's new file is not seen ('no-cache' asks again on every "
    "page). Static files and "
    "uploads (/media/<uuid>.png) alike; the kit's nginx chooses by the same pattern.",
)
def static_cache(ctx: Context) -> Iterator[Finding]:
    out: list[Finding] = []
    assets = _assets(ctx, static_cache, out)
    yield from out
    for asset in assets:
        control = ", ".join(observatory.values(asset["headers"], "cache-control")).lower()
        match = re.search(r"max-age=(\d+)", control)
        if "immutable" in control or (match and int(match.group(1)) >= _LONG_LIVED):
            continue
        path = urlsplit(asset["url"]).path
        if not is_immutable_name(path) and match and "must-revalidate" in control:
            continue  # a plain name cached briefly and revalidated: the right policy for it
        yield static_cache.finding(
            f"{urlsplit(asset['url']).path}: Cache-Control {control or 'missing'}"
        )


@rule(
    "LIV061",
    layer=_LIVE,
    level=Level.WARNING,
    title="Text assets served uncompressed",
    help="Turn on compression for text types: 'gzip on; gzip_types text/css "
    "application/javascript image/svg+xml ...;' in nginx.",
)
def uncompressed(ctx: Context) -> Iterator[Finding]:
    for asset in _assets(ctx, uncompressed, []):
        kind = ", ".join(observatory.values(asset["headers"], "content-type")).lower()
        if not any(t in kind for t in _TEXT) or asset["size"] < 1024:
            continue
        if not observatory.values(asset["headers"], "content-encoding"):
            yield uncompressed.finding(
                f"{urlsplit(asset['url']).path} ({kind}, {asset['size']} bytes) is not compressed"
            )


@rule(
    "LIV062",
    layer=_LIVE,
    level=Level.WARNING,
    title="Static files served by the app",
    help="Let nginx serve them ('location /static/ { alias /srv/app/static/; }'): the app's "
    "workers are for requests only the app can answer.",
)
def static_by_app(ctx: Context) -> Iterator[Finding]:
    for asset in _assets(ctx, static_by_app, []):
        headers = asset["headers"]
        telltales = [name for name in _APP_TELLTALES if observatory.values(headers, name)]
        if "cookie" in ", ".join(observatory.values(headers, "vary")).lower():
            telltales.append("vary: cookie")
        if telltales:
            yield static_by_app.finding(
                f"{urlsplit(asset['url']).path} carries the app's headers ({', '.join(telltales)})"
            )


# -- body limit, crawl ------------------------------------------------------------------


@rule(
    "LIV070",
    layer=_LIVE,
    level=Level.WARNING,
    title="A body over the limit is not refused by the proxy",
    help="Set nginx 'client_max_body_size' to the spec's [http] max_body so nginx answers "
    "413 before the body reaches the app.",
    requires=("spec",),
)
def body_limit(ctx: Context) -> Iterator[Finding]:
    if urlsplit(str(ctx.options["url"])).scheme != "https":
        return
    out: list[Finding] = []
    value = _value(ctx, "upload", body_limit, out)
    yield from out
    if not value or "skipped" in value:
        return
    if value["status"] is None:
        yield body_limit.finding(
            f"a request announcing {value['limit'] + 1} bytes was not refused: the proxy "
            "waited for the body"
        )
    elif value["status"] != 413:
        yield body_limit.finding(
            f"a request announcing {value['limit'] + 1} bytes got {value['status']}, not 413"
        )
    elif value.get("by_app"):
        yield body_limit.finding(
            f"a request announcing {value['limit'] + 1} bytes was refused by the app "
            "(Werkzeug's 413 page), not by the proxy"
        )


@rule(
    "LIV080",
    layer=_LIVE,
    level=Level.ERROR,
    title="A crawled page answers 5xx",
    help="Fix the page's error (see the app's log for its request id); --crawl N follows "
    "same-origin links from the home page.",
)
def crawl_errors(ctx: Context) -> Iterator[Finding]:
    out: list[Finding] = []
    pages = _value(ctx, "crawl", crawl_errors, out) if ctx.options.get("crawl") else []
    yield from out
    for page in pages or []:
        if page.get("status") is not None and page["status"] >= 500:
            yield crawl_errors.finding(f"{page['url']} answers {page['status']}")
