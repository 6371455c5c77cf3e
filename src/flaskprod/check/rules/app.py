"""Rules of the ``app`` layer: the Flask app's configuration under production's env.

Most rules need the app imported (``requires=("app",)``); when it could not be, APP000
says why, once. APP008/APP009 read the source instead (``app.run`` is static).
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flaskprod.check._probe import OFFLINE_MARK
from flaskprod.check.context import AppInfo, Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.proxy import has_proxy
from flaskprod.launch.discover import source_files
from flaskprod.runtime.config import _MIN_SECRET, _is_placeholder
from flaskprod.spec.servers import ENTRY_MODULE
from flaskprod.spec.settings_scan import is_secret

_GENERATE = 'python -c "import secrets; print(secrets.token_hex(32))"'


def _app(ctx: Context) -> AppInfo:
    assert ctx.app is not None  # guaranteed by requires=("app",)
    return ctx.app


def app_file(ctx: Context) -> str | None:
    """The file of the app's module (relative), where config findings point."""
    target = ctx.app.target if ctx.app else ctx.cache.get("app_target")
    if not target:
        return None
    module = str(target).partition(":")[0].replace(".", "/")
    root: Path = ctx.cache.get("app_root") or ctx.root  # a subfolder (services/web)
    for base in ("", "src/"):  # the src layout keeps the package in src/
        for candidate in (f"{base}{module}.py", f"{base}{module}/__init__.py"):
            if (root / candidate).is_file():
                return ctx.relative(root / candidate)
    return None


# -- APP000 ----------------------------------------------------------------------------


_MISSING = re.compile(r"No module named '([\w.]+)'")


def _own_module_missing(ctx: Context, error: str) -> bool:
    """The module that is missing is the app's own (a wrong target), not a package."""
    match = _MISSING.search(error)
    target = str(ctx.cache.get("app_target") or "")
    module = target.partition(":")[0]
    return bool(match and module and module.startswith(match.group(1)))


@rule(
    "APP000",
    layer="app",
    level=Level.ERROR,
    title="The app does not start under production's environment",
    help="Import the app the way production will (same environment: the systemd "
    "EnvironmentFile, the compose env_file, or --env-file) and fix what it says; a "
    "missing variable belongs in the environment file production reads.",
    example="EnvironmentFile=/srv/shop/shop.env  # without SECRET_KEY: the app exits 3",
)
def app_does_not_start(ctx: Context) -> Iterator[Finding]:
    if ctx.app is not None or ctx.cache.get("no_import"):
        return
    error = ctx.app_error or "unknown error"
    where = ctx.env_source or "an empty environment"
    if ctx.cache.get("app_target") is None:
        yield app_does_not_start.finding(
            "no Flask app found to import: no gunicorn target in the deploy files, no "
            "flaskprod.toml, no app module (wsgi.py, app.py, a create_app factory)",
            level=Level.INFO,
            hint="Give the app in flaskprod.toml ([app] target) or a gunicorn command, or "
            "use --no-import for file checks only.",
        )
    elif OFFLINE_MARK in error:
        # Production's hosts are not this machine's: not the app's fault, not judged.
        yield app_does_not_start.finding(
            f"the app opens a connection while it is imported, and check imports it "
            f"offline, so it was not judged: {error}",
            level=Level.INFO,
            hint="Open connections lazily (at the first request, or in a CLI command) so "
            "the app imports without its services; a container that must reach the "
            "database to import crash-loops while the database starts.",
            file=app_file(ctx),
        )
    elif (
        error.startswith(("ModuleNotFoundError", "ImportError"))
        and not _own_module_missing(ctx, error)
        and ctx.cache.get("app_python_own")
    ):
        # The project's own virtualenv lacks it: production, installed from the same
        # requirements, will too (or a setting names a driver the project does not have).
        yield app_does_not_start.finding(
            f"the app does not import with the project's own virtualenv: {error}",
            level=Level.WARNING,
            hint="Add the missing package to the project's requirements (and install it), "
            "or fix the setting that names it (a database URL's driver: "
            "postgresql+psycopg2:// for psycopg2).",
            file=app_file(ctx),
        )
    elif error.startswith(("ModuleNotFoundError", "ImportError")) and not _own_module_missing(
        ctx, error
    ):
        # A missing package says more about where flaskprod runs than about production.
        yield app_does_not_start.finding(
            f"could not import the app here: {error}",
            level=Level.INFO,
            hint="Run flaskprod from the project's virtualenv (or give the project a .venv) "
            "so its dependencies import, or use --no-import.",
            file=app_file(ctx),
        )
    elif ctx.env_known:
        yield app_does_not_start.finding(
            f"the app will not start under {where}: {error}", file=app_file(ctx)
        )
    else:
        yield app_does_not_start.finding(
            f"the app could not be evaluated under {where}: {error}",
            level=Level.INFO,
            hint="Production's values are not in the project: pass them with "
            "--env-file FILE to check the app under the environment it will really have.",
            file=app_file(ctx),
        )


# -- APP001 ----------------------------------------------------------------------------


