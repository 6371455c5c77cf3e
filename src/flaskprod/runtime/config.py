"""Configuration from the environment, in three profiles, and the production gate.

Profile: ``FLASKPROD_ENV``, else ``FLASK_ENV`` (the convention of most deployment
guides), else ``production``. Defaulting to production is the fail-safe choice: a
server that forgot to say what it is gets the strict checks, never the debug niceties.
Development and tests say so explicitly (``FLASKPROD_ENV=development`` / ``testing``).

Precedence, lowest first: flaskprod's defaults for the profile, the app's own config
(a value that differs from Flask's default), ``Production(app, **overrides)``, the
environment (prefixed ``FLASK_*`` / ``FLASKPROD_*`` variables and the few unprefixed
ones every host sets: ``SECRET_KEY``, ``DATABASE_URL``, ``REDIS_URL``, ...).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: check imports this module without Flask's cost
    from flask import Flask

PROFILES = ("development", "testing", "production")
_ALIASES = {"dev": "development", "test": "testing", "prod": "production"}

#: Gunicorn's WORKER_BOOT_ERROR: its master halts instead of respawning the worker forever.
EXIT_REFUSED = 3

#: Variables of Flask's own CLI, not config keys.
_CLI_VARIABLES = frozenset(
    {"FLASK_ENV", "FLASK_APP", "FLASK_SKIP_DOTENV", "FLASK_RUN_FROM_CLI", "FLASKPROD_ENV"}
)

_PLACEHOLDERS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "change-this",
        "changethis",
        "dev",
        "development",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "your-secret-key",
        "your_secret_key",
        "yoursecretkey",
        "replace-me",
        "replaceme",
        "default",
        "password",
        "test",
        "testing",
        "xxx",
        "insecure",
    }
)
#: Fragments that mark a key as a placeholder whatever its length.
_PLACEHOLDER_FRAGMENTS = (
    "change-me",
    "changeme",
    "change_me",
    "your-secret",
    "replace-me",
    "insecure",
    # Copied from the best-known tutorials and books, padded or not:
    # 'you-will-never-guess' (the Flask Mega-Tutorial), 'hard to guess string'
    # (Flask Web Development), 'super secret key' (older Flask docs).
    "never-guess",
    "hard to guess",
    "super secret",
    "super-secret",
    "supersecret",
    # 'replace-with-a-long-random-string' (deployment guides' .env examples).
    "replace-with",
    "random-string",
)
_MIN_SECRET = 32
_GENERATE = 'python -c "import secrets; print(secrets.token_hex(32))"'

#: The database stall guard (runtime/stall.py): a call unanswered this long makes it
#: probe the server, which gets DATABASE_PROBE_TIMEOUT to answer (0 turns the guard
#: off). A request waits on a stalled database at most their sum.
DATABASE_STALL_SECONDS = 0.5
DATABASE_PROBE_TIMEOUT = 1.0

#: Defaults shared by all profiles. Pool figures mirror ``flaskprod.toml``'s
#: ``[database]`` defaults (the spec module is CLI-side, so it is not imported here).
_COMMON: dict[str, Any] = {
    "HEALTH_PATH": "/health",
    "READY_PATH": "/health/ready",
    "HEALTH_TIMEOUT": 2.0,
    # None: 30 s in production on a threaded server, else off (runtime/watchdog.py).
    "REQUEST_TIMEOUT": None,
    "API_PREFIX": "/api/",
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,
    "SECURITY_HEADERS": True,
    "HSTS_MAX_AGE": 63072000,
    "HSTS_INCLUDE_SUBDOMAINS": True,
    "CONTENT_SECURITY_POLICY": "default-src 'self'; frame-ancestors 'none'",
    "CSP_REPORT_ONLY": False,
    "X_FRAME_OPTIONS": "DENY",
    "X_CONTENT_TYPE_OPTIONS": "nosniff",
    "REFERRER_POLICY": "strict-origin-when-cross-origin",
    "PERMISSIONS_POLICY": "camera=(), microphone=(), geolocation=()",
    "SQLALCHEMY_POOL_SIZE": 5,
    "SQLALCHEMY_MAX_OVERFLOW": 5,
    "SQLALCHEMY_POOL_RECYCLE": 1800,
    "SQLALCHEMY_POOL_TIMEOUT": 10,
    "SQLALCHEMY_CONNECT_TIMEOUT": 3,
    "SQLALCHEMY_STATEMENT_TIMEOUT_MS": 30000,
    "DATABASE_STALL_SECONDS": DATABASE_STALL_SECONDS,
    "DATABASE_PROBE_TIMEOUT": DATABASE_PROBE_TIMEOUT,
    "REDIS_SOCKET_TIMEOUT": 1.0,
    "REDIS_CONNECT_TIMEOUT": 1.0,
    "LOG_LEVEL": "INFO",
    "ACCESS_LOG": True,
    "DATABASE_REQUIRED": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
}
_PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "development": {"TRUSTED_PROXIES": 0, "LOG_FORMAT": "text"},
    "testing": {"TRUSTED_PROXIES": 0, "LOG_FORMAT": "text", "TESTING": True},
    "production": {
        "TRUSTED_PROXIES": 1,
        "LOG_FORMAT": "json",
        "SESSION_COOKIE_SECURE": True,
        "REMEMBER_COOKIE_SECURE": True,
        # url_for(_external=True) outside a request (mails, CLI): the public scheme.
        "PREFERRED_URL_SCHEME": "https",
    },
}


class StartupRefused(SystemExit):
    """The app must not start: its configuration is unsafe for the profile.

    A ``SystemExit`` so that a process exits with status 3 and no traceback (under
    gunicorn, 3 halts the master); importing code can still catch it.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__(EXIT_REFUSED)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(f"flaskprod: {problem}" for problem in self.problems)


