"""nginx rules: the reverse proxy in front of gunicorn, judged with the other layers
(gunicorn's binds and workers, the app's limits and headers, the spec)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.deployments import spec_governs
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.gunicorn import GunicornSetup, gunicorn_setups
from flaskprod.check.parsers.nginx import Directive, NginxTree, parse_nginx
from flaskprod.check.parsers.proxy import Target, proxy_targets, reaches
from flaskprod.check.parsers.systemd import parse_units
from flaskprod.spec.model import parse_size

SECURITY_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "content-security-policy-report-only",  # http.csp_report_only
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
)
SIX_MONTHS = 15_768_000
_WEAK_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
_WEAK_CIPHERS = ("RC4", "DES", "MD5", "NULL", "EXP", "ADH", "AECDH", "LOW", "PSK", "SSLV")


def _at(ctx: Context, directive: Directive) -> dict[str, Any]:
    """file= and line= of a finding about this directive."""
    return {"file": ctx.relative(directive.file), "line": directive.line}


def _tree(ctx: Context) -> NginxTree:
    return parse_nginx(ctx)


def _is_tls(server: Directive) -> bool:
    if any(a in ("ssl", "quic") for listen in server.find("listen") for a in listen.args[1:]):
        return True
    ssl = server.first("ssl")
    return bool(ssl and ssl.args[:1] == ["on"])


def _ports(server: Directive) -> list[str]:
    listens = server.find("listen")
    if not listens:
        return ["80"]
    ports = []
    for listen in listens:
        address = listen.args[0] if listen.args else "80"
        if address.startswith("unix:"):
            continue
        ports.append(address.rsplit(":", 1)[-1] if ":" in address else address)
    return ports


def _location_prefix(location: Directive) -> str | None:
    """A prefix location's path (None for regex and exact-match locations)."""
    if not location.args:
        return None
    if location.args[0] in ("~", "~*", "="):
        return None
    return location.args[-1]


def _enclosing_server(directive: Directive) -> Directive | None:
    return next((a for a in directive.ancestors() if a.name == "server"), None)


def _proxy_passes(tree: NginxTree) -> list[Directive]:
    return [d for d in tree.walk() if d.name == "proxy_pass" and d.args]


@rule(
    "NGX001",
    layer="nginx",
    level=Level.ERROR,
    title="nginx config cannot be parsed",
    help="Fix the syntax nginx reports (test with 'nginx -t -c FILE'); nginx refuses "
    "to start or reload with a broken config.",
    example=(
        "server {\n"
        "    location / {\n"
        "        proxy_pass http://app;\n"
        "# end of file: the blocks are never closed"
    ),
)
def parse_error(ctx: Context) -> Iterator[Finding]:
    for path, line, message in _tree(ctx).errors:
        yield parse_error.finding(
            f"{ctx.relative(path)}: {message}", file=ctx.relative(path), line=line or 1
        )


def _app_proxy_passes(ctx: Context) -> list[Directive]:
    """The proxy_pass lines that reach the app: those reaching a known gunicorn bind,
    or every one when no bind is known (other services behind the same nginx, e.g.
    Grafana, are not the app's concern)."""
    everything = _proxy_passes(_tree(ctx))
    binds = _known_binds(ctx)
    if not binds or not all(s.bind_known for s in gunicorn_setups(ctx)):
        return everything
    reaching = {id(t.directive) for t in proxy_targets(ctx) if any(reaches(t, b) for b in binds)}
    return [d for d in everything if id(d) in reaching] or everything


def _known_binds(ctx: Context) -> list[str]:
    from flaskprod.check.parsers.granian import granian_setups

    binds = [b for setup in gunicorn_setups(ctx) for b in setup.binds]
    binds += [b for setup in granian_setups(ctx) for b in setup.binds]
    if ctx.spec is not None:
        binds.append(ctx.spec.bind)
    return binds