@rule(
    "APP001",
    layer="app",
    level=Level.CRITICAL,
    title="Debug mode or the Werkzeug debugger is on",
    help="Never run debug in production: the debugger runs any Python a visitor types. "
    "Remove FLASK_DEBUG / DEBUG=True from production's environment and config, and "
    "do not wrap the app in DebuggedApplication.",
    requires=("app",),
    example="FLASK_DEBUG=1 in the EnvironmentFile",
)
def debug_on(ctx: Context) -> Iterator[Finding]:
    app = _app(ctx)
    if app.debugger:
        yield debug_on.finding("the Werkzeug debugger wraps the app", file=app_file(ctx))
    elif app.debug or app.config.get("DEBUG"):
        source = f" (under {ctx.env_source})" if ctx.env_source else ""
        yield debug_on.finding(f"debug mode is on{source}", file=app_file(ctx))


# -- APP002 ----------------------------------------------------------------------------


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def secret_problem(value: Any) -> str | None:
    """Why a secret key is weak, or None."""
    if value is None or value == "":
        return "is not set"
    if isinstance(value, dict) and value.get("__type__") == "bytes":
        text = str(value.get("text", ""))
    elif isinstance(value, str):
        text = value
    else:
        return f"is a {type(value).__name__}, not a string"
    if _is_placeholder(text):
        return "is a placeholder"
    if len(text) < _MIN_SECRET:
        return f"is {len(text)} characters (fewer than {_MIN_SECRET})"
    if _entropy(text) < 3.0 or len(set(text)) < 10:
        return "has low entropy (too few distinct characters)"
    return None


@rule(
    "APP002",
    layer="app",
    level=Level.CRITICAL,
    title="SECRET_KEY missing, short, low-entropy or a placeholder",
    help=f"Generate a key with  {_GENERATE}  and put it in production's environment "
    "(never in the code); every SECRET_KEY_FALLBACKS entry must be as strong.",
    requires=("app",),
    example='SECRET_KEY = "dev"',
)
def weak_secret(ctx: Context) -> Iterator[Finding]:
    config = _app(ctx).config
    stand_ins = set(ctx.cache.get("stand_ins", {}).values())
    keys: list[tuple[str, Any]] = [("SECRET_KEY", config.get("SECRET_KEY"))]
    fallbacks = config.get("SECRET_KEY_FALLBACKS") or []
    if isinstance(fallbacks, list):
        keys += [(f"SECRET_KEY_FALLBACKS[{i}]", v) for i, v in enumerate(fallbacks)]
    for name, value in keys:
        if isinstance(value, str) and value in stand_ins:
            # A stand-in for a value that lives on the server: not ours to judge; but a
            # placeholder the code falls back to when it is missing is in the project.
            fallback = _secret_fallback(ctx) if name == "SECRET_KEY" else None
            if fallback is not None:
                literal, file, line = fallback
                yield weak_secret.finding(
                    f"SECRET_KEY falls back to the placeholder {literal!r} when production's "
                    "environment does not set it",
                    file=file,
                    line=line,
                )
            continue
        problem = secret_problem(value)
        if problem == "is not set" and not ctx.env_known:
            # Production's environment is on the server: it may well set it there.
            yield weak_secret.finding(
                f"{name} is not set in the environment flaskprod could see "
                f"({ctx.env_source or 'none'}): make sure production's environment sets it",
                level=Level.INFO,
                file=app_file(ctx),
            )
        elif problem:
            level = Level.CRITICAL if problem in ("is not set", "is a placeholder") else Level.ERROR
            yield weak_secret.finding(f"{name} {problem}", level=level, file=app_file(ctx))


_GETENV = ("os.environ.get", "environ.get", "os.getenv", "getenv")


