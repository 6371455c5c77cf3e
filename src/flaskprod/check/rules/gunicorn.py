"""gunicorn rules: how the app server is started and configured.

Every place that starts gunicorn (systemd, Procfile, Dockerfile, compose, or a bare
``gunicorn.conf.py``) is one *setup*; each rule judges a setup in its context: on a
VM, inside a container, behind a proxy or not.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.gunicorn import (
    GunicornSetup,
    gunicorn_setups,
    parse_bind,
    parse_config,
)
from flaskprod.check.parsers.nginx import parse_nginx
from flaskprod.check.parsers.proxy import has_proxy, proxy_targets, reaches
from flaskprod.launch.gunicorn import CpuBased
from flaskprod.spec.model import default_workers

_WILDCARDS = {"0.0.0.0", "::", "*", ""}
#: nginx's proxy_read_timeout when a config does not set it.
NGINX_READ_TIMEOUT = 60


def _public_binds(setup: GunicornSetup) -> list[str]:
    return [b for b in setup.binds if parse_bind(b)[0] in _WILDCARDS]


@rule(
    "GUN001",
    layer="gunicorn",
    level=Level.ERROR,
    title="gunicorn config file cannot be read",
    help="Fix the Python syntax of gunicorn.conf.py (run 'python -m py_compile "
    "gunicorn.conf.py'); gunicorn refuses to start with a broken config.",
    example="workers = = 3",
)
def config_unreadable(ctx: Context) -> Iterator[Finding]:
    seen: set[Path] = set()
    configs = [s.config for s in gunicorn_setups(ctx) if s.config]
    configs += [parse_config(ctx, path) for path in ctx.of_kind("gunicorn")]
    for config in configs:
        if config.error is None or config.path in seen:
            continue
        seen.add(config.path)
        line, message = config.error
        yield config_unreadable.finding(
            f"{ctx.relative(config.path)}: {message}",
            file=ctx.relative(config.path),
            line=line or 1,
        )


def _module_file(ctx: Context, module: str, setup: GunicornSetup) -> Path | None:
    bases = [ctx.root, ctx.root / "src"]
    if setup.source is not None:
        bases[:0] = [setup.source, setup.source / "src"]
    chdir = setup.get("chdir")
    if isinstance(chdir, str):
        bases.insert(0, ctx.root / chdir.lstrip("/"))
        bases.extend(ctx.root / p for p in Path(chdir).parts[1:])
    relative = Path(*module.split("."))
    for base in bases:
        for candidate in (base / f"{relative}.py", base / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _defines(path: Path, name: str) -> bool | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError, OSError):
        return None  # the app layer reports a module that does not compile
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return True
            if any(alias.name == "*" for alias in node.names):
                return None
    return False


@rule(
    "GUN002",
    layer="gunicorn",
    level=Level.ERROR,
    title="gunicorn's app target does not exist",
    help="Point gunicorn at the module and variable that hold the app, e.g. "
    "'wsgi:app' for app = create_app() in wsgi.py, or 'package:create_app()' for a "
    "factory; check it locally with 'gunicorn --check-config TARGET'.",
    example="web: gunicorn wsgi:application   # wsgi.py defines app",
)
def target_missing(ctx: Context) -> Iterator[Finding]:
    # A static check, so it also works with --no-import and names the exact line;
    # when the app was imported under this very target, there is nothing to find.
    for setup in gunicorn_setups(ctx):
        target = setup.target
        if not target or "$" in target or (":" not in target and "." in target):
            continue
        if ctx.app_error and ctx.cache.get("app_target") == target:
            continue  # the import of this very target failed: APP000 says why, once
        module, _, variable = target.partition(":")
        name = (variable or "application").split("(", 1)[0].strip()
        path = _module_file(ctx, module, setup)
        where = ctx.relative(setup.file)
        if path is None:
            if module.split(".")[0] in {"flaskprod"}:
                continue
            yield target_missing.finding(
                f"{where} starts gunicorn with {target!r}, but no module {module!r} is in "
                "the project",
                file=where,
                line=setup.line,
                level=Level.WARNING,
            )
        elif _defines(path, name) is False:
            yield target_missing.finding(
                f"{where} starts gunicorn with {target!r}, but {ctx.relative(path)} "
                f"defines no {name!r}",
                file=where,
                line=setup.line,
            )


@rule(
    "GUN003",
    layer="gunicorn",
    level=Level.WARNING,
    title="gunicorn listens on all interfaces of the server",
    help="Bind gunicorn to a unix socket (--bind unix:/run/APP/gunicorn.sock) or to "
    "127.0.0.1:8000 and let nginx be the only public listener; only inside a container "
    "is 0.0.0.0 right.",
    example="ExecStart=/srv/shop/.venv/bin/gunicorn --bind 0.0.0.0:8000 wsgi:app",
)
def public_bind(ctx: Context) -> Iterator[Finding]:
    for setup in gunicorn_setups(ctx):
        public = _public_binds(setup)
        if setup.in_container or not public:
            continue
        file, line = setup.where("bind")
        behind = "behind a proxy, " if has_proxy(ctx) else ""
        yield public_bind.finding(
            f"gunicorn binds {public[0]} on the host: {behind}anyone can reach it directly, "
            "bypassing the proxy's TLS, limits and buffering",
            file=ctx.relative(file),
            line=line,
        )


def _trusts_all(setup: GunicornSetup) -> bool:
    value = setup.get("forwarded_allow_ips", setup.env.get("FORWARDED_ALLOW_IPS"))
    if isinstance(value, str):
        return "*" in [v.strip() for v in value.split(",")]
    return isinstance(value, list) and "*" in value


def _published(ctx: Context, service: str | None) -> bool:
    """A compose service's port is published on a non-loopback host address."""
    for compose in parse_compose_files(ctx):
        body = compose.services.get(service or "")
        ports = body.get("ports") if body is not None else None
        for port in ports if isinstance(ports, list) else []:
            text = str(port.get("host_ip", "") if isinstance(port, dict) else port)
            if not text.startswith(("127.0.0.1:", "localhost:", "[::1]:")):
                return True
    return False