def _server_name(ctx: Context) -> str:
    """What the app server is called in messages: granian when the project runs it."""
    from flaskprod.check.parsers.granian import granian_setups

    granian = granian_setups(ctx) or (ctx.spec is not None and ctx.spec.server.kind == "granian")
    return "granian" if granian and not gunicorn_setups(ctx) else "gunicorn"


def _systemd_socket_setup(ctx: Context) -> bool:
    """gunicorn runs under systemd on a unix socket: SYS007 owns a socket mismatch."""
    return any(
        s.origin == "systemd" and any(b.startswith("unix:") for b in s.binds)
        for s in gunicorn_setups(ctx)
    )


@rule(
    "NGX002",
    layer="nginx",
    level=Level.ERROR,
    title="proxy_pass does not reach the app server",
    help="Make proxy_pass (or its upstream's server) name exactly gunicorn's bind (or "
    "granian's --uds / --host:--port): "
    "'proxy_pass http://unix:/run/APP/gunicorn.sock;' for --bind unix:/run/APP/gunicorn.sock, "
    "or the same host:port; every request otherwise ends in a 502.",
    example='proxy_pass http://127.0.0.1:8000;   # gunicorn: bind = "unix:/run/shop/gunicorn.sock"',
)
def proxy_misses_gunicorn(ctx: Context) -> Iterator[Finding]:
    binds = _known_binds(ctx)
    targets = proxy_targets(ctx)
    if not binds or not targets or not all(s.bind_known for s in gunicorn_setups(ctx)):
        return  # a bind we cannot work out statically might be the one
    # Judged per top-level config: a project may ship one for a VM and one for compose.
    by_config: dict[int, list[Target]] = {}
    for target in targets:
        top = [target.directive, *target.directive.ancestors()][-1]
        by_config.setdefault(id(top), []).append(target)
    for group in by_config.values():
        if any(reaches(target, bind) for target in group for bind in binds):
            continue  # the app is reached; other targets are other services
        first: Target = group[0]
        if first.host == "unix" and _systemd_socket_setup(ctx):
            continue  # SYS007 names the unit's socket and nginx's together
        yield proxy_misses_gunicorn.finding(
            f"proxy_pass goes to {first}, but {_server_name(ctx)} listens on "
            f"{', '.join(sorted(set(binds)))}",
            **_at(ctx, first.directive),
        )


@rule(
    "NGX003",
    layer="nginx",
    level=Level.ERROR,
    title="alias and location disagree on the trailing slash (path traversal)",
    help="End both the location and the alias with '/': 'location /static/ { alias "
    "/srv/app/static/; }'. 'location /static { alias .../static/; }' serves "
    "/static../ (gixy's alias_traversal).",
    example="location /static {\n    alias /srv/shop/static/;   # GET /static../app.env",
)
def alias_traversal(ctx: Context) -> Iterator[Finding]:
    for alias in (d for d in _tree(ctx).walk() if d.name == "alias" and d.args):
        location = alias.parent
        if location is None or location.name != "location":
            continue
        prefix = _location_prefix(location)
        if prefix is None:
            continue
        target = alias.args[0]
        if not prefix.endswith("/") and target.endswith("/"):
            message = (
                f"location {prefix} with alias {target}: a request for {prefix}../ reads "
                f"the folder above {target}"
            )
        elif prefix.endswith("/") and not target.endswith("/"):
            message = (
                f"location {prefix} with alias {target}: {prefix}x maps to {target}x, "
                f"so sibling folders like {target}-private are served"
            )
        else:
            continue
        yield alias_traversal.finding(message, **_at(ctx, alias))