def _dotted(node: ast.AST) -> str | None:
    """``os.environ.get`` for a Name/Attribute chain, else None: what ``ast.unparse``
    would say of a call's function, without unparsing every call of the project."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _env_default(node: ast.AST, name: str) -> str | None:
    """The literal a read of environment variable ``name`` falls back to:
    ``os.environ.get(NAME) or "x"``, ``os.environ.get(NAME, "x")``, ``os.getenv(NAME, "x")``."""

    def reads(call: ast.AST) -> bool:
        return (
            isinstance(call, ast.Call)
            and _dotted(call.func) in _GETENV
            and bool(call.args)
            and isinstance(call.args[0], ast.Constant)
            and call.args[0].value == name
        )

    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and reads(node.values[0]):
        last = node.values[-1]
        if isinstance(last, ast.Constant) and isinstance(last.value, str):
            return last.value
    if reads(node):
        assert isinstance(node, ast.Call)
        default = node.args[1] if len(node.args) > 1 else None
        if isinstance(default, ast.Constant) and isinstance(default.value, str):
            return default.value
    return None


def _secret_fallback(ctx: Context) -> tuple[str, str, int] | None:
    """A placeholder SECRET_KEY the project's code falls back to (microblog's
    ``os.environ.get('SECRET_KEY') or 'you-will-never-guess'``): literal, file, line.
    Once per run (APP002 and APP015 both ask)."""
    if "secret_fallback" not in ctx.cache:
        ctx.cache["secret_fallback"] = _find_secret_fallback(ctx)
    found: tuple[str, str, int] | None = ctx.cache["secret_fallback"]
    return found


def _find_secret_fallback(ctx: Context) -> tuple[str, str, int] | None:
    for path in _python_sources(ctx):
        text = ctx.read(path)
        if "SECRET_KEY" not in text:
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            literal = _env_default(node, "SECRET_KEY")
            if literal and secret_problem(literal) is not None:  # "" fails loudly instead
                return literal, ctx.relative(path), getattr(node, "lineno", 1)
    return None


# -- APP015 ----------------------------------------------------------------------------

#: Config classes that production never selects (their fallbacks are for tests/dev).
_NOT_PRODUCTION_CLASS = re.compile(r"^(Test|Testing|Dev|Development|Local|Debug)", re.IGNORECASE)


def _read_name(call: ast.AST) -> str | None:
    """NAME when ``call`` reads environment variable NAME (os.environ.get, os.getenv)."""
    if (
        isinstance(call, ast.Call)
        and _dotted(call.func) in _GETENV
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    ):
        return call.args[0].value
    return None


def _secret_defaults(tree: ast.Module) -> Iterator[tuple[str, str, int]]:
    """(variable, literal, line) for every read of a secret-named environment variable
    that falls back to a non-empty string literal, outside test/dev config classes."""

    def visit(node: ast.AST) -> Iterator[tuple[str, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and _NOT_PRODUCTION_CLASS.match(child.name):
                continue
            reading = child.values[0] if isinstance(child, ast.BoolOp) else child
            name = _read_name(reading)
            if name and is_secret(name):
                literal = _env_default(child, name)
                if literal:
                    yield name, literal, getattr(child, "lineno", 1)
            yield from visit(child)

    yield from visit(tree)


@rule(
    "APP015",
    layer="app",
    level=Level.WARNING,
    title="A secret read from the environment falls back to a literal in the code",
    help="Read secrets with os.environ['NAME'] (the app refuses to start without them) "
    "instead of os.environ.get('NAME', 'some-default') or os.getenv('NAME') or '...': "
    "the literal is in the repository, and the day the variable is missing (a new "
    "server, a typo in the env file) the app starts with it instead of failing.",
    example="SECRET_KEY = os.environ.get('SECRET_KEY', 'dev')",
    level_reason="warning: a placeholder waiting to happen, not in effect while the "
    "environment sets the variable; when production's environment really lacks "
    "SECRET_KEY, APP002 reports the fallback in effect (critical).",
)
def secret_default(ctx: Context) -> Iterator[Finding]:
    in_effect = None  # the SECRET_KEY fallback APP002 reports (the env lacks the key)
    if ctx.app is not None:
        value = ctx.app.config.get("SECRET_KEY")
        if isinstance(value, str) and value in set(ctx.cache.get("stand_ins", {}).values()):
            in_effect = _secret_fallback(ctx)
    for path in _python_sources(ctx):
        text = ctx.read(path)
        if "environ" not in text and "getenv" not in text:
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        file = ctx.relative(path)
        for name, literal, line in _secret_defaults(tree):
            if in_effect is not None and name == "SECRET_KEY" and in_effect[1:] == (file, line):
                continue
            yield secret_default.finding(
                f"{name} falls back to a literal ({len(literal)} characters) when the "
                "environment does not set it",
                file=file,
                line=line,
            )


# -- APP003 ----------------------------------------------------------------------------

_SESSION_USE = re.compile(
    r"^\s*from\s+flask\s+import\s+[^\n]*\bsession\b|\bflask\.session\b"
    r"|^\s*(from|import)\s+(flask_login|flask_wtf|flask_session)\b",
    re.MULTILINE,
)
#: Extensions that keep state in the session cookie.
_SESSION_EXTENSIONS = ("login_manager", "csrf", "session", "security")


def uses_session(ctx: Context) -> bool:
    """The app sets a session cookie: it imports flask.session or an extension that
    keeps state there (login, CSRF, server-side sessions)."""
    if ctx.app is not None and set(ctx.app.extensions) & set(_SESSION_EXTENSIONS):
        return True
    return any(_SESSION_USE.search(ctx.read(path)) for path in _python_sources(ctx))


@rule(
    "APP003",
    layer="app",
    level=Level.WARNING,
    title="Session cookie without Secure, HttpOnly or SameSite",
    help="Set SESSION_COOKIE_SECURE = True, SESSION_COOKIE_HTTPONLY = True and "
    "SESSION_COOKIE_SAMESITE = 'Lax' so the session never travels over plain HTTP, "
    "cannot be read by scripts, and is not sent by cross-site forms. (Only judged when "
    "the app uses the session: flask.session, Flask-Login, Flask-WTF, Flask-Session.)",
    requires=("app",),
    example="SESSION_COOKIE_SECURE = False",
)
def session_cookie(ctx: Context) -> Iterator[Finding]:
    if not uses_session(ctx):
        return  # a cookie the app never sets cannot leak: no finding for pure JSON APIs
    config = _app(ctx).config
    missing = []
    if not config.get("SESSION_COOKIE_SECURE"):
        missing.append("Secure (SESSION_COOKIE_SECURE)")
    if config.get("SESSION_COOKIE_HTTPONLY") is False:
        missing.append("HttpOnly (SESSION_COOKIE_HTTPONLY)")
    if config.get("SESSION_COOKIE_SAMESITE") in (None, "None", ""):
        missing.append("SameSite (SESSION_COOKIE_SAMESITE)")
    if missing:
        yield session_cookie.finding(
            f"the session cookie is sent without {', '.join(missing)}", file=app_file(ctx)
        )


# -- APP004 ----------------------------------------------------------------------------


@rule(
    "APP004",
    layer="app",
    level=Level.ERROR,
    title="No CSRF protection on form routes",
    help="Protect every form with Flask-WTF: CSRFProtect(app) (or FlaskForm with "
    "{{ form.csrf_token }}); exempt only views that take no cookies (token-auth APIs).",
    requires=("app",),
    example="@app.post('/login') reading request.form, without CSRFProtect",
)
def no_csrf(ctx: Context) -> Iterator[Finding]:
    forms = _unprotected_forms(_app(ctx))
    if forms:
        shown = ", ".join(str(r["rule"]) for r in forms[:3])
        more = f" and {len(forms) - 3} more" if len(forms) > 3 else ""
        yield no_csrf.finding(
            f"routes take form posts without CSRF protection: {shown}{more}",
            file=app_file(ctx),
        )


# -- APP016 ----------------------------------------------------------------------------

_CSRF_SWITCHES = ("WTF_CSRF_ENABLED",)
#: Branches production does not take: ``if app.testing:``, ``if config_name == "dev":``.
_NOT_PRODUCTION_BRANCH = re.compile(r"test|debug|dev|local", re.IGNORECASE)


def _false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _csrf_switched_off(node: ast.AST) -> bool:
    """``WTF_CSRF_ENABLED = False``, ``app.config["WTF_CSRF_ENABLED"] = False``,
    ``app.config.update(WTF_CSRF_ENABLED=False)`` or ``.update({"WTF_CSRF_ENABLED": False})``."""
    if isinstance(node, ast.Assign) and _false(node.value):
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id in _CSRF_SWITCHES:
                return True
            if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                return target.slice.value in _CSRF_SWITCHES
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("update", "setdefault")
    ):
        if any(kw.arg in _CSRF_SWITCHES and _false(kw.value) for kw in node.keywords):
            return True
        for arg in node.args:
            if isinstance(arg, ast.Dict):
                for key, value in zip(arg.keys, arg.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value in _CSRF_SWITCHES:
                        return _false(value)
    return False


def _csrf_switches(tree: ast.Module) -> Iterator[int]:
    """Lines switching CSRF off, outside test/dev config classes and branches."""

    def visit(node: ast.AST) -> Iterator[int]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and _NOT_PRODUCTION_CLASS.match(child.name):
                continue
            if isinstance(child, ast.If) and _NOT_PRODUCTION_BRANCH.search(ast.unparse(child.test)):
                yield from (line for stmt in child.orelse for line in visit_one(stmt))
                continue
            if _csrf_switched_off(child):
                yield getattr(child, "lineno", 1)
            yield from visit(child)

    def visit_one(stmt: ast.AST) -> Iterator[int]:
        if _csrf_switched_off(stmt):
            yield getattr(stmt, "lineno", 1)
        yield from visit(stmt)

    yield from visit(tree)


def _unprotected_forms(app: AppInfo) -> list[dict[str, Any]]:
    """The app's form routes that no CSRF check covers (APP004's finding)."""
    form_tokens = app.config.get("WTF_CSRF_ENABLED", True) is not False

    def protected(route: dict[str, Any]) -> bool:
        if route.get("csrf_exempt"):
            return False
        if route.get("csrf_hook"):
            return True  # the app's own before_request compares a session token
        return app.csrf or bool(route.get("flaskform") and form_tokens)

    return [r for r in app.routes if r.get("form") and not protected(r)]


@rule(
    "APP016",
    layer="app",
    level=Level.ERROR,
    title="CSRF protection switched off in the code production runs",
    help="Remove WTF_CSRF_ENABLED = False from the factory or the production config (keep "
    "it in a testing config or under 'if app.testing:'): with it, every form a logged-in "
    "user can post can be posted for them by any site they visit. Exempt single views "
    "that take no cookies with @csrf.exempt instead.",
    example="def create_app():\n    app.config['WTF_CSRF_ENABLED'] = False",
    level_reason="error, as APP004 (the same consequence: forged posts in a logged-in "
    "session); when the app was imported and APP004 already names the unprotected "
    "routes, this line is its cause and is not reported twice.",
)
def csrf_switched_off(ctx: Context) -> Iterator[Finding]:
    sources = [p for p in _python_sources(ctx) if "WTF_CSRF" in ctx.read(p)]
    if not sources:
        return
    if ctx.app is not None:
        if ctx.app.config.get("WTF_CSRF_ENABLED", True) is not False:
            return  # the line is not in effect under production's environment
        if _unprotected_forms(ctx.app):
            return  # APP004 reports the routes this leaves open
    elif not any(re.search(r"\bflask_wtf\b", ctx.read(p)) for p in _python_sources(ctx)):
        return  # no Flask-WTF: the setting switches nothing off
    for path in sources:
        try:
            tree = ast.parse(ctx.read(path))
        except (SyntaxError, ValueError):
            continue
        for line in _csrf_switches(tree):
            yield csrf_switched_off.finding(
                "WTF_CSRF_ENABLED = False: Flask-WTF checks no CSRF token on any form",
                file=ctx.relative(path),
                line=line,
            )


# -- APP005, APP006: the database -------------------------------------------------------


def _database_uri(config: dict[str, Any]) -> str:
    uri = config.get("SQLALCHEMY_DATABASE_URI")
    return uri if isinstance(uri, str) else ""


@rule(
    "APP005",
    layer="app",
    level=Level.WARNING,
    title="SQLite in production",
    help="SQLite allows one writer at a time and lives on one machine's disk: use "
    "PostgreSQL (DATABASE_URL=postgresql://...), or say so in flaskprod.toml "
    "([database] engine = 'sqlite') for a deliberate single small box.",
    requires=("app",),
    example="SQLALCHEMY_DATABASE_URI = 'sqlite:///app.db'",
)
def sqlite_in_production(ctx: Context) -> Iterator[Finding]:
    if ctx.spec is not None and ctx.spec.database.engine == "sqlite":
        return  # chosen, and written down
    app = _app(ctx)
    backends = {e.get("backend") for e in app.engines}
    if _database_uri(app.config).startswith("sqlite") or "sqlite" in backends:
        yield sqlite_in_production.finding("the app uses SQLite in production", file=app_file(ctx))


@rule(
    "APP006",
    layer="app",
    level=Level.WARNING,
    title="No connection-pool pre-ping",
    help="Set SQLALCHEMY_ENGINE_OPTIONS = {'pool_pre_ping': True, 'pool_recycle': 1800}: "
    "without it, the first request after the database restarts (or a firewall drops "
    "idle connections) fails with 'server closed the connection unexpectedly'.",
    requires=("app",),
    example="SQLALCHEMY_ENGINE_OPTIONS = {}  # with PostgreSQL",
)
def no_pre_ping(ctx: Context) -> Iterator[Finding]:
    app = _app(ctx)
    networked = [e for e in app.engines if e.get("backend") not in (None, "sqlite")]
    if networked:
        if not all(e.get("pre_ping") for e in networked):
            yield no_pre_ping.finding(
                "the SQLAlchemy pool does not pre-ping its connections", file=app_file(ctx)
            )
        return
    uri = _database_uri(app.config)
    options = app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {}
    pre_ping = isinstance(options, dict) and options.get("pool_pre_ping")
    if uri and not uri.startswith("sqlite") and not app.engines and not pre_ping:
        yield no_pre_ping.finding(
            "SQLALCHEMY_ENGINE_OPTIONS has no pool_pre_ping", file=app_file(ctx)
        )


# -- APP007 ----------------------------------------------------------------------------


@rule(
    "APP007",
    layer="app",
    level=Level.WARNING,
    title="No MAX_CONTENT_LENGTH, or one different from the spec's max_body",
    help="Set MAX_CONTENT_LENGTH (e.g. 10 * 1024 * 1024) equal to nginx's "
    "client_max_body_size, so an oversized upload is refused before it fills memory "
    "or disk, whichever way the request arrives.",
    requires=("app",),
    example="no MAX_CONTENT_LENGTH: Flask reads any body size",
)
def no_max_content_length(ctx: Context) -> Iterator[Finding]:
    limit = _app(ctx).config.get("MAX_CONTENT_LENGTH")
    if limit is None and has_proxy(ctx):
        # The proxy limits bodies already (nginx: client_max_body_size, 1m by default);
        # only requests that bypass it are unlimited.
        yield no_max_content_length.finding(
            "the app accepts request bodies of any size (the proxy in front limits them)",
            level=Level.INFO,
            file=app_file(ctx),
        )
    elif limit is None:
        yield no_max_content_length.finding(
            "the app accepts request bodies of any size", file=app_file(ctx)
        )
    elif ctx.spec is not None and limit != ctx.spec.http.max_body_bytes:
        yield no_max_content_length.finding(
            f"MAX_CONTENT_LENGTH is {limit} bytes but flaskprod.toml says max_body = "
            f"{ctx.spec.http.max_body} ({ctx.spec.http.max_body_bytes} bytes): nginx and "
            "the app disagree on the largest upload",
            file=app_file(ctx),
        )


# -- APP008, APP009: app.run ------------------------------------------------------------


@dataclass(frozen=True)
class RunCall:
    file: str
    line: int
    host: str | None
    guarded: bool  # inside ``if __name__ == "__main__":`` or a function body
    #: ``debug=True`` written in the call (the debugger and reloader on).
    debug: bool = False
    #: Inside ``if __name__ == "__main__":`` itself (not only a function body).
    main: bool = False


def _python_sources(ctx: Context) -> list[Path]:
    """The project's own Python modules (no tests, migrations, gunicorn configs)."""
    if "app_python_sources" not in ctx.cache:
        ctx.cache["app_python_sources"] = [
            path
            for path in source_files(ctx.root, (".py",), limit=400)
            if not path.name.startswith(("test_", "conftest", "gunicorn"))
            and path.name != "setup.py"
        ]
    sources: list[Path] = ctx.cache["app_python_sources"]
    return sources


