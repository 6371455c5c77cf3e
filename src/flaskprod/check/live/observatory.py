"""Security headers and cookies read as Mozilla's HTTP Observatory reads them, with its
score modifiers for the tests ``--url`` runs (documented in docs/checks.md).

Start at 100, add every penalty, then add the bonuses only when the result is 90 or
more; never below 0. Grades as the Observatory's: A+ >= 100, A >= 90, A- >= 85, B+ >= 80,
B >= 70, B- >= 65, C+ >= 60, C >= 50, C- >= 45, D+ >= 40, D >= 30, D- >= 25, else F.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: (name, modifier, meaning), after the Observatory's scoring table.
MODIFIERS: dict[str, tuple[int, str]] = {
    "csp-not-implemented": (-25, "no Content-Security-Policy header"),
    "csp-implemented-with-unsafe-inline": (-20, "CSP allows 'unsafe-inline' scripts"),
    "csp-implemented-with-unsafe-eval": (-10, "CSP allows 'unsafe-eval'"),
    "csp-implemented-with-no-unsafe": (5, "CSP without 'unsafe-inline'/'unsafe-eval'"),
    "csp-implemented-with-no-unsafe-default-src-none": (10, "CSP default-src 'none', no unsafe"),
    "hsts-not-implemented": (-20, "no Strict-Transport-Security header"),
    "hsts-header-invalid": (-20, "Strict-Transport-Security cannot be read"),
    "hsts-implemented-max-age-less-than-six-months": (-10, "HSTS max-age below six months"),
    "x-content-type-options-not-implemented": (-5, "no X-Content-Type-Options: nosniff"),
    "x-frame-options-not-implemented": (-20, "no frame protection"),
    "x-frame-options-implemented-via-csp": (5, "frame protection by CSP frame-ancestors"),
    "referrer-policy-private": (5, "a Referrer-Policy that keeps URLs private"),
    "referrer-policy-unsafe": (-5, "Referrer-Policy unsafe-url or no-referrer-when-downgrade"),
    "redirection-missing": (-20, "http does not redirect to https"),
    "redirection-not-to-https": (-20, "the redirect does not end on https"),
    "redirection-not-to-https-on-initial-redirection": (-10, "first redirect to another http URL"),
    "redirection-off-host-from-http": (-5, "first redirect goes to another host"),
    "cookies-without-secure-flag": (-20, "a cookie without Secure"),
    "cookies-session-without-secure-flag": (-40, "a session cookie without Secure"),
    "cookies-session-without-httponly-flag": (-30, "a session cookie without HttpOnly"),
    "cookies-samesite-flag-invalid": (-20, "a cookie with an invalid SameSite"),
    "cookies-secure-with-httponly-sessions-and-samesite": (5, "cookies Secure, HttpOnly, SameSite"),
}
GRADES = (
    (100, "A+"),
    (90, "A"),
    (85, "A-"),
    (80, "B+"),
    (70, "B"),
    (65, "B-"),
    (60, "C+"),
    (50, "C"),
    (45, "C-"),
    (40, "D+"),
    (30, "D"),
    (25, "D-"),
    (0, "F"),
)
SIX_MONTHS = 15768000
SECURITY_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
)
_PRIVATE_REFERRER = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
}
_SESSION_NAMES = re.compile(r"sess|sid|auth|token|remember|login", re.IGNORECASE)


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k == name]


def hsts_max_age(value: str) -> int | None:
    match = re.search(r"max-age\s*=\s*\"?(\d+)", value, re.IGNORECASE)
    return int(match.group(1)) if match else None


def csp_directives(value: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            directives.setdefault(words[0].lower(), [w.lower() for w in words[1:]])
    return directives


def csp_script_sources(value: str) -> list[str]:
    parsed = csp_directives(value)
    return parsed.get("script-src", parsed.get("default-src", []))


@dataclass(frozen=True)
class Cookie:
    name: str
    secure: bool
    httponly: bool
    samesite: str | None

    @property
    def session(self) -> bool:
        return bool(_SESSION_NAMES.search(self.name))


def parse_cookie(header: str) -> Cookie:
    name = header.split("=", 1)[0].strip()
    attributes = {}
    for part in header.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attributes[key.lower()] = value.strip()
    return Cookie(
        name=name,
        secure="secure" in attributes,
        httponly="httponly" in attributes,
        samesite=attributes.get("samesite"),
    )


def cookies(headers: list[tuple[str, str]]) -> list[Cookie]:
    return [parse_cookie(v) for v in values(headers, "set-cookie")]


def modifiers(headers: list[tuple[str, str]], redirect: dict[str, Any] | None) -> list[str]:
    """The Observatory modifiers that apply to one HTTPS response (and the http entry's
    redirect chain, when probed)."""
    found: list[str] = []
    csp = values(headers, "content-security-policy")
    sources = csp_script_sources(csp[0]) if csp else []
    if not csp:
        found.append("csp-not-implemented")
    elif "'unsafe-inline'" in sources:
        found.append("csp-implemented-with-unsafe-inline")
    elif "'unsafe-eval'" in sources:
        found.append("csp-implemented-with-unsafe-eval")
    elif csp_directives(csp[0]).get("default-src") == ["'none'"]:
        found.append("csp-implemented-with-no-unsafe-default-src-none")
    else:
        found.append("csp-implemented-with-no-unsafe")
    hsts = values(headers, "strict-transport-security")
    if not hsts:
        found.append("hsts-not-implemented")
    else:
        age = hsts_max_age(hsts[0])
        if age is None:
            found.append("hsts-header-invalid")
        elif age < SIX_MONTHS:
            found.append("hsts-implemented-max-age-less-than-six-months")
    if [v.strip().lower() for v in values(headers, "x-content-type-options")][:1] != ["nosniff"]:
        found.append("x-content-type-options-not-implemented")
    if csp and "frame-ancestors" in csp_directives(csp[0]):
        found.append("x-frame-options-implemented-via-csp")
    elif not any(
        v.strip().upper() in ("DENY", "SAMEORIGIN") for v in values(headers, "x-frame-options")
    ):
        found.append("x-frame-options-not-implemented")
    referrer = [v.strip().lower() for v in values(headers, "referrer-policy")]
    if referrer and referrer[-1].split(",")[-1].strip() in _PRIVATE_REFERRER:
        found.append("referrer-policy-private")
    elif referrer and referrer[-1].split(",")[-1].strip() in (
        "unsafe-url",
        "no-referrer-when-downgrade",
    ):
        found.append("referrer-policy-unsafe")
    found += _redirect_modifiers(redirect)
    found += _cookie_modifiers(cookies(headers))
    return found


def _redirect_modifiers(redirect: dict[str, Any] | None) -> list[str]:
    if not redirect or "hops" not in redirect:
        return []  # not probed, or no http listener (the Observatory: not needed)
    hops = redirect["hops"]
    final = hops[-1]["url"]
    if len(hops) < 2:
        return ["redirection-missing"]
    if not final.startswith("https://"):
        return ["redirection-not-to-https"]
    first_target = hops[1]["url"]
    if not first_target.startswith("https://"):
        return ["redirection-not-to-https-on-initial-redirection"]
    from urllib.parse import urlsplit

    if urlsplit(first_target).hostname != urlsplit(hops[0]["url"]).hostname:
        return ["redirection-off-host-from-http"]
    return []


def _cookie_modifiers(found: list[Cookie]) -> list[str]:
    if not found:
        return []
    out = []
    if any(c.session and not c.secure for c in found):
        out.append("cookies-session-without-secure-flag")
    elif any(not c.secure for c in found):
        out.append("cookies-without-secure-flag")
    if any(c.session and not c.httponly for c in found):
        out.append("cookies-session-without-httponly-flag")
    if any(
        c.samesite is not None and c.samesite.lower() not in ("strict", "lax", "none")
        for c in found
    ):
        out.append("cookies-samesite-flag-invalid")
    if not out and all(c.samesite for c in found):
        out.append("cookies-secure-with-httponly-sessions-and-samesite")
    return out


def score(found: list[str]) -> dict[str, Any]:
    penalties = sum(MODIFIERS[m][0] for m in found if MODIFIERS[m][0] < 0)
    bonuses = sum(MODIFIERS[m][0] for m in found if MODIFIERS[m][0] > 0)
    points = 100 + penalties
    if points >= 90:
        points += bonuses
    points = max(0, points)
    letter = next(g for floor, g in GRADES if points >= floor)
    return {
        "score": points,
        "grade": letter,
        "modifiers": [
            {"name": m, "points": MODIFIERS[m][0], "meaning": MODIFIERS[m][1]} for m in found
        ],
    }