def _server_bases(ctx: Context) -> list[tuple[str, Path]]:
    """Server paths we can map into the project: (server prefix, project folder)."""
    bases: list[tuple[str, Path]] = []
    if ctx.spec is not None:
        bases.append((ctx.spec.app.install_dir, ctx.root))
    for unit in parse_units(ctx):
        workdir = unit.value("Service", "WorkingDirectory").lstrip("-")
        if workdir.startswith("/"):
            bases.append((workdir, ctx.root))
    for compose in parse_compose_files(ctx):
        for service in compose.services.values():
            volumes = service.get("volumes")
            for volume in volumes if isinstance(volumes, list) else []:
                if isinstance(volume, str) and volume.count(":") >= 1:
                    source, target = volume.split(":")[:2]
                    folder = (compose.path.parent / source).resolve()
                    # Only mounts of project folders say where the project's files are.
                    if source.startswith(".") or (
                        source.startswith("/") and folder.is_relative_to(ctx.root)
                    ):  # a named volume ("static:/srv/static") is neither
                        bases.append((target, folder))
    bases = [(prefix, folder) for prefix, folder in bases if prefix.rstrip("/")]
    return sorted(bases, key=lambda b: len(b[0]), reverse=True)


def _map(bases: list[tuple[str, Path]], server_path: str) -> Path | None:
    path = PurePosixPath(server_path)
    for prefix, folder in bases:
        if path.is_relative_to(prefix):
            return folder / path.relative_to(prefix)
    return None


def _static_locations(ctx: Context, tree: NginxTree) -> Iterator[tuple[Directive, str]]:
    static_url = ctx.spec.paths.static_url if ctx.spec else "/static/"
    for location in (d for d in tree.walk() if d.name == "location"):
        prefix = _location_prefix(location)
        if prefix is None or prefix.rstrip("/") != static_url.rstrip("/"):
            continue
        alias, root = location.first("alias"), location.setting("root")
        if alias and alias.args:
            yield alias, alias.args[0]
        elif root and root.args:
            yield root, f"{root.args[0].rstrip('/')}/{prefix.strip('/')}"


@rule(
    "NGX004",
    layer="nginx",
    level=Level.WARNING,
    title="static files are served from a folder that is not the app's",
    help="Point the static location at the app's static folder as installed on the "
    "server: 'location /static/ { alias /srv/APP/PACKAGE/static/; }' (check the "
    "install dir, systemd WorkingDirectory or compose volume), or every CSS/JS is a 404.",
    example=(
        "location /static/ {\n"
        "    alias /srv/shop/assets/;"
        "   # the app's files are in /srv/shop/shop/static"
    ),
)
def static_elsewhere(ctx: Context) -> Iterator[Finding]:
    bases = _server_bases(ctx)
    expected = (ctx.root / ctx.spec.paths.static_dir).resolve() if ctx.spec else None
    for directive, server_path in _static_locations(ctx, _tree(ctx)):
        local = _map(bases, server_path)
        if local is None:
            continue  # a path we cannot relate to the project: nothing to compare
        local = local.resolve()
        if not local.is_dir():
            # The install folder may hold the project one level up or down (a src/
            # layout, WorkingDirectory in a subfolder): the longest tail that exists.
            parts = PurePosixPath(server_path).parts
            tails = (ctx.root.joinpath(*parts[i:]) for i in range(1, len(parts) - 1))
            local = next((t.resolve() for t in tails if t.is_dir()), local)
        if expected is not None and local == expected:
            continue
        if expected is None and local.is_dir():
            continue
        want = f" (the app's is {ctx.relative(expected)})" if expected else ""
        state = "which is another folder" if local.is_dir() else "which does not exist"
        yield static_elsewhere.finding(
            f"static files come from {server_path}, that is {ctx.relative(local)} in the "
            f"project, {state}{want}",
            **_at(ctx, directive),
        )


def _redirects_to_https(block: Directive) -> bool:
    for directive in block.walk():
        if directive.name == "return" and any("https://" in a for a in directive.args):
            return True
        if directive.name == "rewrite" and any(a.startswith("https://") for a in directive.args):
            return True
    return False


def _serves_content(server: Directive) -> bool:
    """The server answers with pages (not only a redirect, 444 or a refused handshake)."""
    return any(d.name in ("proxy_pass", "uwsgi_pass", "root", "alias") for d in server.walk())