def _is_main_guard(node: ast.If) -> bool:
    test = node.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _flask_names(tree: ast.Module) -> set[str]:
    """Names bound at module level to Flask(...) or a factory call, plus app/application."""
    names = {"app", "application"}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called == "Flask" or "app" in called.lower():
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _run_calls_in(tree: ast.Module, file: str) -> Iterator[RunCall]:
    names = _flask_names(tree)

    def visit(node: ast.AST, guarded: bool, main: bool) -> Iterator[RunCall]:
        for child in ast.iter_child_nodes(node):
            inner = guarded or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
            )
            in_main = main
            if isinstance(child, ast.If) and _is_main_guard(child):
                inner = in_main = True
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr == "run"
                and isinstance(child.func.value, ast.Name)
                and child.func.value.id in names
            ):
                host = next(
                    (
                        kw.value.value
                        for kw in child.keywords
                        if kw.arg == "host" and isinstance(kw.value, ast.Constant)
                    ),
                    None,
                )
                if host is None and child.args and isinstance(child.args[0], ast.Constant):
                    host = child.args[0].value
                debug = any(
                    kw.arg == "debug" and isinstance(kw.value, ast.Constant) and kw.value.value
                    for kw in child.keywords
                )
                yield RunCall(file, child.lineno, str(host) if host else None, guarded, debug, main)
            yield from visit(child, inner, in_main)

    yield from visit(tree, False, False)