@rule(
    "GUN004",
    layer="gunicorn",
    level=Level.ERROR,
    title="gunicorn trusts X-Forwarded-* from anyone",
    help="Set forwarded_allow_ips to the proxy's address (the default 127.0.0.1 is "
    "right for nginx on the same host over a socket or loopback), or keep gunicorn "
    "unreachable except from the proxy.",
    example="--bind 0.0.0.0:8000 --forwarded-allow-ips '*'   # on the VM itself",
)
def trusts_everyone(ctx: Context) -> Iterator[Finding]:
    for setup in gunicorn_setups(ctx):
        if not _trusts_all(setup):
            continue
        file, line = setup.where("forwarded_allow_ips")
        if setup.in_container:
            if setup.service is None or not _published(ctx, setup.service):
                continue  # reachable only from the proxy on the container network
            reason = f"its compose service {setup.service!r} publishes a port to the outside"
        elif _public_binds(setup):
            reason = f"it listens on {_public_binds(setup)[0]}"
        else:
            continue  # a socket or loopback: only local processes can talk to it
        yield trusts_everyone.finding(
            f"forwarded_allow_ips='*' while {reason}: any client can forge its IP "
            "address and scheme (X-Forwarded-For/Proto)",
            file=ctx.relative(file),
            line=line,
        )


@rule(
    "GUN005",
    layer="gunicorn",
    level=Level.ERROR,
    title="gunicorn reload is on",
    help="Remove --reload / reload = True in production: it watches files, restarts "
    "workers on any change and costs CPU; deploy with 'systemctl reload' (HUP) instead.",
    example="reload = True",
)
def reload_on(ctx: Context) -> Iterator[Finding]:
    for setup in gunicorn_setups(ctx):
        if setup.get("reload") is True:
            file, line = setup.where("reload")
            yield reload_on.finding(
                "gunicorn runs with reload on (a development setting)",
                file=ctx.relative(file),
                line=line,
            )