def _content_servers(tree: NginxTree) -> list[Directive]:
    return [s for s in tree.servers() if _serves_content(s)]


@rule(
    "NGX005",
    layer="nginx",
    level=Level.WARNING,
    title="no redirect from HTTP to HTTPS",
    help="Serve the app only over TLS and answer plain HTTP with a redirect: "
    "'server { listen 80; server_name example.com; location / { return 301 "
    "https://$host$request_uri; } }' (keep /.well-known/acme-challenge/ if you use it).",
    example=(
        "server {\n"
        "    listen 80;\n"
        "    location / { proxy_pass http://app; }"
        "   # no return 301 https://..."
    ),
)
def no_https_redirect(ctx: Context) -> Iterator[Finding]:
    servers = _tree(ctx).servers()
    if not servers:
        return
    tls = [s for s in servers if _is_tls(s)]
    if not tls:
        app_server = next((s for s in servers if _serves_content(s)), None)
        if app_server is not None:
            yield no_https_redirect.finding(
                "nginx serves the app over plain HTTP only: no server listens with TLS",
                **_at(ctx, app_server),
            )
        return
    plain = [s for s in servers if not _is_tls(s)]
    for server in plain:
        if not _redirects_to_https(server) and _serves_content(server):
            yield no_https_redirect.finding(
                "this plain-HTTP server serves content instead of redirecting to HTTPS",
                **_at(ctx, server),
            )


@rule(
    "NGX006",
    layer="nginx",
    level=Level.ERROR,
    title="TLS below 1.2 or weak ciphers",
    help="Use 'ssl_protocols TLSv1.2 TLSv1.3;' and Mozilla's intermediate cipher list "
    "(ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:...), "
    "or leave ssl_ciphers at nginx's default.",
    example="ssl_protocols TLSv1 TLSv1.1 TLSv1.2;",
)
def weak_tls(ctx: Context) -> Iterator[Finding]:
    for directive in _tree(ctx).walk():
        if directive.name == "ssl_protocols":
            old = [a for a in directive.args if a in _WEAK_PROTOCOLS]
            if old:
                yield weak_tls.finding(
                    f"ssl_protocols allows {', '.join(old)} (broken or deprecated)",
                    **_at(ctx, directive),
                )
        elif directive.name == "ssl_ciphers" and directive.args:
            tokens = re.split(r"[:\s,]+", directive.args[0])
            weak = [
                t
                for t in tokens
                if t and t[0] not in "!-" and any(w in t.upper() for w in _WEAK_CIPHERS)
            ]
            if weak:
                yield weak_tls.finding(
                    f"ssl_ciphers enables weak ciphers: {', '.join(weak[:4])}",
                    **_at(ctx, directive),
                )
    for server in (s for s in _content_servers(_tree(ctx)) if _is_tls(s)):
        if server.setting("ssl_protocols") is None:
            yield weak_tls.finding(
                "ssl_protocols is not set: nginx before 1.23.4 (and distributions' "
                "nginx.conf files) still allow TLSv1 and TLSv1.1",
                level=Level.INFO,
                **_at(ctx, server),
            )


def _headers(block: Directive) -> dict[str, Directive]:
    return {d.args[0].lower(): d for d in block.inherited("add_header") if d.args}


def _app_sends_hsts(ctx: Context) -> bool:
    """The app sends HSTS itself: the spec says so, the probe saw it, Talisman is
    there, or flaskprod's runtime has its security headers on."""
    if ctx.spec is not None and ctx.spec.http.security_headers == "app":
        return True
    if ctx.app is not None:
        if "strict-transport-security" in ctx.app.headers:
            return True
        if any("talisman" in e.lower() for e in ctx.app.extensions):
            return True
    config = ctx.app_config or {}
    if "SECURITY_HEADERS" in config:  # flaskprod.Production's switch
        on = config["SECURITY_HEADERS"] not in (False, None, "", "nginx", "off")
        return on and bool(config.get("HSTS_MAX_AGE"))
    return False