def run_calls(ctx: Context) -> list[RunCall]:
    """Every ``app.run(...)`` in the project's Python sources (cached per run)."""
    if "app_run_calls" not in ctx.cache:
        found: list[RunCall] = []
        for path in _python_sources(ctx):
            text = ctx.read(path)
            if ".run(" not in text:
                continue  # parse only the files that could call it
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                continue
            found.extend(_run_calls_in(tree, ctx.relative(path)))
        ctx.cache["app_run_calls"] = found
    calls: list[RunCall] = ctx.cache["app_run_calls"]
    return calls


def _runs_file_directly(ctx: Context, file: str) -> bool:
    """Production's command runs this file as a script (``python app.py``)."""
    command, _ = ctx.cache.get("env_command") or (None, None)
    if not command:
        return False
    module = file.removesuffix(".py").replace("/", ".")
    return bool(
        re.search(rf"\bpython[\d.]*\s+(-\S+\s+)*{re.escape(file)}\b", command)
        or re.search(rf"\bpython[\d.]*\s+-m\s+{re.escape(module)}\b", command)
    )


_PUBLIC_HOSTS = ("0.0.0.0", "::", "[::]")
#: Files that start the app in production (their commands may run a script).
_LAUNCHER_KINDS = ("procfile", "dockerfile", "compose", "systemd")


