"""What a browser would refuse to load on a page, given the Content-Security-Policy the
page came with: the scripts, stylesheets and images the HTML names, and inline
``<script>``/``<style>`` blocks. A page whose Bootstrap comes from a CDN under
``default-src 'self'`` answers 200 and is still broken; this is how a trial sees it.

Deliberately small: host sources (``https://cdn.example.com``, ``*.example.com``,
``https:``), ``'self'``, ``*``, ``'unsafe-inline'``, nonces and hashes (an inline block
with a nonce or under a hash source counts as allowed). A report-only policy blocks
nothing.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

#: The directive each kind of resource falls under (then ``default-src``).
DIRECTIVE = {"script": "script-src", "style": "style-src", "img": "img-src"}


@dataclass(frozen=True)
class Resource:
    kind: str  # script, style, img
    url: str | None  # None: an inline block
    nonce: bool = False
    text: str = ""  # an inline block's content (for hash sources)


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[Resource] = []
        self._inline: tuple[str, bool] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "script" and found.get("src"):
            self.found.append(Resource("script", found["src"]))
        elif tag in ("script", "style"):
            kind = "script" if tag == "script" else "style"
            if tag == "script" and found.get("type", "text/javascript") not in (
                "text/javascript",
                "module",
                "application/javascript",
                "",
            ):
                return  # a data block (application/json, templates): not executed
            self._inline, self._text = (kind, "nonce" in found), ""
        elif tag == "link" and "stylesheet" in found.get("rel", "").split() and found.get("href"):
            self.found.append(Resource("style", found["href"]))
        elif tag == "img" and found.get("src"):
            self.found.append(Resource("img", found["src"]))

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._inline is not None and tag in ("script", "style"):
            kind, nonce = self._inline
            if self._text.strip():
                self.found.append(Resource(kind, None, nonce, self._text))
            self._inline = None


def resources(html: str) -> list[Resource]:
    """The scripts, stylesheets, images and inline blocks ``html`` names, in order."""
    parser = _Resources()
    parser.feed(html)
    return parser.found


def parse_policy(header: str) -> dict[str, list[str]]:
    policy: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            policy.setdefault(words[0].lower(), words[1:])
    return policy


def _host_allowed(url: str, sources: list[str], page: str) -> bool:
    target, origin = urlsplit(url), urlsplit(page)
    if target.scheme == "data":
        return "data:" in sources
    for source in sources:
        if source == "*" and target.scheme in ("http", "https"):
            return True
        if source == "'self'" and (target.scheme, target.netloc) == (origin.scheme, origin.netloc):
            return True
        if source.endswith(":") and not source.startswith("'") and target.scheme == source[:-1]:
            return True
        if source.startswith("'"):
            continue
        allowed = urlsplit(source if "://" in source else f"{target.scheme}://{source}")
        host = target.hostname or ""
        pattern = allowed.hostname or ""
        if allowed.scheme and allowed.scheme != target.scheme:
            continue
        host_ok = host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))
        if host_ok and (not allowed.path.strip("/") or target.path.startswith(allowed.path)):
            return True
    return False


def _inline_allowed(resource: Resource, sources: list[str]) -> bool:
    # CSP3: a nonce or hash source turns 'unsafe-inline' off
    strict = any(s.startswith(("'nonce-", "'sha")) for s in sources)
    if "'unsafe-inline'" in sources and not strict:
        return True
    if resource.nonce and any(s.startswith("'nonce-") for s in sources):
        return True
    for algorithm in ("sha256", "sha384", "sha512"):
        digest = hashlib.new(algorithm, resource.text.encode()).digest()
        if f"'{algorithm}-{base64.b64encode(digest).decode()}'" in sources:
            return True
    return False


def blocked(html: str, page_url: str, header: str) -> list[str]:
    """The resources of ``html`` (served at ``page_url``) the policy ``header`` blocks,
    each as "<kind> <url or 'inline'>"."""
    policy = parse_policy(header)
    refused = []
    for resource in resources(html):
        sources = policy.get(DIRECTIVE[resource.kind], policy.get("default-src"))
        if sources is None:
            continue
        if resource.url is None:
            if not _inline_allowed(resource, sources):
                refused.append(f"inline {resource.kind}")
        elif not _host_allowed(urljoin(page_url, resource.url), sources, page_url):
            refused.append(f"{resource.kind} {resource.url}")
    return refused
