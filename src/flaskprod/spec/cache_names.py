"""File names that always mean the same bytes, so a browser may keep them for a year.

A name is never reused for other content when it is a fresh uuid (``uuid4().hex``, or
dashed), a content hash (md5, sha1, sha256: 16 or more hex digits), or an asset name
with a fingerprint (``app.3f2a9c1e.css``, Flask-Static-Digest's ``app-3f2a...c1e.css``).
Such files are served ``immutable``; any other name may be overwritten (``avatar.png``)
and is cached briefly with ``must-revalidate``.

One pattern, read by both sides so they cannot disagree: the kit's nginx (a ``map`` on
``$uri``, PCRE) and ``check``'s LIV060 (Python's ``re``). It is written in the syntax
both share. At least one letter a-f is required, so that dates and numeric ids
(``report-20240101.pdf``, ``/1234567890123456.jpg``) never count as hashes.
"""

from __future__ import annotations

import re

_HEX_WITH_A_LETTER = "(?=[0-9]*[a-f])"
_EXTENSION = r"\.[A-Za-z0-9]+"

#: Matches the end of a URL path (or a file path) whose last name never changes content.
IMMUTABLE_NAME = (
    "(?:"
    f"/{_HEX_WITH_A_LETTER}[0-9a-f]{{16,}}(?:{_EXTENSION})?"
    f"|/[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}(?:{_EXTENSION})?"
    f"|[.-]{_HEX_WITH_A_LETTER}[0-9a-f]{{8,}}{_EXTENSION}"
    ")$"
)

_COMPILED = re.compile(IMMUTABLE_NAME)

#: What such a name is served with: a year, never revalidated.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"


def is_immutable_name(path: str) -> bool:
    """Whether the URL path's last name never changes content (see the module)."""
    return _COMPILED.search(path) is not None