def _launchers_text(ctx: Context) -> str:
    if "app_launchers_text" not in ctx.cache:
        paths = [p for kind in _LAUNCHER_KINDS for p in ctx.of_kind(kind)]
        paths += source_files(ctx.root, (".sh",), limit=50)
        texts = [ctx.read(path) for path in paths]
        ctx.cache["app_launchers_text"] = "\n".join([*texts, ctx.cache.get("app_target") or ""])
    text: str = ctx.cache["app_launchers_text"]
    return text


def _imports_module(ctx: Context, module: str, besides: str) -> bool:
    """Some other project module imports ``module`` (``import run``, ``from run import``)."""
    pattern = re.compile(
        rf"^\s*(from\s+{re.escape(module)}\s+import|import\s+{re.escape(module)}\b)", re.MULTILINE
    )
    return any(
        ctx.relative(path) != besides and pattern.search(ctx.read(path))
        for path in _python_sources(ctx)
    )


def _dev_only_script(ctx: Context, file: str) -> bool:
    """A development script (``run.py``: ``app.run(debug=True)`` at its top level) that
    production never runs nor imports: no launcher names it, the app's import did not
    load it, and (when the app was not imported) no other module imports it."""
    module = file.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    name = Path(file).name
    launchers = _launchers_text(ctx)
    if re.search(rf"(?<![\w.-]){re.escape(name)}\b", launchers) or re.search(
        rf"(?<![\w.]){re.escape(module)}(:|\s|$)", launchers
    ):
        return False
    if ctx.app is not None:
        return file not in ctx.app.files
    return not _imports_module(ctx, module, file)


