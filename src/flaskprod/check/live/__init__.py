"""``flaskprod check --url``: probe a running deployment (layer ``live``).

The probes run once per check run (the first live rule triggers them); the rules
read the shared :class:`~flaskprod.check.live.probe.LiveReport` from the context.
Options (``Context.options``): ``url`` (required), ``ca``, ``timeout`` (default 10 s),
``crawl`` (default 0), ``http_url`` (the plain-http entry; else the local stack's
http port when ``flaskprod up`` runs the project on that https port, else port 80 for
an https URL on 443).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from flaskprod.check.context import Context
from flaskprod.check.live import observatory

if TYPE_CHECKING:  # httpx and cryptography load only when a --url run needs them
    from flaskprod.check.live.probe import LiveReport, ProbeSettings

__all__ = ["DEFAULT_TIMEOUT", "http_entry", "live_report", "settings_for"]

DEFAULT_TIMEOUT = 10.0


def http_entry(ctx: Context, url: str) -> str | None:
    """Where plain http is served for ``url``'s site, if we can tell."""
    explicit = ctx.options.get("http_url")
    if explicit:
        return str(explicit)
    parts = urlsplit(url)
    if parts.scheme == "http":  # the site itself is the plain-http entry: it must redirect
        return urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    if parts.scheme != "https" or not parts.hostname:
        return None
    from flaskprod.stack.state import StateDir

    state = StateDir(ctx.root / ".flaskprod").read()
    if state is not None and parts.port == state.https_port:
        return f"http://{parts.hostname}:{state.http_port}"
    if parts.port in (None, 443):
        return f"http://{parts.hostname}"
    return None


def settings_for(ctx: Context) -> ProbeSettings:
    from flaskprod.check.live.probe import ProbeSettings

    url = str(ctx.options["url"])
    spec = ctx.spec
    health: tuple[str, ...] = ()
    if spec is not None:
        health = (spec.http.health_path, spec.http.ready_path)
    ca = ctx.options.get("ca")
    return ProbeSettings(
        url=url,
        ca=str(ca) if ca else None,
        timeout=float(ctx.options.get("timeout") or DEFAULT_TIMEOUT),
        crawl=int(ctx.options.get("crawl") or 0),
        http_url=http_entry(ctx, url),
        health_paths=health,
        ready_path=spec.http.ready_path if spec is not None else None,
        max_body=spec.http.max_body_bytes if spec is not None else None,
        static_prefix=spec.paths.static_url if spec is not None else None,
    )


def live_report(ctx: Context) -> LiveReport:
    """The probes' results, run on first use and shared by every live rule. Also
    leaves the Observatory score in ``ctx.cache["observatory"]`` for the summary."""
    if "live" not in ctx.cache:
        from flaskprod.check.live.probe import run_probes

        report = run_probes(settings_for(ctx))
        ctx.cache["live"] = report
        home = report.get("home")
        # An error page's headers earn no grade: a 5xx home page is the site down.
        if home.ok and home.value["status"] < 500:
            from flaskprod.check.live.csp import page_blocked

            redirect = report.get("redirect")
            found = observatory.modifiers(
                home.value["headers"], redirect.value if redirect.ok else None
            )
            if page_blocked(home.value):  # a CSP that breaks the page earns nothing
                found = [m for m in found if not m.startswith("csp-implemented-with-no-unsafe")]
            ctx.cache["observatory"] = observatory.score(found)
    cached: LiveReport = ctx.cache["live"]
    return cached
