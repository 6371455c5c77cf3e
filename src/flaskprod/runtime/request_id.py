"""The request id: taken from a valid incoming ``X-Request-ID`` or generated.

It lives in the WSGI environ of the request (so it cannot leak from one request into
the next on a reused thread) and is returned in the ``X-Request-ID`` response header.
"""

from __future__ import annotations

import os
import re
from typing import Any

from flask import has_request_context, request

ENVIRON_KEY = "flaskprod.request_id"
HEADER = "X-Request-ID"
# Short and boring on purpose: the id ends up in logs, headers and error pages.
_VALID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def new_request_id() -> str:
    """A random UUID4 as 32 hex digits (a third of ``uuid.uuid4().hex``'s cost)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def request_id_from(environ: dict[str, Any]) -> str:
    """The id of the request described by ``environ``, set on first use."""
    rid: str | None = environ.get(ENVIRON_KEY)
    if rid is None:
        incoming = environ.get("HTTP_X_REQUEST_ID")
        rid = incoming if incoming and _VALID.fullmatch(incoming) else new_request_id()
        environ[ENVIRON_KEY] = rid
    return rid


def current_request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    if not has_request_context():
        return None
    return request_id_from(request.environ)
