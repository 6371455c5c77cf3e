"""The nginx sites of a deploy over several hosts, derived from the deploy site
(:func:`flaskprod.kit.deploy_site.deploy_site`) so that headers, limits, timeouts and
caching stay the kit's:

- the **balancer**: the kit's site with TLS, whose upstream is an include listing the
  app hosts' private addresses (:func:`app_hosts_upstream`: ``max_fails``/
  ``fail_timeout``, ``down`` for a host out for its release); everything is proxied
  (static files and media come from the app hosts); idempotent requests that met an
  error, a timeout or a 502/504 (not a 503: see :func:`balancer_site`) go to the next
  host, non-idempotent ones never (nginx's own rule, kept: a retried POST could charge
  twice);
- an **app host**: the kit's HTTPS server as plain HTTP on the host's private address
  only, static files and media served there, the client's address taken from the
  balancer only (``set_real_ip_from``; the firewall admits the balancer only); no cache,
  no security headers (the balancer adds them once).
"""

from __future__ import annotations

import copy
import re
from typing import Any

import crossplane

from flaskprod.deploy.hostfiles import parse_site_text
from flaskprod.kit.deploy_site import deploy_site
from flaskprod.spec.model import Spec

Directive = dict[str, Any]

#: A dead app host is tried once, then left alone for this long (passive health).
MAX_FAILS = 1
FAIL_TIMEOUT = "10s"
#: Hosts on one private network connect in well under a millisecond: a host that does
#: not answer within this is down, and the request goes to the next one.
CONNECT_TIMEOUT = "2s"
_NOT_PROXIED = ("proxy_cache", "proxy_cache_bypass", "proxy_no_cache", "proxy_cache_use_stale")


def app_hosts_path(spec: Spec) -> str:
    """The balancer's include naming the app hosts (rewritten by a rolling release)."""
    return f"/etc/nginx/{spec.app.name}-app-hosts.conf"


def balancer_site_path(spec: Spec) -> str:
    return f"/etc/nginx/sites-available/{spec.app.name}-balancer.conf"


def app_hosts_upstream(addresses: list[str], down: tuple[str, ...] = ()) -> str:
    """The include's text: one server line per app host (``down``: out of rotation)."""
    lines = ["# Written by flaskprod deploy: the app hosts (down: out for its release)."]
    for address in addresses:
        host = f"[{address}]" if ":" in address else address
        mark = " down" if address in down else ""
        lines.append(f"server {host}:80 max_fails={MAX_FAILS} fail_timeout={FAIL_TIMEOUT}{mark};")
    return "\n".join(lines) + "\n"


def _servers(parsed: list[Directive]) -> list[Directive]:
    return [d for d in parsed if d["directive"] == "server"]


def _https_server(parsed: list[Directive]) -> Directive:
    for server in _servers(parsed):
        if "ssl_certificate" in str(server) and "proxy_pass" in str(server):
            return server
    raise ValueError("the deploy site has no HTTPS server proxying to the app")


def _upstream(parsed: list[Directive]) -> Directive:
    return next(d for d in parsed if d["directive"] == "upstream")


def _set(block: list[Directive], name: str, *args: str) -> None:
    """``name args;`` in ``block``: the first one replaced (others dropped), else added."""
    found = [i for i, d in enumerate(block) if d["directive"] == name]
    directive = {"directive": name, "args": list(args)}
    if found:
        block[found[0]] = directive
        for index in reversed(found[1:]):
            del block[index]
    else:
        block.append(directive)


def _proxied(location: Directive, upstream: str) -> Directive:
    """A location of static files or media turned into one that proxies it."""
    return {**location, "block": [{"directive": "proxy_pass", "args": [f"http://{upstream}"]}]}