@rule(
    "GUN006",
    layer="gunicorn",
    level=Level.WARNING,
    title="gunicorn worker count does not fit",
    help="Use 2 x cores + 1 sync workers, or about one gthread/gevent worker per core "
    "(at least 2); compute it on the server: "
    "workers = multiprocessing.cpu_count() * 2 + 1.",
    example="workers = 1   # sync",
)
def worker_count(ctx: Context) -> Iterator[Finding]:
    cores = os.cpu_count() or 1
    for setup in gunicorn_setups(ctx):
        workers, kind = setup.workers, setup.worker_class
        if isinstance(workers, CpuBased) or not isinstance(workers, int):
            continue
        file, line = setup.where("workers")
        if ctx.spec and ctx.spec.server.workers and workers != ctx.spec.server.workers:
            yield worker_count.finding(
                f"gunicorn runs {workers} workers but flaskprod.toml says "
                f"{ctx.spec.server.workers}",
                file=ctx.relative(file),
                line=line,
            )
        elif workers == 1 and kind == "sync":
            yield worker_count.finding(
                "gunicorn runs a single sync worker: one slow request blocks every other "
                "visitor, and a crashed worker leaves nothing serving",
                file=ctx.relative(file),
                line=line,
            )
        elif workers > 8 and workers > 2 * default_workers(kind, cores):
            yield worker_count.finding(
                f"gunicorn runs {workers} {kind} workers; about "
                f"{default_workers(kind, cores)} suit {cores} cores (each worker costs "
                "~30 MB and a database pool)",
                file=ctx.relative(file),
                line=line,
                level=Level.INFO,
            )


@rule(
    "GUN007",
    layer="gunicorn",
    level=Level.WARNING,
    title="sync workers without a buffering proxy in front",
    help="Put nginx (with proxy_buffering on, its default) in front of gunicorn, or "
    "use --worker-class gthread: a sync worker is held for the whole time a slow client "
    "takes to send its request or read the answer.",
    example="web: gunicorn --workers 3 wsgi:app   # sync workers, nothing in front",
)
def sync_unbuffered(ctx: Context) -> Iterator[Finding]:
    if has_proxy(ctx):
        return  # nginx buffering off is NGX014's finding
    for setup in gunicorn_setups(ctx):
        if setup.worker_class == "sync":
            file, line = setup.where("worker_class")
            yield sync_unbuffered.finding(
                "gunicorn runs sync workers and no reverse proxy was found in front: a "
                "handful of slow clients can occupy every worker",
                file=ctx.relative(file),
                line=line,
            )


def _read_timeout(ctx: Context, setup: GunicornSetup) -> tuple[int, str] | None:
    """The proxy's read timeout (seconds, where) on the way to this gunicorn."""
    for target in proxy_targets(ctx):
        if any(reaches(target, bind) for bind in setup.binds):
            found = target.directive.setting("proxy_read_timeout")
            if found is None:
                return NGINX_READ_TIMEOUT, "nginx's default proxy_read_timeout"
            seconds = _seconds(found.args[0]) if found.args else None
            if seconds is not None:
                return seconds, f"{ctx.relative(found.file)}:{found.line}"
    return None


def _seconds(text: str) -> int | None:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            return int(int(text[: -len(suffix)]) * units[suffix])
    return int(text) if text.isdigit() else None


#: Seconds the proxy's read timeout may exceed gunicorn's timeout and still be aligned.
PROXY_MARGIN = 10