def _max_age(value: str) -> int | None:
    match = re.search(r"max-age\s*=\s*\"?(\d+)", value)
    return int(match.group(1)) if match else None


@rule(
    "NGX007",
    layer="nginx",
    level=Level.WARNING,
    title="no HSTS, or a max-age under six months",
    help="In the TLS server add: 'add_header Strict-Transport-Security "
    '"max-age=63072000; includeSubDomains" always;\' (or let the app send it, and say '
    'so with [http] security_headers = "app" in flaskprod.toml).',
    example="server {\n    listen 443 ssl;\n    # no add_header Strict-Transport-Security ...",
)
def no_hsts(ctx: Context) -> Iterator[Finding]:
    for server in (s for s in _content_servers(_tree(ctx)) if _is_tls(s)):
        # What each content block really sends (a location may set its own headers).
        blocks = [
            d.parent
            for d in server.walk()
            if d.name in ("proxy_pass", "uwsgi_pass", "alias", "root") and d.parent is not None
        ] or [server]
        headers = [_headers(b).get("strict-transport-security") for b in blocks]
        present = [h for h in headers if h is not None]
        if not present:
            if _app_sends_hsts(ctx) or server.unresolved_include(inside=True):
                continue
            yield no_hsts.finding(
                "this TLS server sends no Strict-Transport-Security header, and the app "
                "does not either",
                **_at(ctx, server),
            )
            continue
        for header in {id(h): h for h in present}.values():
            age = _max_age(" ".join(header.args[1:]))
            if age is not None and age < SIX_MONTHS:
                yield no_hsts.finding(
                    f"HSTS max-age is {age} s, under six months ({SIX_MONTHS} s)",
                    **_at(ctx, header),
                )


@rule(
    "NGX008",
    layer="nginx",
    level=Level.WARNING,
    title="add_header in a nested block drops the parent's security headers",
    help="nginx's add_header is all-or-nothing per level: repeat the security headers in "
    "the block (or put them all in a snippet and include it in every block that adds a "
    "header).",
    example=(
        'add_header Strict-Transport-Security "max-age=63072000" always;\n'
        "location /static/ {\n"
        '    add_header Cache-Control "public";'
        "   # HSTS no longer sent here"
    ),
)
def headers_dropped(ctx: Context) -> Iterator[Finding]:
    for block in _tree(ctx).walk():
        own = block.find("add_header")
        if block.children is None or not own or block.parent is None:
            continue
        if block.first("add_header_inherit") is not None:
            continue
        parent = block.parent.inherited("add_header")
        parent_security = {d.args[0].lower() for d in parent if d.args} & set(SECURITY_HEADERS)
        lost = parent_security - {d.args[0].lower() for d in own if d.args}
        if lost:
            yield headers_dropped.finding(
                f"{block.name} {' '.join(block.args)} adds its own headers, so nginx no "
                f"longer sends {', '.join(sorted(lost))} here",
                **_at(ctx, own[0]),
            )


@rule(
    "NGX009",
    layer="nginx",
    level=Level.WARNING,
    title="Host forwarded as $http_host",
    help="Use 'proxy_set_header Host $host;': $http_host is the raw client header (may "
    "be empty or carry a port) while $host is normalised and falls back to server_name.",
    example="proxy_set_header Host $http_host;",
)
def http_host(ctx: Context) -> Iterator[Finding]:
    for directive in _tree(ctx).walk():
        if (
            directive.name == "proxy_set_header"
            and len(directive.args) >= 2
            and directive.args[0].lower() == "host"
            and "$http_host" in directive.args[1]
        ):
            yield http_host.finding(
                "proxy_set_header Host $http_host passes the client's raw Host header",
                **_at(ctx, directive),
            )