def balancer_site(spec: Spec) -> str:
    parsed = parse_site_text(deploy_site(spec))
    upstream = _upstream(parsed)
    name = upstream["args"][0]
    upstream["block"] = [
        {"directive": "include", "args": [app_hosts_path(spec)]},
        *[d for d in upstream["block"] if d["directive"] not in ("include", "server")],
    ]
    server = _https_server(parsed)
    body = server["block"]
    # Not http_503: the app answers 503 when the shared database or Redis is away — the
    # same on every host, so another host cannot help — and an answer listed here counts
    # against max_fails: a database restart would mark every app host failed and the
    # balancer answer 502 "no live upstreams" for fail_timeout after it came back.
    _set(body, "proxy_next_upstream", "error", "timeout", "http_502", "http_504")
    _set(body, "proxy_next_upstream_tries", str(max(2, len(spec.deploy.hosts))))
    _set(body, "proxy_connect_timeout", CONNECT_TIMEOUT)
    for index, directive in enumerate(body):
        if directive["directive"] == "location" and "proxy_pass" not in str(directive):
            body[index] = _proxied(directive, name)
    note = (
        "# Written by 'flaskprod deploy': the balancer, the only public entry (TLS), in\n"
        f"# front of the app hosts listed in {app_hosts_path(spec)}.\n"
    )
    built: str = crossplane.build(parsed)
    return note + built + "\n"


def _without(block: list[Directive], names: tuple[str, ...]) -> list[Directive]:
    kept = []
    for directive in block:
        if directive["directive"] in names:
            continue
        if directive["directive"] == "add_header" and directive["args"][0] != "Cache-Control":
            continue  # the balancer adds the security headers and the request id, once
        if directive["directive"].startswith("ssl_"):
            continue
        if "block" in directive:
            directive = {**directive, "block": _without(directive["block"], names)}
        kept.append(directive)
    return kept


def app_host_site(spec: Spec, address: str, balancer: str) -> str:
    """An app host's site: plain HTTP on ``address``:80 for the balancer only."""
    parsed = parse_site_text(deploy_site(spec))
    server = copy.deepcopy(_https_server(parsed))
    listen = f"[{address}]:80" if ":" in address else f"{address}:80"
    body = [
        d
        for d in _without(server["block"], _NOT_PROXIED)
        if d["directive"] not in ("listen", "server_name", "http2")
    ]
    for index, directive in enumerate(body):
        args = directive.get("args", [])
        if directive["directive"] == "proxy_set_header" and args[0] == "X-Forwarded-Proto":
            # the balancer's (only the balancer is admitted below)
            body[index] = {**directive, "args": ["X-Forwarded-Proto", "$http_x_forwarded_proto"]}
        if directive["directive"] == "proxy_set_header" and args[0] == "X-Forwarded-For":
            body[index] = {**directive, "args": ["X-Forwarded-For", "$remote_addr"]}
    head = [
        {"directive": "listen", "args": [listen, "default_server"]},
        {"directive": "server_name", "args": ["_"]},
        # the client's address as the balancer saw it, believed from the balancer only
        {"directive": "set_real_ip_from", "args": [balancer]},
        {"directive": "real_ip_header", "args": ["X-Forwarded-For"]},
    ]
    kept: list[Directive] = []
    for directive in parsed:
        if directive["directive"] == "server":
            continue
        if directive["directive"] == "proxy_cache_path":
            continue
        kept.append(directive)
    kept.append({"directive": "server", "args": [], "block": head + body})
    built: str = crossplane.build(kept)
    note = (
        "# Written by 'flaskprod deploy': this app host's site, plain HTTP on its private\n"
        f"# address for the balancer ({balancer}) only; TLS ends at the balancer.\n"
    )
    return note + _own_names(built, spec) + "\n"


def _own_names(text: str, spec: Spec) -> str:
    """nginx's names of the app host's site (upstream, zones, maps, log format) made its
    own, so that a balancer on the same host (whose site keeps the kit's) never clashes."""
    ident = re.sub(r"\W", "_", spec.app.name)
    ident = next((m.group(1) for m in [re.search(r"upstream (\w+)_app", text)] if m), ident)
    return re.sub(rf"(?<![\w.-]){re.escape(ident)}_(?=\w)", f"{ident}_node_", text)
