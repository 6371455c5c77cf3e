"""What the app's URL map says about its health and login routes (read by detection
from the imported app: rules and their endpoints).

Liveness and readiness paths are the ones real apps and platforms use (Kubernetes'
``/livez``/``/readyz``, Rails' ``/up`` and ``/up/databases``, ``/healthz``, ``/ping``, ...).
An app with a liveness route but no readiness one gets the liveness route for both: it
is what the app offers. An app with neither gets the kit's own
(``http.health_source = "kit"``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Liveness routes, most specific first.
LIVENESS = (
    "/health",
    "/healthz",
    "/livez",
    "/health/live",
    "/health/liveness",
    "/_health",
    "/healthcheck",
    "/health-check",
    "/up",
    "/ping",
    "/_ping",
    "/heartbeat",
    "/status",
)
#: Readiness routes: they check the app's dependencies.
READINESS = (
    "/health/ready",
    "/readyz",
    "/health/readiness",
    "/ready",
    "/up/databases",
    "/health/databases",
    "/healthz/ready",
    "/_health/ready",
)
#: Endpoint or last path segment of a login route.
_LOGIN_WORDS = ("login", "signin", "sign-in", "sign_in", "log-in")


@dataclass(frozen=True)
class HealthRoutes:
    health_path: str
    ready_path: str


def _plain(routes: Iterable[str]) -> dict[str, str]:
    """Rules without converters, by their path without a trailing slash."""
    return {rule.rstrip("/") or "/": rule for rule in routes if "<" not in rule}


def health_routes(
    routes: Iterable[str], answered: list[str | None] | None = None
) -> HealthRoutes | None:
    """The app's own liveness and readiness routes, or None when it has neither.
    ``answered``: the (liveness, readiness) paths flaskprod.Production answers."""
    if answered and answered[0] and answered[1]:
        return HealthRoutes(health_path=answered[0], ready_path=answered[1])
    plain = _plain(routes)
    live = next((plain[path] for path in LIVENESS if path in plain), None)
    ready = next((plain[path] for path in READINESS if path in plain), None)
    if live is None and ready is None:
        return None
    return HealthRoutes(health_path=live or str(ready), ready_path=ready or str(live))


def login_path(endpoints: Iterable[tuple[str, str]]) -> str | None:
    """The route of the login view: endpoint ``login`` (``auth.login``), else a path
    ending in ``/login``; None when the app has none."""
    pairs = [(rule, endpoint) for rule, endpoint in endpoints if "<" not in rule]
    for rule, endpoint in sorted(pairs):
        if endpoint.rsplit(".", 1)[-1].lower() in _LOGIN_WORDS:
            return rule
    for rule, _ in sorted(pairs):
        if rule.rstrip("/").rsplit("/", 1)[-1].lower() in _LOGIN_WORDS:
            return rule
    return None
