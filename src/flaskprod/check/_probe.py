"""Import a Flask app and describe it as JSON: run as a script in a subprocess.

Usage: ``python _probe.py PROJECT_DIR TARGET OUTPUT_JSON [HEALTH_PATHS_JSON]``.
Standalone on purpose (imports nothing from flaskprod) so it runs under the project's own
interpreter, and in a subprocess so that a crashing, exiting or hanging app cannot take
the checker with it. It writes ``{"ok": true, ...}`` or ``{"ok": false, "error": "first line"}``.
"""

from __future__ import annotations

import ast
import datetime
import errno
import importlib.abc
import importlib.util
import inspect
import io
import json
import logging
import logging.handlers
import os
import pathlib
import sys
import textwrap
from typing import Any

_FORM_MARKERS = ("request.form", "request.files", "validate_on_submit", "Form(")


class _Tee(io.TextIOBase):
    """Keep what the app writes to stderr (its fail-fast message) and pass it on."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.kept: list[str] = []

    def write(self, text: str) -> int:
        self.kept.append(text)
        return int(self.stream.write(text))

    def flush(self) -> None:
        self.stream.flush()


def _json_safe(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if depth < 3 and isinstance(value, list | tuple | set | frozenset):
        items = [_json_safe(item, depth + 1) for item in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if depth < 3 and isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, bytes):
        return {"__type__": "bytes", "length": len(value), "text": value.decode("latin-1")}
    return {"__type__": type(value).__name__}


def _load(target: str) -> Any:
    module_name, _, expression = target.partition(":")
    module = __import__(module_name, fromlist=["_"])
    expression = expression or "app"
    if "(" in expression:
        name, _, args = expression.partition("(")
        factory = getattr(module, name)
        # Arguments are literals only, as gunicorn accepts them.
        call = ast.parse(f"f({args}", mode="eval").body
        assert isinstance(call, ast.Call)
        positional = [ast.literal_eval(arg) for arg in call.args]
        keywords = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        return factory(*positional, **keywords)
    return getattr(module, expression)


def _is_flask(thing: Any) -> bool:
    owner = getattr(thing, "__self__", thing)  # a bound Flask.wsgi_app is the app itself
    return hasattr(owner, "url_map")


def _wsgi_chain(app: Any) -> list[Any]:
    """The middlewares around the app, outermost first (ProxyFix, debugger, ...)."""
    chain, current = [], app.wsgi_app
    for _ in range(20):
        if _is_flask(current):
            break
        chain.append(current)
        nxt = None
        for attribute in ("app", "wsgi_app", "application"):
            candidate = getattr(current, attribute, None)
            if callable(candidate) and candidate is not current and not _is_flask(candidate):
                nxt = candidate
                break
        if nxt is None:
            break
        current = nxt
    return chain


#: A hand-written CSRF check: it reads the session, reads a token the request sends
#: (form field or header), compares the two and refuses (400/403) when they differ.
_TOKEN_WORDS = ("csrf", "token", "nonce", "xsrf")
_REQUEST_TOKEN = ("request.form", "request.headers", "request.values", "request.json")
_REFUSAL = ("abort(403", "abort(400", "Forbidden(", "BadRequest(", ", 403", ", 400")
_COMPARISON = ("!=", "==", "compare_digest")


def _is_csrf_check(source: str) -> bool:
    lowered = source.lower()
    return (
        "session" in source
        and any(word in lowered for word in _TOKEN_WORDS)
        and any(marker in source for marker in _REQUEST_TOKEN)
        and any(marker in source for marker in _COMPARISON)
        and any(marker in source for marker in _REFUSAL)
    )


def _csrf_hook_scopes(app: Any) -> set[str | None]:
    """Blueprints (None: the whole app) whose ``before_request`` hooks check a CSRF
    token by hand (CTFd's nonce, a session token compared with a header)."""
    scopes: set[str | None] = set()
    for scope, hooks in app.before_request_funcs.items():
        if any(_is_csrf_check(_source(hook)) for hook in hooks):
            scopes.add(scope)
    return scopes


def _source(function: Any) -> str:
    try:
        return textwrap.dedent(inspect.getsource(inspect.unwrap(function)))
    except (OSError, TypeError):
        return ""


def _routes(app: Any) -> list[dict[str, Any]]:
    csrf = app.extensions.get("csrf")
    exempt: set[str] = getattr(csrf, "_exempt_views", set()) or set()
    hook_scopes = _csrf_hook_scopes(app)
    routes = []
    for url_rule in app.url_map.iter_rules():
        methods = sorted((url_rule.methods or set()) - {"HEAD", "OPTIONS"})
        view = app.view_functions.get(url_rule.endpoint)
        source = _source(view) if view is not None and "POST" in methods else ""
        qualified = f"{getattr(view, '__module__', '')}.{getattr(view, '__name__', '')}"
        routes.append(
            {
                "rule": url_rule.rule,
                "endpoint": url_rule.endpoint,
                "methods": methods,
                "form": any(marker in source for marker in _FORM_MARKERS),
                # a FlaskForm validates its own CSRF token, CSRFProtect or not
                "flaskform": "validate_on_submit" in source,
                "csrf_exempt": qualified in exempt,
                # a before_request hook of the app, or of the route's blueprint
                "csrf_hook": None in hook_scopes
                or url_rule.endpoint.rpartition(".")[0] in hook_scopes,
            }
        )
    return routes


def _handlers(app: Any) -> list[dict[str, Any]]:
    found = []
    for logger_name, logger in (("app", app.logger), ("root", logging.getLogger())):
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            stream_name = None
            if stream is sys.__stdout__ or stream is sys.stdout:
                stream_name = "stdout"
            elif stream is sys.__stderr__ or isinstance(stream, _Tee):
                stream_name = "stderr"
            elif stream is not None and getattr(stream, "name", None) in ("<stderr>", "<stdout>"):
                stream_name = str(stream.name).strip("<>")
            rotated = isinstance(
                handler,
                logging.handlers.RotatingFileHandler
                | logging.handlers.TimedRotatingFileHandler
                | logging.handlers.WatchedFileHandler,
            )
            found.append(
                {
                    "logger": logger_name,
                    "class": type(handler).__name__,
                    "stream": stream_name,
                    "file": getattr(handler, "baseFilename", None),
                    "rotated": rotated,
                    "wsgi_errors": "wsgi_errors_stream" in repr(stream)
                    or type(stream).__name__ == "LocalProxy",
                }
            )
    return found


def _engines(app: Any) -> list[dict[str, Any]]:
    ext = app.extensions.get("sqlalchemy")
    if ext is None:
        return []
    found = []
    try:
        with app.app_context():
            engines = getattr(ext, "engines", None) or {None: ext.engine}
            for engine in engines.values():
                found.append(
                    {
                        "backend": engine.url.get_backend_name(),
                        "pre_ping": bool(getattr(engine.pool, "_pre_ping", False)),
                        "recycle": getattr(engine.pool, "_recycle", -1),
                    }
                )
    except Exception as error:  # an engine that cannot be built is reported, not fatal
        found.append({"backend": None, "pre_ping": False, "error": str(error)[:200]})
    return found


def _health(app: Any, candidates: list[str]) -> tuple[dict[str, int], dict[str, str]]:
    """GET each liveness candidate over HTTPS (as behind the proxy): status by path,
    and the headers of the first that answers 200. Only liveness paths: they answer
    without touching the database or Redis, which the checker must never reach."""
    statuses: dict[str, int] = {}
    headers: dict[str, str] = {}
    client = app.test_client()
    for path in candidates:
        try:
            response = client.get(path, base_url="https://localhost")
        except Exception:  # a view that raises is a 500, as it would be in production
            statuses[path] = 500
            continue
        statuses[path] = response.status_code
        if response.status_code == 200 and not headers:
            headers = {k.lower(): v for k, v in response.headers.items()}
        response.close()
    return statuses, headers


#: Last path segments of the app's own liveness routes (never readiness: that one
#: touches the database, which the checker must never reach).
_LIVENESS_NAMES = frozenset({"health", "healthz", "healthcheck", "livez", "live", "alive", "up"})


def _liveness_routes(app: Any, known: list[str]) -> list[str]:
    """The app's own liveness routes by name (GET, no arguments): /up, /api/healthz."""
    found = []
    for url_rule in app.url_map.iter_rules():
        name = url_rule.rule.rstrip("/").rsplit("/", 1)[-1].lower()
        methods = url_rule.methods or set()
        get = "GET" in methods and not url_rule.arguments
        if name in _LIVENESS_NAMES and get and url_rule.rule not in known:
            found.append(url_rule.rule)
    return found


def describe(app: Any, health_candidates: list[str]) -> dict[str, Any]:
    chain = _wsgi_chain(app)
    proxy_fix = None
    debugger = False
    for layer in chain:
        kind = type(layer).__name__
        if kind == "ProxyFix":
            proxy_fix = {
                key: int(getattr(layer, key, 0))
                for key in ("x_for", "x_proto", "x_host", "x_port", "x_prefix")
            }
        if kind == "DebuggedApplication":
            debugger = True
    routes = _routes(app)
    health, headers = _health(app, [*health_candidates, *_liveness_routes(app, health_candidates)])
    return {
        "ok": True,
        "config": {str(k): _json_safe(v) for k, v in app.config.items()},
        "routes": routes,
        "extensions": sorted(app.extensions),
        "debug": bool(app.debug),
        "debugger": debugger,
        "proxy_fix": proxy_fix,
        "csrf": "csrf" in app.extensions and bool(app.config.get("WTF_CSRF_ENABLED", True)),
        "log_handlers": _handlers(app),
        "modules": sorted({name.partition(".")[0] for name in sys.modules}),
        "engines": _engines(app),
        "health": health,
        "headers": headers,
    }


def _project_files(project: str) -> list[str]:
    """The project's own Python files loaded by now (relative), not its virtualenv's."""
    root = pathlib.Path(project).resolve()
    found = set()
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not name:
            continue
        try:
            relative = pathlib.Path(name).resolve().relative_to(root)
        except ValueError:
            continue
        if "site-packages" not in relative.parts and relative.parts[0] not in (".venv", "venv"):
            found.add(relative.as_posix())
    return sorted(found)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


_RUN_CALLS: list[dict[str, Any]] = []


def _disarm_run() -> None:
    """Make ``Flask.run`` record its call and return: an ``app.run()`` reached at import
    would otherwise start a dev server here and hang the probe."""
    try:
        import flask
    except ImportError:
        return

    def run(self: Any, host: Any = None, port: Any = None, debug: Any = None, **_: Any) -> None:
        _RUN_CALLS.append({"host": _json_safe(host), "port": _json_safe(port), "debug": debug})

    flask.Flask.run = run  # type: ignore[method-assign,assignment]


#: Database drivers that connect from C (libpq, libmysqlclient), past Python's socket:
#: module -> its attributes that open a connection.
_C_DRIVERS = {
    "psycopg2": ("connect",),
    "psycopg": ("connect",),
    "MySQLdb": ("connect", "Connect"),
}


class _DriverGuard(importlib.abc.MetaPathFinder):
    """Once a C database driver is imported, its connect functions refuse (for when the
    probe cannot run in a network namespace: see flaskprod.check.offline)."""

    def __init__(self, refuse: Any) -> None:
        self.refuse = refuse

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in _C_DRIVERS:
            return None
        sys.meta_path.remove(self)  # find the real module with the other finders
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, refuse = spec.loader, self.refuse
        real_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            real_exec(module)
            for attribute in _C_DRIVERS[name]:
                if hasattr(module, attribute):
                    setattr(module, attribute, refuse)
            connection = getattr(module, "Connection", None)
            if name == "psycopg" and connection is not None:
                connection.connect = classmethod(refuse)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


#: In the message of every refused connection (the APP000 rule looks for it).
OFFLINE_MARK = "flaskprod check imports the app offline"


class NoNetwork(ConnectionRefusedError):
    """What a connection attempt meets while the app is judged."""


def _offline() -> None:
    """No connection leaves this process while the app is judged: production's hosts
    (a compose service name like ``cache``, a database) are not this machine's, and a
    placeholder URL must never reach whatever listens on localhost here. Every
    connect and name lookup fails at once, as with the network unplugged; a Unix
    socket stays allowed (syslog's /dev/log), but not a TCP one."""
    import socket

    def refuse(*_: Any, **__: Any) -> Any:
        raise NoNetwork(errno.ECONNREFUSED, f"{OFFLINE_MARK}: no network connection")

    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if self.family != getattr(socket, "AF_UNIX", None):
            refuse()
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family != getattr(socket, "AF_UNIX", None):
            refuse()
        return real_connect_ex(self, address)

    sys.meta_path.insert(0, _DriverGuard(refuse))
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        setattr(socket, name, refuse)
    socket.create_connection = refuse


def _is_module(folder: pathlib.Path, name: str) -> bool:
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def main() -> int:
    project, target, output = sys.argv[1], sys.argv[2], sys.argv[3]
    health_candidates = json.loads(sys.argv[4]) if len(sys.argv) > 4 else []
    os.chdir(project)
    sys.path.insert(0, project)
    # The src layout: the package lives in src/ (importable once installed, as the
    # kit's image does with 'pip install .'); put src/ after the project folder.
    top = target.split(":")[0].split(".")[0]
    source = pathlib.Path(project, "src")
    if not _is_module(pathlib.Path(project), top) and _is_module(source, top):
        sys.path.insert(1, str(source))
    _offline()
    _disarm_run()
    tee = _Tee(sys.stderr)
    sys.stderr = tee
    result: dict[str, Any]
    try:
        app = _load(target)
        if not hasattr(app, "url_map") or not hasattr(app, "config"):
            raise TypeError(f"{target} is a {type(app).__name__}, not a Flask app")
        result = describe(app, health_candidates)
        result["run_calls"] = _RUN_CALLS
        result["files"] = _project_files(project)
    except SystemExit as stop:
        said = _first_line("".join(tee.kept)) or f"exited with status {stop.code}"
        result = {"ok": False, "error": said, "exit": stop.code}
    except BaseException as error:
        result = {"ok": False, "error": _first_line(f"{type(error).__name__}: {error}")}
    partial = pathlib.Path(output + ".part")
    partial.write_text(json.dumps(result, default=str), encoding="utf-8")
    partial.replace(output)  # whole or absent, even if we are killed while writing
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit now, whatever the app started at import (non-daemon threads, schedulers).
    os._exit(status)