@rule(
    "NGX010",
    layer="nginx",
    level=Level.WARNING,
    title="X-Forwarded-Proto / X-Forwarded-For not passed to the app",
    help="In every proxied location (or once at server level) add: 'proxy_set_header "
    "X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto "
    "$scheme;' so the app (ProxyFix) knows the client's IP and that it came over HTTPS.",
    example=(
        "location / {\n"
        "    proxy_pass http://app;"
        "   # no X-Forwarded-Proto: the app thinks it is on http"
    ),
)
def forwarded_missing(ctx: Context) -> Iterator[Finding]:
    for proxy_pass in _app_proxy_passes(ctx):
        block = proxy_pass.parent
        if block is None or block.unresolved_include():
            continue  # e.g. Debian's proxy_params, which sets both
        names = {d.args[0].lower() for d in block.inherited("proxy_set_header") if d.args}
        missing = [h for h in ("X-Forwarded-Proto", "X-Forwarded-For") if h.lower() not in names]
        if missing:
            yield forwarded_missing.finding(
                f"proxy_pass here does not set {' or '.join(missing)}",
                **_at(ctx, proxy_pass),
            )


def _app_body_limit(ctx: Context) -> tuple[int, str] | None:
    if ctx.app_config is not None:
        value = ctx.app_config.get("MAX_CONTENT_LENGTH")
        if isinstance(value, int) and not isinstance(value, bool):
            return value, "the app's MAX_CONTENT_LENGTH"
        return None  # the app sets no limit: APP's own rule says so
    if ctx.spec is not None:
        return ctx.spec.http.max_body_bytes, "flaskprod.toml's http.max_body"
    return None


@rule(
    "NGX011",
    layer="nginx",
    level=Level.WARNING,
    title="client_max_body_size differs from the app's MAX_CONTENT_LENGTH",
    help="Set client_max_body_size to the app's MAX_CONTENT_LENGTH (nginx's default is "
    "1m when unset): otherwise uploads the app accepts are refused by nginx with a bare "
    "413, or nginx buffers bodies the app will refuse.",
    example=(
        "# nothing set: nginx refuses bodies over 1m, the app accepts 10 MB\nproxy_pass http://app;"
    ),
)
def body_size_mismatch(ctx: Context) -> Iterator[Finding]:
    limit = _app_body_limit(ctx)
    if limit is None:
        return
    from_spec = ctx.app_config is None
    reported: set[int] = set()
    for proxy_pass in _app_proxy_passes(ctx):
        block, server = proxy_pass.parent, _enclosing_server(proxy_pass)
        if block is None or id(server) in reported:
            continue
        if from_spec and not spec_governs(ctx, proxy_pass.file):
            continue  # the spec's max_body is the kit's; the project's own site is not held to it
        found = block.setting("client_max_body_size")
        text = found.args[0] if found and found.args else "1m"
        try:
            size = parse_size(text)
        except ValueError:
            continue
        if size == 0 or size == limit[0]:
            continue
        reported.add(id(server))
        where = found or proxy_pass
        shown = text if found else "1m (nginx's default; not set)"
        yield body_size_mismatch.finding(
            f"client_max_body_size is {shown} but {limit[1]} is {limit[0]} bytes",
            **_at(ctx, where),
        )


@rule(
    "NGX012",
    layer="nginx",
    level=Level.WARNING,
    title="server_tokens on",
    help="Add 'server_tokens off;' in the http block (or each server): nginx otherwise "
    "shows its exact version on every error page and in the Server header.",
    example="http {\n    # no server_tokens off;",
    level_reason="warning, a checklist item (version hidden): the exact version tells "
    "scanners which CVEs to try; info for a site file, whose nginx.conf may turn it off.",
)
def server_tokens(ctx: Context) -> Iterator[Finding]:
    tree = _tree(ctx)
    for server in _content_servers(tree):
        setting = server.setting("server_tokens")
        if setting is not None and setting.args[:1] != ["off"]:
            yield server_tokens.finding(
                f"server_tokens {' '.join(setting.args)} advertises nginx's version",
                **_at(ctx, setting),
            )
            return
        if setting is None:
            full = tree.has_http_block
            yield server_tokens.finding(
                "server_tokens is not set, and nginx's default is on"
                + ("" if full else " (unless the server's nginx.conf sets it)"),
                level=None if full else Level.INFO,
                **_at(ctx, server),
            )
            return