@rule(
    "APP008",
    layer="app",
    level=Level.ERROR,
    title="app.run() is reachable in production",
    help="Put app.run(...) under  if __name__ == '__main__':  (or delete it) and serve "
    "the app with gunicorn: the development server is single-process, unhardened and "
    "runs whenever the module is imported.",
    example="app.run(host='0.0.0.0')  # at module level",
)
def run_reachable(ctx: Context) -> Iterator[Finding]:
    for call in run_calls(ctx):
        if not call.guarded and not _dev_only_script(ctx, call.file):
            public = " on all interfaces" if call.host in _PUBLIC_HOSTS else ""
            yield run_reachable.finding(
                f"app.run(){public} runs whenever the module is imported (also under gunicorn)",
                file=call.file,
                line=call.line,
            )


@rule(
    "APP009",
    layer="app",
    level=Level.WARNING,
    title="The development server is run on 0.0.0.0 in production",
    help="Production runs this file as a script, so app.run(host='0.0.0.0') serves the "
    "public with Flask's development server: run gunicorn instead "
    "(gunicorn -c gunicorn.conf.py module:app).",
    example="CMD python app.py, with app.run(host='0.0.0.0') under __main__",
)
def run_public(ctx: Context) -> Iterator[Finding]:
    for call in run_calls(ctx):
        if call.guarded and call.host in _PUBLIC_HOSTS and _runs_file_directly(ctx, call.file):
            yield run_public.finding(
                f"production runs {call.file} directly: the development server listens on "
                f"{call.host}",
                file=call.file,
                line=call.line,
            )


@rule(
    "APP014",
    layer="app",
    level=Level.WARNING,
    title="The entry module starts the development server with debug or on 0.0.0.0 when "
    "run by hand",
    help="Production imports this module, and anyone who runs it on the server "
    "('python wsgi.py' to try something) starts Flask's development server with what the "
    "__main__ block says. Keep app.run() out of the module production serves (use "
    "'flask --app ... run --debug' on a workstation), or at least no debug=True and no "
    "host='0.0.0.0' there.",
    example="if __name__ == '__main__':\n    app.run(host='0.0.0.0', debug=True)  # in wsgi.py",
    level_reason="error when both (the Werkzeug debugger on every interface runs code for "
    "whoever reaches it), warning for either alone (the debugger on loopback, or an "
    "unhardened server on the network); only when someone starts the file by hand.",
)
def main_block_run(ctx: Context) -> Iterator[Finding]:
    entry = app_file(ctx)
    for call in run_calls(ctx):
        if not call.main or call.file != entry:
            continue
        if _runs_file_directly(ctx, call.file):
            continue  # production itself runs the file: APP009 (or APP001) says so
        public = call.host in _PUBLIC_HOSTS
        if not (public or call.debug):
            continue
        what = " and ".join(
            part for part, on in (("debug=True", call.debug), (f"host={call.host!r}", public)) if on
        )
        yield main_block_run.finding(
            f"{call.file} runs app.run({what}) when started by hand: the module production "
            "serves carries a development server"
            + (" with the debugger on every interface" if public and call.debug else ""),
            level=Level.ERROR if public and call.debug else Level.WARNING,
            file=call.file,
            line=call.line,
        )


# -- APP010 ----------------------------------------------------------------------------


def _proxies(ctx: Context) -> int | None:
    """How many proxies are in front: the spec says, or 1 when one is found in the
    project's files; None when unknown (nothing found: maybe a platform router)."""
    if ctx.spec is not None:
        return ctx.spec.http.trusted_proxies
    return 1 if has_proxy(ctx) else None


#: The kit's entry module wraps an app that has no ProxyFix (flaskprod.kit.entry).
_KIT_PROXY_FIX = re.compile(r"^app = behind_proxies\(app, (\d+)\)$", re.MULTILINE)


def _kit_proxy_fix(ctx: Context) -> dict[str, int] | None:
    """The ProxyFix the kit's entry module adds (``behind_proxies``) when production
    serves it (http.health_source = "kit"): read from the rendered module, so a kit
    rendered before it did is still reported."""
    if ctx.spec is None or ctx.spec.http.health_source != "kit":
        return None
    entry = ctx.root / f"{ENTRY_MODULE}.py"
    found = _KIT_PROXY_FIX.search(ctx.read(entry)) if entry.is_file() else None
    if found is None:
        return None
    hops = int(found.group(1))
    return {"x_for": hops, "x_proto": hops} if hops else None


@rule(
    "APP010",
    layer="app",
    level=Level.WARNING,
    title="ProxyFix missing behind a proxy, or trusting more hops than there are proxies",
    help="Behind N reverse proxies, wrap the app once: app.wsgi_app = ProxyFix("
    "app.wsgi_app, x_for=N, x_proto=N, x_host=N); never trust more hops than there are "
    "proxies, or clients can forge their address with X-Forwarded-For. The kit's entry "
    "module (http.health_source = 'kit') wraps an app that has none.",
    requires=("app",),
    example="nginx proxy_pass in front, no ProxyFix: every request comes from 127.0.0.1",
)
def proxy_fix(ctx: Context) -> Iterator[Finding]:
    count = _proxies(ctx)
    fix = _app(ctx).proxy_fix or _kit_proxy_fix(ctx)
    if count is None:
        return
    if fix is None and count > 0:
        yield proxy_fix.finding(
            f"{count} reverse prox{'y is' if count == 1 else 'ies are'} in front but the app "
            "has no ProxyFix: request.remote_addr is the proxy's address",
            file=app_file(ctx),
        )
    elif fix is not None and fix.get("x_for", 0) > count:
        yield proxy_fix.finding(
            f"ProxyFix trusts {fix['x_for']} X-Forwarded-For hops but {count} "
            f"prox{'y is' if count == 1 else 'ies are'} in front: clients can forge "
            "their address",
            level=Level.ERROR,
            file=app_file(ctx),
        )


