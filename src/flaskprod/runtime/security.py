"""Security response headers, computed once from config and added per response.

``SECURITY_HEADERS=False`` (env ``FLASKPROD_SECURITY_HEADERS=nginx``) turns them all
off for when the reverse proxy sends them, so they are never sent twice. A header
the view already set is never overwritten. An individual header is off when its
config value is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Header = tuple[str, str]


def security_headers(config: Mapping[str, Any]) -> tuple[list[Header], Header | None]:
    """(headers for every response, the HSTS header for HTTPS responses only)."""
    if not config.get("SECURITY_HEADERS"):
        return [], None
    always: list[Header] = []
    # Report-only: the browser reports what the policy would block, and blocks nothing.
    report_only = str(config.get("CSP_REPORT_ONLY", "")).lower() in {"1", "true", "yes", "on"}
    csp = "Content-Security-Policy" + ("-Report-Only" if report_only else "")
    for name, key in (
        (csp, "CONTENT_SECURITY_POLICY"),
        ("X-Content-Type-Options", "X_CONTENT_TYPE_OPTIONS"),
        ("X-Frame-Options", "X_FRAME_OPTIONS"),
        ("Referrer-Policy", "REFERRER_POLICY"),
        ("Permissions-Policy", "PERMISSIONS_POLICY"),
    ):
        if config.get(key):
            always.append((name, str(config[key])))
    hsts = None
    max_age = config.get("HSTS_MAX_AGE")
    if max_age:
        value = f"max-age={int(max_age)}"
        if config.get("HSTS_INCLUDE_SUBDOMAINS"):
            value += "; includeSubDomains"
        hsts = ("Strict-Transport-Security", value)
    return always, hsts


def add_missing(headers: list[Header], extra: list[Header]) -> None:
    """Append each of ``extra`` whose name is not in ``headers`` yet (case-insensitive)."""
    present = {name.lower() for name, _ in headers}
    for name, value in extra:
        if name.lower() not in present:
            headers.append((name, value))
