"""The 502 diagnosis: when the site answers 502 (or nothing), walk the chain the way
one does by hand at 2 a.m. and name the first broken link, with its fix.

    nginx answers? -> the upstream nginx proxies to (its config) -> that socket or port
    exists / listens? -> gunicorn answers HTTP on it directly? -> it is what gunicorn binds?
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import crossplane

from flaskprod.check.host.target import HostTarget


@dataclass(frozen=True)
class Link:
    ok: bool
    step: str
    detail: str
    fix: str = ""


#: A site that accepts the connection but sends no status line in time (nginx waiting
#: on a hung upstream): the walk goes on as for a 504.
TIMED_OUT = -1


def site_status(url: str, timeout: float = 3.0) -> int | None:
    """The status of a GET on the site; None when nothing accepts the connection,
    TIMED_OUT when something accepts it but does not answer in time."""
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 443
    # No verification: the certificate is the live layer's concern, not the walk's.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    try:
        with raw, context.wrap_socket(raw, server_hostname=host) as tls:
            return _status(tls, parts.netloc, parts.path or "/")
    except TimeoutError:
        return TIMED_OUT
    except (OSError, ValueError):
        return None


def _status(conn: socket.socket, host: str, path: str) -> int | None:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            break
        head += chunk
    line = head.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


def _upstream_servers(block: list[dict[str, Any]]) -> list[str]:
    """The server addresses of an upstream block, also those in a file it includes
    (the release switch keeps the live slot's server line in its own file)."""
    servers: list[str] = []
    for directive in block:
        if directive["directive"] == "server" and directive.get("args"):
            servers.append(str(directive["args"][0]))
        elif directive["directive"] == "include" and directive.get("args"):
            included = Path(str(directive["args"][0]))
            if not included.is_file():
                continue
            parsed = crossplane.parse(
                str(included), single=True, catch_errors=True, comments=False,
                check_ctx=False, check_args=False,
            )  # fmt: skip
            inner = parsed["config"][0]["parsed"] if parsed["config"] else []
            servers += _upstream_servers(inner)
    return servers


def upstreams(site: Path) -> list[str]:
    """The addresses nginx proxies ``location /`` to: upstream servers resolved, or
    the proxy_pass target itself ("unix:/run/app.sock", "127.0.0.1:8000")."""
    parsed = crossplane.parse(
        str(site), single=True, catch_errors=True, comments=False, check_ctx=False, check_args=False
    )
    blocks = parsed["config"][0]["parsed"] if parsed["config"] else []
    named: dict[str, list[str]] = {}
    passes: list[str] = []

    def walk(items: list[dict[str, object]]) -> None:
        for item in items:
            name, args = item["directive"], item.get("args") or []
            assert isinstance(args, list)
            if name == "upstream" and args:
                named[str(args[0])] = _upstream_servers(item.get("block") or [])  # type: ignore[arg-type]
            elif name == "proxy_pass" and args:
                passes.append(str(args[0]))
            if item.get("block"):
                walk(item["block"])  # type: ignore[arg-type]

    walk(blocks)
    found: list[str] = []
    for target in passes:
        rest = target.split("://", 1)[-1]
        host = rest.split("/", 1)[0] if not rest.startswith("unix:") else rest.split(":/", 1)[0]
        if rest.startswith("unix:"):
            found.append("unix:" + rest[5:].split(":", 1)[0])
        elif host in named:
            found += named[host]
        else:
            found.append(host)
    return list(dict.fromkeys(found))


def _speaks_http(address: str, timeout: float = 3.0) -> tuple[bool, str]:
    """GET / directly on the app server; any HTTP status line counts as answering."""
    try:
        if address.startswith("unix:"):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(timeout)
            conn.connect(address[5:])
        else:
            host, _, port = address.rpartition(":")
            conn = socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout)
    except OSError as error:
        return False, f"connect failed: {error.strerror or error}"
    with conn:
        try:
            conn.settimeout(timeout)
            status = _status(conn, "localhost", "/")
        except OSError as error:
            return False, f"no answer: {error.strerror or error}"
    return (status is not None, f"answered {status}" if status else "no HTTP answer")


def walk(target: HostTarget) -> list[Link]:
    """The links checked, in order; the walk stops at the first broken one."""
    links: list[Link] = []
    if target.url is None:
        return [Link(False, "site", "no URL known", "run from the project (flaskprod.toml)")]
    status = site_status(target.url)
    if status is not None and status not in (502, 504, TIMED_OUT):
        return [Link(True, "site", f"{target.url} answers {status}")]
    if status is None:
        return [
            Link(
                False,
                "nginx",
                f"nothing answers on {target.url}",
                "start nginx (systemctl start nginx) and read its error log",
            )
        ]
    answer = "accepts but waits (a hung upstream?)" if status == TIMED_OUT else f"answers {status}"
    links.append(Link(True, "nginx", f"nginx {answer} on {target.url}"))
    site = target.enabled_site
    if site is None or not site.is_file():
        links.append(Link(False, "upstream", "the enabled nginx site was not found", ""))
        return links
    addresses = upstreams(site)
    if not addresses:
        links.append(Link(False, "upstream", f"{site} has no proxy_pass", "add proxy_pass"))
        return links
    links.append(Link(True, "upstream", f"nginx proxies to {', '.join(addresses)} ({site})"))
    for address in addresses:
        if address.startswith("unix:"):
            path = Path(address[5:])
            if not path.exists():
                bound = f"; gunicorn binds {target.bind}" if target.bind else ""
                fix = (
                    f"make nginx's upstream and gunicorn's bind the same ({target.bind})"
                    if target.bind and target.bind != address
                    else "start gunicorn (systemctl start the app) and read its log"
                )
                links.append(Link(False, "socket", f"{path} does not exist{bound}", fix))
                return links
        ok, detail = _speaks_http(address)
        if not ok:
            links.append(
                Link(
                    False,
                    "gunicorn",
                    f"{address}: {detail}",
                    "gunicorn is not serving there: restart it and read its log "
                    "(a crash at import, a worker timeout, a full backlog)",
                )
            )
            return links
        links.append(Link(True, "gunicorn", f"{address}: {detail}"))
    links.append(
        Link(
            False,
            "proxy",
            "gunicorn answers directly but nginx still answers 502",
            "read nginx's error log for the upstream error (proxy_pass scheme, "
            "upstream response too big, buffer sizes)",
        )
    )
    return links