# -- APP011 ----------------------------------------------------------------------------


@rule(
    "APP011",
    layer="app",
    level=Level.WARNING,
    title="No liveness or readiness route",
    help="Serve a liveness route (/health: 200 without touching dependencies) and a "
    "readiness route (/health/ready: checks the database and Redis), for the load "
    "balancer, the container's HEALTHCHECK and deploys gated on health; "
    "flaskprod.Production(app) adds both.",
    requires=("app",),
    example="no /health, /healthz or /livez route",
    level_reason="warning, a checklist item (a health check): without it a hung app keeps "
    "its traffic and deploys cannot wait for the new version to be healthy.",
)
def no_health(ctx: Context) -> Iterator[Finding]:
    app = _app(ctx)
    if ctx.spec is not None and ctx.spec.http.health_source == "kit":
        # The kit's entry module answers both in front of the app (flaskprod_wsgi.py).
        entry = f"{ENTRY_MODULE}.py"
        if not (ctx.root / entry).is_file():
            yield no_health.finding(
                f"http.health_source = 'kit' but {entry} is missing: run 'flaskprod render'",
                file=app_file(ctx),
            )
        return
    if ctx.spec is not None:
        # One finding for both paths: an app without them (no Production(app)) is one
        # cause, one fix.
        problems = []
        wanted = ctx.spec.http.health_path
        if app.health.get(wanted) != 200:
            status = app.health.get(wanted)
            said = f"answers {status}" if status else "is not served"
            problems.append(f"health_path {wanted} {said}")
        ready = ctx.spec.http.ready_path
        # Readiness touches the database: never requested here, found by its route
        # (or flaskprod's middleware, which serves READY_PATH).
        served_by_flaskprod = (
            "flaskprod" in app.extensions and app.config.get("READY_PATH") == ready
        )
        if ready not in app.paths and not served_by_flaskprod:
            problems.append(f"ready_path {ready} is not served")
        if problems:
            yield no_health.finding("the spec's " + " and its ".join(problems), file=app_file(ctx))
        return
    if not any(status == 200 for status in app.health.values()):
        yield no_health.finding(
            "no liveness route answers 200 (tried " + ", ".join(sorted(app.health)) + ")",
            file=app_file(ctx),
        )


# -- APP012 ----------------------------------------------------------------------------


@rule(
    "APP012",
    layer="app",
    level=Level.WARNING,
    title="Logging to an unrotated file, or not to stdout/stderr",
    help="Log to stderr (journald and docker collect it and rotate it) or use a "
    "RotatingFileHandler / WatchedFileHandler with logrotate; a plain FileHandler grows "
    "until the disk is full.",
    requires=("app",),
    example="app.logger.addHandler(logging.FileHandler('app.log'))",
)
def logging_setup(ctx: Context) -> Iterator[Finding]:
    handlers = _app(ctx).log_handlers
    for handler in handlers:
        if handler.get("file") and not handler.get("rotated"):
            yield logging_setup.finding(
                f"logs go to {handler['file']} with a plain {handler['class']}, never rotated",
                file=app_file(ctx),
            )
            return
    files_only = handlers and all(h.get("file") for h in handlers)
    if files_only and ctx.in_container:
        yield logging_setup.finding(
            "in a container the app logs only to files: 'docker logs' shows nothing and the "
            "files die with the container",
            file=app_file(ctx),
        )


# -- APP013 ----------------------------------------------------------------------------

_TRACKERS = ("sentry_sdk", "rollbar", "bugsnag", "honeybadger", "airbrake", "newrelic")
_TRACKERS_MORE = ("ddtrace", "elasticapm", "opentelemetry", "raygun4py", "scout_apm")


@rule(
    "APP013",
    layer="app",
    level=Level.INFO,
    title="No error tracking (Sentry)",
    help="Report exceptions to an error tracker: pip install 'sentry-sdk[flask]' and set "
    "SENTRY_DSN (flaskprod.Production(app) starts Sentry when SENTRY_DSN is set); "
    "otherwise a 500 is a line in a log nobody reads.",
    requires=("app",),
    example="no sentry_sdk (or other tracker) imported by the app",
)
def no_error_tracking(ctx: Context) -> Iterator[Finding]:
    modules = set(_app(ctx).modules)
    if modules.isdisjoint(_TRACKERS + _TRACKERS_MORE):
        yield no_error_tracking.finding("no error tracker is loaded by the app", file=app_file(ctx))