@rule(
    "GUN008",
    layer="gunicorn",
    level=Level.WARNING,
    title="gunicorn timeout does not fit the proxy's",
    help="With sync workers, set gunicorn's timeout at least as long as nginx's "
    "proxy_read_timeout (or lower proxy_read_timeout), and keep both at most a few "
    "minutes: move long jobs to a queue.",
    example="timeout = 30   # nginx: proxy_read_timeout 300s;",
)
def timeout_mismatch(ctx: Context) -> Iterator[Finding]:
    """Sync workers: the proxy waiting much longer than gunicorn lets a request run."""
    parse_nginx(ctx)
    for setup in gunicorn_setups(ctx):
        timeout = setup.get("timeout", 30)
        if not isinstance(timeout, int):
            continue
        file, line = setup.where("timeout")
        if timeout == 0 or timeout > 300:
            shown = "0 (never)" if timeout == 0 else f"{timeout} s"
            yield timeout_mismatch.finding(
                f"gunicorn's timeout is {shown}: a stuck worker is never replaced in time",
                file=ctx.relative(file),
                line=line,
            )
            continue
        if setup.worker_class != "sync":
            continue  # gthread/gevent: the timeout is a heartbeat, not a request limit
        proxy = _read_timeout(ctx, setup)
        # A proxy a few seconds above gunicorn is the aligned setting (flaskprod's kit
        # renders timeout + 5 s): gunicorn ends the request first, with a 502 nginx can
        # retry, instead of nginx's 504 while the worker goes on.
        if proxy is not None and proxy[0] > timeout + PROXY_MARGIN:
            # Raising proxy_read_timeout on purpose and forgetting gunicorn is a real
            # bug (long requests die anyway); the two defaults (60 s vs 30 s) only
            # turn a clean 504 into a 502, so that is worth a note, not a warning.
            explicit = proxy[1] != "nginx's default proxy_read_timeout"
            yield timeout_mismatch.finding(
                f"gunicorn kills a sync worker after {timeout} s, before the proxy gives up "
                f"({proxy[0]} s, {proxy[1]}): slow requests end in a 502 and a killed worker",
                file=ctx.relative(file),
                line=line,
                level=None if explicit else Level.INFO,
            )


@rule(
    "GUN009",
    layer="gunicorn",
    level=Level.INFO,
    title="gunicorn workers are never recycled",
    help="Set max_requests = 2000 and max_requests_jitter = 200, so that a slow memory "
    "leak cannot grow forever and workers do not all restart at once.",
    example="# gunicorn.conf.py without max_requests",
)
def no_max_requests(ctx: Context) -> Iterator[Finding]:
    for setup in gunicorn_setups(ctx):
        limit = setup.get("max_requests", 0)
        jitter = setup.get("max_requests_jitter", 0)
        file, line = setup.where("max_requests")
        if limit == 0:
            yield no_max_requests.finding(
                "gunicorn has no max_requests: workers live forever, leaks included",
                file=ctx.relative(file),
                line=line,
            )
        elif isinstance(limit, int) and jitter == 0:
            yield no_max_requests.finding(
                f"max_requests = {limit} without max_requests_jitter: all workers restart "
                "at about the same moment",
                file=ctx.relative(file),
                line=line,
            )


def _uses_connections(ctx: Context) -> bool | None:
    """True when the app keeps pooled connections (database, Redis), None if unknown."""
    if ctx.app is not None and ctx.app.engines:
        return True
    config = ctx.app_config or {}
    if any(k in config for k in ("SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_BINDS")):
        return True
    if any(k in ctx.env for k in ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "REDIS_URL")):
        return True
    if ctx.spec is not None:
        return True  # a flaskprod spec always has a database
    return False if ctx.app is not None else None


@rule(
    "GUN010",
    layer="gunicorn",
    level=Level.WARNING,
    title="preload_app without resetting connections after fork",
    help="Define post_fork(server, worker) in gunicorn.conf.py that disposes the "
    "connection pools inherited from the master (db.engine.dispose(close=False), or "
    "flaskprod.runtime.database.dispose_engines(app)), or drop preload_app.",
    example="preload_app = True   # and no def post_fork(server, worker)",
)
def preload_without_reset(ctx: Context) -> Iterator[Finding]:
    for setup in gunicorn_setups(ctx):
        if setup.get("preload_app") is not True:
            continue
        hooks = setup.config.hooks if setup.config else {}
        if "post_fork" in hooks or "post_worker_init" in hooks:
            continue
        uses = _uses_connections(ctx)
        if uses is False:
            continue
        file, line = setup.where("preload_app")
        yield preload_without_reset.finding(
            "preload_app is on and no post_fork hook resets connections: workers share the "
            "master's database/Redis sockets and corrupt each other's traffic",
            file=ctx.relative(file),
            line=line,
            level=None if uses else Level.INFO,
        )
