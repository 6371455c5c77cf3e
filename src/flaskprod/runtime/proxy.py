"""Trust exactly as many reverse proxies as there are (``TRUSTED_PROXIES``).

With ``n`` proxies, ProxyFix takes the n-th address from the right of
``X-Forwarded-For``: anything a client prepends itself is ignored, so it cannot
spoof ``request.remote_addr``. 0 leaves the app unwrapped (no proxy: headers ignored).
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def apply_proxy_fix(app: Flask, trusted_proxies: int) -> None:
    if trusted_proxies <= 0:
        return
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app,
        x_for=trusted_proxies,
        x_proto=trusted_proxies,
        x_host=trusted_proxies,
        x_port=trusted_proxies,
    )