def detect_profile(environ: Mapping[str, str], fallback: str | None = None) -> str:
    """The profile named by the environment (or ``fallback``), normalised.

    An unknown name raises :class:`StartupRefused` rather than guessing.
    """
    variable = "FLASKPROD_ENV" if environ.get("FLASKPROD_ENV") else "FLASK_ENV"
    raw = environ.get(variable) or fallback or "production"
    name = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if name not in PROFILES:
        raise StartupRefused(
            [f"{variable}={raw!r} is not a profile: use one of {', '.join(PROFILES)}"]
        )
    return name


def parse_value(raw: str) -> Any:
    """Like Flask's ``from_prefixed_env``: JSON when it parses, the string otherwise."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(raw: Any) -> int:
    """``"10M"`` / ``10485760`` -> bytes, in nginx's notation (k, m, g are 1024-based)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    match = _SIZE.match(str(raw))
    if not match:
        raise ValueError(raw)
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def normalise_database_url(url: str) -> str:
    """Heroku-style ``postgres://`` and bare ``postgresql://`` -> the psycopg 3 driver.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which flaskprod does not install.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def parse_switch(raw: Any) -> bool:
    """SECURITY_HEADERS-style switches: ``nginx``/``off``/``false``/``0`` mean off."""
    if isinstance(raw, bool):
        return raw
    return str(raw).strip().lower() not in {"nginx", "proxy", "off", "false", "0", "no", ""}


def environment_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """Config keys read from the environment (values checked later by :func:`coerce`)."""
    values: dict[str, Any] = {}
    for name in sorted(environ):
        for prefix in ("FLASK_", "FLASKPROD_"):
            if (
                name.startswith(prefix)
                and name not in _CLI_VARIABLES
                and not name.startswith("FLASK_RUN_")
            ):
                values[name[len(prefix) :]] = parse_value(environ[name])
    for name in ("SECRET_KEY", "REDIS_URL", "SENTRY_DSN", "SENTRY_RELEASE", "GIT_SHA"):
        if environ.get(name):
            values[name] = environ[name]
    if environ.get("DATABASE_URL"):
        values["SQLALCHEMY_DATABASE_URI"] = environ["DATABASE_URL"]
    # MEDIA_ROOT: the name the kit's env file and compose give the uploads' folder
    for name in ("MAX_CONTENT_LENGTH", "TRUSTED_PROXIES", "MEDIA_ROOT"):
        if name in environ:
            values[name] = environ[name]
    return values


def coerce(config: dict[str, Any]) -> list[str]:
    """Normalise typed keys in place; return one problem line per bad value."""
    problems: list[str] = []
    try:
        if config.get("MAX_CONTENT_LENGTH") is not None:
            config["MAX_CONTENT_LENGTH"] = parse_size(config["MAX_CONTENT_LENGTH"])
    except ValueError:
        problems.append(
            f"MAX_CONTENT_LENGTH={config['MAX_CONTENT_LENGTH']!r} is not a size: "
            "use bytes or nginx notation like 10M"
        )
    try:
        proxies = int(config["TRUSTED_PROXIES"])
        if not 0 <= proxies <= 5:
            raise ValueError(proxies)
        config["TRUSTED_PROXIES"] = proxies
    except (TypeError, ValueError):
        problems.append(
            f"TRUSTED_PROXIES={config['TRUSTED_PROXIES']!r} is not a count of proxies: "
            "use 0 (no proxy) to 5, usually 1 behind nginx"
        )
    try:
        config["HEALTH_TIMEOUT"] = float(config["HEALTH_TIMEOUT"])
    except (TypeError, ValueError):
        problems.append(
            f"HEALTH_TIMEOUT={config['HEALTH_TIMEOUT']!r} is not a number of seconds: use e.g. 2"
        )
    if config.get("REQUEST_TIMEOUT") is not None:
        try:
            seconds = float(config["REQUEST_TIMEOUT"])
            if not seconds >= 0:  # also refuses NaN
                raise ValueError(seconds)
            config["REQUEST_TIMEOUT"] = seconds
        except (TypeError, ValueError):
            problems.append(
                f"REQUEST_TIMEOUT={config['REQUEST_TIMEOUT']!r} is not a number of seconds: "
                "use gunicorn's timeout, e.g. 30 (0 turns the request watchdog off)"
            )
    for key, least in (("DATABASE_STALL_SECONDS", 0.0), ("DATABASE_PROBE_TIMEOUT", 0.1)):
        try:
            seconds = float(config[key])
            if not seconds >= least:  # also refuses NaN
                raise ValueError(seconds)
            config[key] = seconds
        except (TypeError, ValueError):
            problems.append(
                f"{key}={config[key]!r} is not a number of seconds (at least {least:g}): "
                "use e.g. 0.5 for DATABASE_STALL_SECONDS (0 turns the stall guard off), "
                "1 for DATABASE_PROBE_TIMEOUT"
            )
    level = config["LOG_LEVEL"]
    if isinstance(level, str) and level.upper() in _LEVELS:
        config["LOG_LEVEL"] = level.upper()
    elif not (isinstance(level, int) and not isinstance(level, bool)):
        problems.append(f"LOG_LEVEL={level!r} is not a level: use one of {', '.join(_LEVELS)}")
    if config["LOG_FORMAT"] not in ("json", "text"):
        problems.append(f"LOG_FORMAT={config['LOG_FORMAT']!r} is not a format: use json or text")
    for key in ("HEALTH_PATH", "READY_PATH"):
        if not str(config[key]).startswith("/"):
            problems.append(f"{key}={config[key]!r} is not a path: use one like /health")
    config["SECURITY_HEADERS"] = parse_switch(config["SECURITY_HEADERS"])
    config["ACCESS_LOG"] = parse_switch(config["ACCESS_LOG"])
    uri = config.get("SQLALCHEMY_DATABASE_URI")
    if isinstance(uri, str):
        config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(uri)
    return problems


def production_problems(config: Mapping[str, Any]) -> list[str]:
    """What makes this configuration unsafe to serve the public with."""
    problems: list[str] = []
    key = config.get("SECRET_KEY")
    fix = f"generate one with  {_GENERATE}  and put it in the environment"
    if not key:
        problems.append(f"SECRET_KEY is not set: {fix}")
    elif not isinstance(key, str | bytes):
        problems.append(f"SECRET_KEY must be a string: {fix}")
    elif _is_placeholder(str(key)):
        problems.append(f"SECRET_KEY is a placeholder ({str(key)!r}): {fix}")
    elif len(key) < _MIN_SECRET:
        problems.append(f"SECRET_KEY is {len(key)} characters, fewer than {_MIN_SECRET}: {fix}")
    if config.get("DATABASE_REQUIRED") and not config.get("SQLALCHEMY_DATABASE_URI"):
        problems.append(
            "DATABASE_URL is not set: put the database URL in the environment, e.g. "
            "DATABASE_URL=postgresql://user:password@host/dbname"
        )
    if config.get("DEBUG"):
        problems.append(
            "debug is on (DEBUG / FLASK_DEBUG / --debug): never run the debugger in "
            "production; unset FLASK_DEBUG and do not pass --debug"
        )
    if str(config.get("SESSION_BACKEND") or "").lower() == "redis":
        if not config.get("REDIS_URL"):
            problems.append(
                "SESSION_BACKEND=redis but REDIS_URL is not set: put the Redis URL in the "
                "environment, e.g. REDIS_URL=redis://:password@host:6379/0"
            )
        elif not _importable("flask_session"):
            problems.append(
                "SESSION_BACKEND=redis needs Flask-Session: pip install 'flaskprod[sessions]'"
            )
    elif config.get("SESSION_BACKEND") not in (None, "", "cookie"):
        problems.append(
            f"SESSION_BACKEND={config['SESSION_BACKEND']!r} is not a session backend: use "
            "redis (server-side, shared by every app server) or cookie (Flask's default)"
        )
    if config.get("SENTRY_DSN") and not _importable("sentry_sdk"):
        problems.append(
            "SENTRY_DSN is set but sentry-sdk is not installed: pip install 'flaskprod[sentry]'"
        )
    return problems


def _is_placeholder(key: str) -> bool:
    lowered = key.strip().lower()
    return lowered in _PLACEHOLDERS or any(part in lowered for part in _PLACEHOLDER_FRAGMENTS)


#: Public names for the check rules (which judge apps that do not use Production).
MIN_SECRET_LENGTH = _MIN_SECRET
is_placeholder_secret = _is_placeholder


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def load_dotenv_for_development(app: Flask) -> None:
    """Development only: load ``.env`` (cwd, then the app's folder) without overriding
    the real environment. Needs python-dotenv; silently skipped without it."""
    try:
        from dotenv import load_dotenv
    except ImportError:
        return
    for folder in (Path.cwd(), Path(app.root_path)):
        candidate = folder / ".env"
        if candidate.is_file():
            load_dotenv(candidate, override=False)
            return


def build_config(
    app: Flask, overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> str:
    """Apply defaults, overrides and the environment to ``app.config``.

    Returns the profile. Raises :class:`StartupRefused` (after printing one line per
    problem on stderr) when the configuration is bad, or unsafe in production.
    """
    if environ is None:
        environ = os.environ
    try:
        profile = detect_profile(environ, overrides.get("FLASKPROD_ENV"))
        if profile == "development" and environ is os.environ:
            load_dotenv_for_development(app)
        merged = dict(_COMMON) | _PROFILE_DEFAULTS[profile]
        flask_defaults = app.default_config
        for key, value in app.config.items():
            # The app's own choice wins over our default, Flask's defaults do not.
            if key in flask_defaults and flask_defaults[key] == value:
                continue
            merged[key] = value
        merged.update(overrides)
        merged.update(environment_config(environ))
        if merged.get("DEBUG") is None:
            merged["DEBUG"] = app.debug
        merged["FLASKPROD_ENV"] = profile
        problems = coerce(merged)
        if profile == "production":
            problems += production_problems(merged)
        elif not merged.get("SECRET_KEY"):
            # Development and tests work without one: a random key per process
            # (sessions end at each restart, which is fine there).
            merged["SECRET_KEY"] = secrets.token_hex(32)
        if problems:
            raise StartupRefused(problems)
    except StartupRefused as refused:
        # One write for all the lines: gunicorn workers refusing at the same moment
        # share stderr, and print()'s separate newline write lets their lines mix.
        sys.stderr.write(f"{refused}\n")
        sys.stderr.flush()
        raise
    app.config.update(merged)
    app.debug = bool(merged["DEBUG"])
    return profile