@rule(
    "NGX013",
    layer="nginx",
    level=Level.WARNING,
    title="no default server for unknown hosts",
    help="Add a catch-all per port that drops requests for other host names: 'server "
    "{ listen 80 default_server; listen 443 ssl default_server; server_name _; "
    "ssl_reject_handshake on; return 444; }'.",
    example=(
        "server { listen 80; server_name shop.example.com; ... }"
        "   # also answers Host: evil.example"
    ),
    level_reason="warning, as the deployment checklists have it: the site answers any "
    "Host (host-header poisoning of password-reset links, the site indexed under other "
    "names); info for a site file whose nginx.conf may hold the default server.",
)
def no_default_server(ctx: Context) -> Iterator[Finding]:
    by_port: dict[str, list[Directive]] = {}
    for server in _tree(ctx).servers():
        for port in _ports(server):
            by_port.setdefault(port, []).append(server)
    ports: list[str] = []
    first: Directive | None = None
    for port, servers in sorted(by_port.items(), key=lambda item: item[0].zfill(5)):
        default = any(
            "default_server" in listen.args or "default" in listen.args[1:]
            for server in servers
            for listen in server.find("listen")
            if _ports_of_listen(listen) == port
        )
        names = [a for d in servers[0].find("server_name") for a in d.args]
        if default or not names or set(names) <= {"_", "", "localhost", "127.0.0.1"}:
            continue  # an explicit default, or the first server is a catch-all already
        ports.append(port)
        first = first or servers[0]
    if first is None:
        return
    # In a site file (no http block) the server's nginx.conf may still hold a default
    # site (Debian's sites-enabled/default): worth a note only.
    full = _tree(ctx).has_http_block
    names = [a for d in first.find("server_name") for a in d.args]
    yield no_default_server.finding(
        f"no default_server on port {', '.join(ports)}: requests for any host name are "
        f"answered by the server for {names[0]}"
        + ("" if full else " (unless another site is the default)"),
        level=None if full else Level.INFO,
        **_at(ctx, first),
    )


def _ports_of_listen(listen: Directive) -> str:
    address = listen.args[0] if listen.args else "80"
    return address.rsplit(":", 1)[-1] if ":" in address else address


def _granian_behind(ctx: Context, proxy_pass: Directive) -> bool:
    from flaskprod.check.parsers.granian import granian_setups

    targets = [t for t in proxy_targets(ctx) if t.directive is proxy_pass]
    return any(reaches(t, b) for s in granian_setups(ctx) for b in s.binds for t in targets)


def _setups_behind(ctx: Context, proxy_pass: Directive) -> list[GunicornSetup]:
    targets = [t for t in proxy_targets(ctx) if t.directive is proxy_pass]
    return [s for s in gunicorn_setups(ctx) if any(reaches(t, b) for t in targets for b in s.binds)]


@rule(
    "NGX014",
    layer="nginx",
    level=Level.WARNING,
    title="proxy buffering off in front of sync workers",
    help="Remove 'proxy_buffering off' (and 'proxy_request_buffering off') for "
    "locations served by sync workers, or switch gunicorn to gthread: nginx's buffering "
    "is what protects sync workers from slow clients.",
    example="proxy_buffering off;   # in front of gunicorn's sync workers",
)
def buffering_off(ctx: Context) -> Iterator[Finding]:
    for proxy_pass in _proxy_passes(_tree(ctx)):
        block = proxy_pass.parent
        if block is None:
            continue
        for name in ("proxy_buffering", "proxy_request_buffering"):
            setting = block.setting(name)
            if setting is None or setting.args[:1] != ["off"]:
                continue
            if any(s.worker_class == "sync" for s in _setups_behind(ctx, proxy_pass)):
                yield buffering_off.finding(
                    f"{name} off in front of gunicorn sync workers: a slow client holds a "
                    "worker for the whole transfer",
                    **_at(ctx, setting),
                )


