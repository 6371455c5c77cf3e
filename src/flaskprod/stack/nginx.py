"""Run the rendered nginx site on a developer's machine, changing only what must change.

The kit's ``deploy/nginx/<name>.conf`` is a site meant for ``/etc/nginx`` on a server:
ports 80/443, Let's Encrypt certificates, a socket in ``/run``, static files under
``/srv``. ``up`` parses it with crossplane, rewrites exactly those directives (see
:func:`overlay_site`) and builds it back, then includes it from a small wrapper
``nginx.conf`` that owns the process-level settings (pid, error log, temp paths, user).
Everything else — headers, TLS protocols, limits, caching, proxying — runs as rendered.
"""

from __future__ import annotations

import copy
import difflib
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crossplane

from flaskprod.errors import EnvironmentProblem, ProjectError

Directive = dict[str, Any]

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
MIME_TYPES = Path("/etc/nginx/mime.types")

# Directives of the wrapper that a site must not set a second time at http level.
_WRAPPER_HTTP = ("default_type", "sendfile")
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# OCSP stapling needs a responder; a local CA has none (nginx would warn on each start).
_DROPPED = frozenset({"ssl_stapling", "ssl_stapling_verify", "ssl_trusted_certificate"})


def find_nginx() -> str:
    """The nginx binary, or a one-line error saying how to install it."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in NGINX_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise EnvironmentProblem(
        "nginx is not installed (needed by 'flaskprod up')",
        hint="install it: apt-get install nginx (Debian/Ubuntu), then run flaskprod up again",
    )


@dataclass(frozen=True)
class Overlay:
    """What changes between the server the site was rendered for and this machine."""

    https_port: int
    http_port: int
    certificate: Path
    certificate_key: Path
    #: Upstream socket: the spec's path -> ours.
    socket_from: str | None
    socket_to: Path | None
    #: Folder prefixes: the server's path -> this machine's (static, media).
    folders: tuple[tuple[str, Path], ...]
    logs: Path
    prefix: Path  # nginx -p: pid, temp folders
    canonical_domain: str
    #: Where the upstream's server line goes (``up``'s blue/green switch rewrites only
    #: that file); None: the line stays in the site.
    upstream_include: Path | None = None
    #: URL prefixes of proxy_pass: the server's -> this machine's (the S3 gateway of
    #: storage.kind = "s3" on up's own port).
    endpoints: tuple[tuple[str, str], ...] = ()


def parse_site(site: Path) -> list[Directive]:
    """The rendered site parsed as a list of directives (a site is included inside
    ``http {}``, so context checks are off; its own includes are left as they are)."""
    if not site.is_file():
        raise ProjectError(
            f"{site}: the rendered nginx site is missing", hint="run 'flaskprod render'"
        )
    payload = crossplane.parse(
        str(site), single=True, check_ctx=False, check_args=False, comments=False
    )
    config = payload["config"][0]
    if config["errors"]:
        error = config["errors"][0]
        raise ProjectError(f"{site}:{error.get('line')}: {error['error']}")
    parsed: list[Directive] = config["parsed"]
    return parsed


def _walk(block: list[Directive]) -> Iterator[tuple[list[Directive], Directive]]:
    for directive in block:
        yield block, directive
        if "block" in directive:
            yield from _walk(directive["block"])


def _listen(directive: Directive, overlay: Overlay) -> list[Directive]:
    """``listen 443 ssl`` -> the HTTPS port on both loopback addresses."""
    address, *flags = directive["args"]
    port_text = address.rsplit(":", 1)[-1] if not address.endswith("]") else "80"
    ssl = "ssl" in flags or port_text == "443"
    port = overlay.https_port if ssl else overlay.http_port
    # ipv6only/reuseport/backlog tune a public wildcard listener, not loopback ones.
    kept = [f for f in flags if not f.startswith(("ipv6only", "reuseport", "backlog"))]
    family = "[::1]" if address.startswith("[") else "127.0.0.1"
    return [{"directive": "listen", "args": [f"{family}:{port}", *kept]}]


def _with_port(target: str, overlay: Overlay) -> str:
    # A redirect to https://$host/... would drop the visitor on port 443, where nothing
    # of ours listens; name the HTTPS port instead.
    if overlay.https_port == 443:
        return target
    for host in ("$host", "$server_name", "$http_host"):
        if target.startswith(f"https://{host}") and not target.startswith(f"https://{host}:"):
            return target.replace(f"https://{host}", f"https://$host:{overlay.https_port}", 1)
    return target


def _host_header(args: list[str], overlay: Overlay) -> list[str]:
    # $host has no port: on 443 that is the whole origin, here the app would build
    # URLs and check same-origin Referers (CSRF) against the wrong origin.
    header, value = args
    needs_port = overlay.https_port != 443 and value == "$host"
    if needs_port and header.lower() in ("host", "x-forwarded-host"):
        return [header, "$host:$server_port"]
    return args


def _paths(arg: str, overlay: Overlay) -> str:
    if overlay.socket_from and overlay.socket_to and overlay.socket_from in arg:
        arg = arg.replace(overlay.socket_from, str(overlay.socket_to))
    for server_url, local_url in overlay.endpoints:
        if arg.startswith(server_url + "/"):
            arg = local_url + arg[len(server_url) :]
    for server_path, local in overlay.folders:
        bare = server_path.rstrip("/")
        if arg == bare or arg.startswith(bare + "/"):
            arg = str(local) + arg[len(bare) :]
    return arg


def _log(directive: Directive, overlay: Overlay, kind: str) -> Directive:
    args = list(directive["args"])
    if args and args[0] not in ("off", "stderr") and not args[0].startswith("syslog:"):
        args[0] = str(overlay.logs / f"nginx-{kind}.log")
    return {"directive": directive["directive"], "args": args}


def _ensure_both_families(server: Directive) -> None:
    """A site listening on IPv4 only would make ``localhost`` (often ::1 first) fail."""
    block: list[Directive] = server["block"]
    listens = [d for d in block if d["directive"] == "listen"]
    for listen in listens:
        address = listen["args"][0]
        twin = (
            address.replace("127.0.0.1", "[::1]")
            if address.startswith("127.")
            else address.replace("[::1]", "127.0.0.1")
        )
        if not any(other["args"][0] == twin for other in listens):
            args = [twin, *[f for f in listen["args"][1:] if f != "default_server"]]
            block.insert(block.index(listen) + 1, {"directive": "listen", "args": args})
            listens.append({"directive": "listen", "args": args})


def overlay_site(parsed: list[Directive], overlay: Overlay) -> list[Directive]:
    """A transformed deep copy of the site; the input is left untouched.

    Changed: listen (ports, loopback), ssl_certificate(_key) (the local CA's), the
    upstream socket path, static/media folders, log paths, HTTPS redirect targets and
    the Host header sent to the app (both need the port), ``localhost`` added next to
    the canonical domain, the response cache's folder. Dropped: OCSP stapling. Nothing
    else.
    """
    site = copy.deepcopy(parsed)
    rewrite: dict[str, Callable[[Directive], list[Directive]]] = {
        "listen": lambda d: _listen(d, overlay),
        "ssl_certificate": lambda d: [
            {"directive": d["directive"], "args": [str(overlay.certificate)]}
        ],
        "ssl_certificate_key": lambda d: [
            {"directive": d["directive"], "args": [str(overlay.certificate_key)]}
        ],
        "access_log": lambda d: [_log(d, overlay, "access")],
        "error_log": lambda d: [_log(d, overlay, "error")],
    }
    for block, directive in list(_walk(site)):
        name = directive["directive"]
        if name in _DROPPED:
            block.remove(directive)
            continue
        if name in rewrite:
            index = block.index(directive)
            block[index : index + 1] = rewrite[name](directive)
            continue
        if name == "proxy_set_header" and len(directive["args"]) == 2:
            directive["args"] = _host_header(directive["args"], overlay)
        elif name in ("return", "rewrite"):
            directive["args"] = [_with_port(a, overlay) for a in directive["args"]]
        elif name in ("alias", "root", "server", "proxy_pass", "uwsgi_pass"):
            directive["args"] = [_paths(a, overlay) for a in directive["args"]]
        elif name == "proxy_cache_path" and directive["args"]:
            directive["args"][0] = str(overlay.prefix / "cache")
        elif name == "server_name" and overlay.canonical_domain in directive["args"]:
            directive["args"] = [*dict.fromkeys([*directive["args"], "localhost"])]
    for directive in site:
        if directive["directive"] == "server" and "block" in directive:
            _ensure_both_families(directive)
    return site


def split_upstream(site: list[Directive], overlay: Overlay) -> str:
    """Move the app's upstream server line out of the site into
    ``overlay.upstream_include`` (the site includes it there), as on a server
    (``/etc/nginx/<name>-upstream.conf``): a release switches slots by rewriting that
    one file. Returns its content ("" when the site has no upstream to our socket or
    no include is wanted). ``site`` (already overlaid) is changed in place."""
    if overlay.upstream_include is None or overlay.socket_to is None:
        return ""
    ours = f"unix:{overlay.socket_to}"
    include = {"directive": "include", "args": [str(overlay.upstream_include)]}
    lines: list[Directive] = []
    for upstream in (d for d in site if d["directive"] == "upstream" and "block" in d):
        block: list[Directive] = upstream["block"]
        for index, directive in enumerate(block):
            if directive["directive"] == "server" and directive["args"][:1] == [ours]:
                lines.append(directive)
            elif directive["directive"] == "include":  # the server's own include file
                lines.append({"directive": "server", "args": [ours, "fail_timeout=0"]})
            else:
                continue
            block[index] = include
    built: str = crossplane.build(lines[:1])
    return built + "\n" if lines else ""


def nginx_user() -> tuple[str, str] | None:
    """The ``user`` directive's value: as root, workers drop to the invoking user
    (``sudo``) or to nobody; as anyone else nginx ignores ``user``, so none is set."""
    if os.geteuid() != 0:
        return None
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        try:
            entry = pwd.getpwnam(sudo_user)
        except KeyError:
            pass
        else:
            import grp

            return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    import grp

    group = "nogroup"
    try:
        grp.getgrnam(group)
    except KeyError:
        group = "nobody"
    return "nobody", group


def wrapper_conf(site_conf: Path, site: list[Directive], overlay: Overlay) -> str:
    """The ``nginx.conf`` that runs the transformed site with its process settings."""
    top = {d["directive"] for d in site}
    http: list[Directive] = []
    if MIME_TYPES.is_file() and "types" not in top:
        http.append({"directive": "include", "args": [str(MIME_TYPES)]})
    defaults = {"default_type": ["application/octet-stream"], "sendfile": ["on"]}
    http += [{"directive": k, "args": v} for k, v in defaults.items() if k not in top]
    if "access_log" not in top:
        http.append({"directive": "access_log", "args": [str(overlay.logs / "nginx-access.log")]})
    for kind in _TEMP_PATHS:
        http.append(
            {"directive": f"{kind}_temp_path", "args": [str(overlay.prefix / "temp" / kind)]}
        )
    http.append({"directive": "include", "args": [str(site_conf)]})
    main: list[Directive] = []
    user = nginx_user()
    if user:
        main.append({"directive": "user", "args": list(user)})
    main += [
        {"directive": "daemon", "args": ["off"]},  # we supervise the master ourselves
        {"directive": "worker_processes", "args": ["2"]},
        {"directive": "pid", "args": [str(overlay.prefix / "nginx.pid")]},
        {"directive": "error_log", "args": [str(overlay.logs / "nginx-error.log"), "notice"]},
        {"directive": "events", "args": [], "block": [
            {"directive": "worker_connections", "args": ["1024"]},
        ]},
        {"directive": "http", "args": [], "block": http},
    ]  # fmt: skip
    note = (
        "# Written by 'flaskprod up': process settings for this machine around the\n"
        "# rendered site (site.conf, a transformed copy of deploy/nginx). Not for servers.\n"
    )
    built: str = crossplane.build(main)
    return note + built + "\n"


@dataclass(frozen=True)
class NginxFiles:
    conf: Path
    site: Path
    original: str
    transformed: str
    wrapper: str
    #: The upstream include file (its path and content), when the overlay asks for one.
    upstream_path: Path | None = None
    upstream: str = ""

    def diff(self, site_name: str) -> str:
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.transformed.splitlines(keepends=True),
                fromfile=site_name,
                tofile="site.conf (as run by flaskprod up)",
            )
        )


def prepare_nginx(rendered_site: Path, overlay: Overlay, *, write: bool = True) -> NginxFiles:
    """Parse, transform and (optionally) write ``site.conf`` and ``nginx.conf``."""
    parsed = parse_site(rendered_site)
    transformed = overlay_site(parsed, overlay)
    upstream = split_upstream(transformed, overlay)
    site_conf = overlay.prefix / "site.conf"
    conf = overlay.prefix / "nginx.conf"
    files = NginxFiles(
        conf=conf,
        site=site_conf,
        original=crossplane.build(parsed) + "\n",
        transformed=crossplane.build(transformed) + "\n",
        wrapper=wrapper_conf(site_conf, transformed, overlay),
        upstream_path=overlay.upstream_include if upstream else None,
        upstream=upstream,
    )
    if write:
        write_files(files, overlay.prefix)
    return files


def write_files(files: NginxFiles, prefix: Path) -> None:
    """Write the upstream include, the site and the wrapper, each atomically."""
    from flaskprod.stack.state import write_atomic

    for kind in _TEMP_PATHS:
        (prefix / "temp" / kind).mkdir(parents=True, exist_ok=True)
    if files.upstream_path is not None:
        write_atomic(files.upstream_path, files.upstream)
    write_atomic(files.site, files.transformed)
    write_atomic(files.conf, files.wrapper)


def nginx_command(binary: str, files: NginxFiles, *extra: str) -> list[str]:
    return [binary, "-p", str(files.conf.parent), "-c", str(files.conf), *extra]


def test_config(binary: str, files: NginxFiles) -> None:
    """``nginx -t`` on the effective config; its first error line on failure."""
    result = subprocess.run(
        nginx_command(binary, files, "-t", "-q"), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "emerg" in line or "crit" in line]
        first = (lines or result.stderr.splitlines() or ["?"])[0]
        raise ProjectError(
            f"nginx refuses the effective config: {first}",
            hint="see 'flaskprod up --print-config'",
        )
