"""What a page's Content-Security-Policy blocks of what the page itself loads.

A CSP that forbids the page's own scripts and styles (Bootstrap from a CDN, an inline
``<script>``: microblog) breaks the page in every browser while every header scanner
rewards it. This reads the page as a browser would for the two resource kinds that
break a page, scripts and styles: external ones by origin, inline ones (elements and
``on*=`` handler attributes), and matches them against the policy's source lists
(CSP Level 3: ``'self'``, ``'none'``, ``*``, schemes, hosts with ``*.`` wildcards and
ports, paths, ``'unsafe-inline'``, nonces, hashes, ``'strict-dynamic'``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

#: The directives each kind of resource falls back through.
_FALLBACK = {
    "script": ("script-src-elem", "script-src", "default-src"),
    "script-attr": ("script-src-attr", "script-src", "default-src"),
    "style": ("style-src-elem", "style-src", "default-src"),
    "style-attr": ("style-src-attr", "style-src", "default-src"),
}
#: <script type=...> that hold data, never run (so no CSP applies).
_DATA_SCRIPTS = ("application/json", "application/ld+json", "importmap", "text/template")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: A host-source: [scheme://]host[:port][/path], the host maybe "*" or "*.example.com".
_HOST_SOURCE = re.compile(
    r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<host>\*|(?:\*\.)?[a-z0-9.-]+)"
    r"(?::(?P<port>\d+|\*))?(?P<path>/\S*)?$"
)


@dataclass
class _Resource:
    kind: str  # script, style, script-attr, style-attr
    url: str | None = None  # external; None for inline
    text: str = ""
    nonce: str | None = None


@dataclass
class _Page(HTMLParser):
    base: str
    resources: list[_Resource] = field(default_factory=list)
    _open: _Resource | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {
            name.lower(): (value or "").lower() if name == "rel" else value or ""
            for name, value in attrs
        }
        if any(name.startswith("on") for name in values):
            self.resources.append(_Resource("script-attr"))
        if "style" in values and values["style"].strip():
            self.resources.append(_Resource("style-attr"))
        nonce = values.get("nonce") or None
        if tag == "script" and values.get("type", "").lower() not in _DATA_SCRIPTS:
            if values.get("src"):
                url = urljoin(self.base, values["src"])
                self.resources.append(_Resource("script", url, nonce=nonce))
            else:
                self._open = _Resource("script", nonce=nonce)
        elif tag == "style":
            self._open = _Resource("style", nonce=nonce)
        elif tag == "link" and values.get("href") and "stylesheet" in values.get("rel", "").split():
            self.resources.append(_Resource("style", urljoin(self.base, values["href"])))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open.text += data

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag in ("script", "style"):
            if self._open.text.strip():
                self.resources.append(self._open)
            self._open = None


def directives(policy: str) -> dict[str, list[str]]:
    """Directive -> its source expressions (names lower-cased; the first of a
    repeated directive wins, as browsers do)."""
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            found.setdefault(words[0].lower(), words[1:])
    return found


def _sources(policy: dict[str, list[str]], kind: str) -> list[str] | None:
    for name in _FALLBACK[kind]:
        if name in policy:
            return policy[name]
    return None  # nothing restricts this kind


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _source_allows(source: str, url: str, page: str) -> bool:
    lowered = source.lower()
    target, origin = urlsplit(url), urlsplit(page)
    if lowered == "'self'":
        return (target.scheme, target.netloc) == (origin.scheme, origin.netloc) or (
            origin.scheme == "http" and target.scheme == "https" and target.netloc == origin.netloc
        )
    if lowered.startswith("'"):
        return False  # keywords, nonces, hashes: not for a URL
    if lowered == "*":
        return target.scheme not in ("data", "blob", "filesystem")
    if lowered.endswith(":") and "/" not in lowered:  # a scheme source: https:
        wanted = lowered[:-1]
        return target.scheme == wanted or (wanted == "http" and target.scheme == "https")
    match = _HOST_SOURCE.match(lowered)
    if match is None:
        return False
    scheme, host, port, path = match.group("scheme", "host", "port", "path")
    if scheme and scheme != target.scheme and not (scheme == "http" and target.scheme == "https"):
        return False
    if not scheme and target.scheme not in ("http", "https", origin.scheme):
        return False
    if not _host_matches(host, (target.hostname or "").lower()):
        return False
    if port and port != "*":
        if (target.port or _DEFAULT_PORTS.get(target.scheme)) != int(port):
            return False
    elif not port and target.port and target.port != _DEFAULT_PORTS.get(target.scheme):
        return False
    if path and path != "/":
        return target.path.startswith(path) if path.endswith("/") else target.path == path
    return True


def _hash_allowed(sources: list[str], text: str) -> bool:
    for algorithm in ("sha256", "sha384", "sha512"):
        digest = base64.b64encode(hashlib.new(algorithm, text.encode()).digest()).decode()
        if f"'{algorithm}-{digest}'" in sources:
            return True
    return False


def _allowed(resource: _Resource, sources: list[str], page: str) -> bool:
    lowered = [s.lower() for s in sources]
    if "'none'" in lowered and len(lowered) == 1:
        return False
    strict = resource.kind == "script" and "'strict-dynamic'" in lowered
    if resource.url is not None:
        if strict:  # only nonced/hashed scripts; a bare src is not trusted
            return resource.nonce is not None and f"'nonce-{resource.nonce}'" in sources
        return any(_source_allows(source, resource.url, page) for source in sources)
    if resource.nonce and f"'nonce-{resource.nonce}'" in sources:
        return True
    if _hash_allowed(sources, resource.text):
        return True
    has_nonce_or_hash = any(s.startswith(("'nonce-", "'sha")) for s in lowered)
    # 'unsafe-inline' is ignored once a nonce or hash is present (CSP Level 2)
    return "'unsafe-inline'" in lowered and not has_nonce_or_hash and not strict


def _name(resource: _Resource) -> str:
    if resource.url is not None:
        parts = urlsplit(resource.url)
        what = "script" if resource.kind == "script" else "stylesheet"
        return f"{what} from {parts.scheme}://{parts.netloc}"
    return {
        "script": "inline script",
        "style": "inline style",
        "script-attr": "inline event handler",
        "style-attr": "style attribute",
    }[resource.kind]


def blocked(html: str, page_url: str, policy: str) -> list[str]:
    """What the page loads that ``policy`` blocks, one entry per kind and origin
    ("script from https://cdn.jsdelivr.net", "inline script"), in page order."""
    parsed = _Page(page_url)
    with contextlib.suppress(Exception):  # a broken page: what was read so far
        parsed.feed(html)
    rules = directives(policy)
    found: dict[str, None] = {}
    for resource in parsed.resources:
        sources = _sources(rules, resource.kind)
        if sources is not None and not _allowed(resource, sources, page_url):
            found[_name(resource)] = None
    return list(found)


def page_blocked(home: dict[str, Any]) -> list[str]:
    """What a fetched page (a probe's response record) loads that its own enforced
    CSP headers block; a Report-Only policy blocks nothing."""
    headers = [(str(k).lower(), str(v)) for k, v in home["headers"]]
    content_type = next((v for k, v in headers if k == "content-type"), "text/html")
    policies = [v for k, v in headers if k == "content-security-policy"]
    if not policies or "html" not in content_type:
        return []
    found: dict[str, None] = {}
    for policy in policies:  # every policy sent is enforced: each one may block
        found.update(dict.fromkeys(blocked(str(home["body"]), str(home["url"]), policy)))
    return list(found)