@rule(
    "NGX015",
    layer="nginx",
    level=Level.INFO,
    title="no upstream keepalive with threaded or async workers (gthread, gevent, granian)",
    help="Proxy through 'upstream app { server unix:/run/APP/gunicorn.sock; keepalive "
    "16; }' with 'proxy_http_version 1.1; proxy_set_header Connection \"\";' so nginx "
    "reuses connections to gthread/gevent workers.",
    example=(
        "proxy_pass http://unix:/run/shop/gunicorn.sock;   # gthread workers, no upstream keepalive"
    ),
)
def no_keepalive(ctx: Context) -> Iterator[Finding]:
    tree = _tree(ctx)
    upstreams = tree.upstreams()
    for proxy_pass in _proxy_passes(tree):
        setups = _setups_behind(ctx, proxy_pass)
        threaded = any(s.worker_class in ("gthread", "gevent", "eventlet") for s in setups)
        granian = _granian_behind(ctx, proxy_pass)  # threads in every worker
        if not threaded and not granian:
            continue
        name = proxy_pass.args[0].split("://", 1)[-1].split("/", 1)[0]
        upstream = upstreams.get(name)
        block = proxy_pass.parent
        version = block.setting("proxy_http_version") if block else None
        if upstream is None or upstream.first("keepalive") is None:
            server = "granian" if granian and not threaded else "gunicorn"
            message = f"nginx opens a new connection to {server} for every request"
        elif version is None or version.args[:1] != ["1.1"]:
            message = "upstream keepalive is set but proxy_http_version 1.1 is not, so unused"
        else:
            continue
        yield no_keepalive.finding(message, **_at(ctx, proxy_pass))


def _location_key(location: Directive) -> tuple[str, str] | None:
    """What nginx compares to find duplicate locations: prefix locations (with or
    without ^~) by path, exact (=) ones by path; regex and named (@) locations are
    never compared (nginx -t accepts two of them)."""
    args = location.args
    if not args:
        return None
    if len(args) == 1:
        path = args[0]
        if path.startswith("@"):
            return None
        if path.startswith("="):  # "=/x" written without a space
            return ("exact", path[1:])
        return ("prefix", path)
    modifier, path = args[0], args[1]
    if modifier == "^~":
        return ("prefix", path)
    if modifier == "=":
        return ("exact", path)
    return None  # ~ and ~*: regexes


@rule(
    "NGX016",
    layer="nginx",
    level=Level.ERROR,
    title="two locations collide (nginx refuses the config)",
    help="Keep one location per path in a server: 'location ^~ /x' and 'location /x' "
    "are the same prefix to nginx, which stops with 'duplicate location'. Merge them "
    "(a static_url_path of '' puts the static files at '/', where the app is: serve "
    "them with try_files $uri @app instead).",
    example="location ^~ / { root /srv/app/static; }\nlocation / { proxy_pass http://app; }",
)
def duplicate_location(ctx: Context) -> Iterator[Finding]:
    for block in _tree(ctx).walk():
        if block.name not in ("server", "location") or not block.children:
            continue
        seen: dict[tuple[str, str], Directive] = {}
        for location in block.find("location"):
            key = _location_key(location)
            if key is None:
                continue
            first = seen.setdefault(key, location)
            if first is not location:
                yield duplicate_location.finding(
                    f'duplicate location "{key[1]}": {" ".join(location.args)} here and '
                    f"{' '.join(first.args)} at {ctx.relative(first.file)}:{first.line}",
                    **_at(ctx, location),
                )
