"""What stands in front of gunicorn: nginx ``proxy_pass`` targets (through
``upstream`` blocks) and reverse-proxy services in compose files, and whether a
target reaches a given gunicorn bind. Shared by the nginx, gunicorn and systemd rules,
so that they agree on one picture of the deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flaskprod.check.parsers import cached
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.gunicorn import parse_bind
from flaskprod.check.parsers.nginx import Directive, NginxTree, parse_nginx
from flaskprod.launch.compose import ComposeFile

if TYPE_CHECKING:
    from flaskprod.check.context import Context

_WILDCARDS = {"0.0.0.0", "::", "*", ""}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PROXY_IMAGES = ("nginx", "traefik", "caddy", "haproxy", "envoy", "openresty")


@dataclass(frozen=True)
class Target:
    """Where a proxy_pass sends requests: ("unix", path) or (host, port)."""

    host: str
    port: str
    #: The proxy_pass directive, or the upstream's server line.
    directive: Directive

    def __str__(self) -> str:
        return f"unix:{self.port}" if self.host == "unix" else f"{self.host}:{self.port}"


def _split_url(url: str) -> tuple[str, str] | None:
    scheme, sep, rest = url.partition("://")
    if not sep or "$" in rest:
        return None  # proxy_pass with variables: resolved at request time
    if rest.startswith("unix:"):
        return "unix", rest[5:].split(":", 1)[0]
    hostport = rest.split("/", 1)[0]
    host, colon, port = hostport.rpartition(":")
    if not colon or not port.isdigit():
        return hostport, "443" if scheme == "https" else "80"
    return host.strip("[]"), port


def targets_of(tree: NginxTree) -> list[Target]:
    """Every proxy_pass destination, an upstream replaced by its servers."""
    upstreams = tree.upstreams()
    out: list[Target] = []
    for directive in tree.walk():
        if directive.name != "proxy_pass" or not directive.args:
            continue
        split = _split_url(directive.args[0])
        if split is None:
            continue
        host, port = split
        upstream = upstreams.get(host)
        if upstream is None:
            out.append(Target(host, port, directive))
            continue
        for server in upstream.find("server"):
            if server.args:
                kind, where = parse_bind(server.args[0])
                out.append(Target(kind, where, directive))
    return out


def proxy_targets(ctx: Context) -> list[Target]:
    return cached(ctx, "parsers.proxy.targets", lambda: targets_of(parse_nginx(ctx)))


def reaches(target: Target, bind: str) -> bool:
    """Does a proxy destination reach a gunicorn listening on ``bind``?"""
    host, port = parse_bind(bind)
    if host == "unix" or target.host == "unix":
        return host == target.host and port == target.port
    if "$" in port or "{" in port:
        port = target.port  # 0.0.0.0:$PORT: the port is set at start; do not guess
    if port != target.port:
        return False
    return host in _WILDCARDS or host == target.host or {host, target.host} <= _LOOPBACK


def compose_proxies(ctx: Context) -> list[tuple[ComposeFile, str]]:
    """Compose services that are reverse proxies (by image or build name)."""
    found = []
    for compose in parse_compose_files(ctx):
        for name, service in compose.services.items():
            image = str(service.get("image") or "")
            label = f"{image.rsplit('/', 1)[-1]} {name}".lower()
            if any(proxy in label for proxy in PROXY_IMAGES):
                found.append((compose, name))
    return found


def has_proxy(ctx: Context) -> bool:
    """Some reverse proxy sits in front of the app (nginx config or compose service)."""
    return bool(proxy_targets(ctx) or compose_proxies(ctx))
