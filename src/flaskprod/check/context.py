"""What a check rule sees: the project as discovered, read once and shared.

The runner builds one :class:`Context` per run. Rules read from it and never write
files, render templates or import anything from the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaskprod.launch.discover import FILE_KINDS
from flaskprod.spec.model import Spec


@dataclass
class AppInfo:
    """What the probe saw inside the imported app (JSON-safe values only)."""

    target: str
    #: Config values that are JSON-safe; secrets stay in memory, reports never print them.
    config: dict[str, Any] = field(default_factory=dict)
    #: [{"rule": "/login", "methods": ["GET", "POST"], "endpoint": "login", "form": True}]
    routes: list[dict[str, Any]] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    debug: bool = False
    #: The Werkzeug debugger wraps wsgi_app.
    debugger: bool = False
    #: ProxyFix settings ({"x_for": 1, "x_proto": 1, ...}) when it wraps wsgi_app.
    proxy_fix: dict[str, int] | None = None
    csrf: bool = False
    #: [{"logger": "app", "class": "FileHandler", "stream": None, "file": "...", "rotated": False}]
    log_handlers: list[dict[str, Any]] = field(default_factory=list)
    #: Modules imported once the app was loaded (top-level names), e.g. "sentry_sdk".
    modules: list[str] = field(default_factory=list)
    #: SQLAlchemy engines: [{"backend": "postgresql", "pre_ping": True}]
    engines: list[dict[str, Any]] = field(default_factory=list)
    #: Status of an HTTPS GET on each liveness candidate path ({"/health": 200}).
    health: dict[str, int] = field(default_factory=dict)
    #: Headers of one HTTPS GET on the liveness route (lower-cased names), if any.
    headers: dict[str, str] = field(default_factory=dict)
    #: ``app.run()`` calls reached while importing: [{"host": ..., "port": ..., "debug": ...}]
    run_calls: list[dict[str, Any]] = field(default_factory=list)
    #: The project's own Python files the import loaded (relative paths).
    files: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [str(route["rule"]) for route in self.routes]


#: What importing the app fills in (:func:`flaskprod.check.app_loader.load_app`). While
#: the import runs in the background they are not set, and reading one waits for it.
APP_FIELDS = ("app", "app_config", "app_routes", "app_error")


class AppPending(BaseException):
    """Read of an app field while the runner runs rules ahead of the app's import: the
    rule is run again once the import is done. A BaseException, so that a rule's own
    ``except Exception`` cannot swallow it."""


@dataclass
class Context:
    """The project under check."""

    root: Path
    #: The parsed spec, when the project has a ``flaskprod.toml``.
    spec: Spec | None = None
    #: Discovered files by kind (see FILE_KINDS), absolute paths, sorted.
    files: dict[str, list[Path]] = field(default_factory=dict)
    #: The environment production will have (EnvironmentFile, compose env, --env-file).
    env: dict[str, str] = field(default_factory=dict)
    #: The Flask app's config evaluated under ``env``; None with --no-import or on failure.
    app_config: Mapping[str, Any] | None = None
    #: Paths the app serves, when it was imported: its URL rules, plus health paths
    #: answered by middleware (probed with a GET; see AppInfo.health).
    app_routes: list[str] | None = None
    #: Why the app could not be imported, when it could not (one line).
    app_error: str | None = None
    #: Shared parse results, so that one file is parsed once per run.
    cache: dict[str, Any] = field(default_factory=dict)
    #: What the app showed when imported (see :class:`AppInfo`); None when not imported.
    app: AppInfo | None = None
    #: Where ``env`` came from, as reports name it ("deploy/shop.service
    #: (EnvironmentFile deploy/shop.env)", "--env-file prod.env"); None when unknown.
    env_source: str | None = None
    #: Whether ``env`` is what production really has (False: a guess, e.g. the
    #: EnvironmentFile lives only on the server), so rules judging values stay quiet.
    env_known: bool = False
    #: Options of later layers (``live``: "url"; ``host``: ...), set by their commands.
    options: dict[str, Any] = field(default_factory=dict)
    #: Completes the app's import running in the background (sets APP_FIELDS); None
    #: once done, or when nothing runs.
    app_pending: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    #: While set, reading an app field that is still pending raises AppPending
    #: instead of waiting (the runner's rules ahead of the import).
    defer_app: bool = field(default=False, repr=False, compare=False)

    def import_in_background(self, settle: Callable[[], None]) -> None:
        """The app's import was started; ``settle`` waits for it and sets the fields."""
        for name in APP_FIELDS:
            self.__dict__.pop(name, None)
        self.app_pending = settle

    def settle_app(self) -> None:
        """Wait for the app's import, if one is still running (its errors are raised)."""
        settle, self.app_pending = self.app_pending, None
        if settle is None:
            return
        for name in APP_FIELDS:
            self.__dict__.setdefault(name, None)
        settle()

    def __getattr__(self, name: str) -> Any:
        # Called only when the attribute is not set: an app field while it is pending.
        if name in APP_FIELDS and self.__dict__.get("app_pending") is not None:
            if self.__dict__.get("defer_app"):
                raise AppPending(name)
            self.settle_app()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def of_kind(self, kind: str) -> list[Path]:
        if kind not in FILE_KINDS:
            raise KeyError(f"unknown file kind {kind!r}")
        return self.files.get(kind, [])

    def read(self, path: Path) -> str:
        """A file's text, read once per run; undecodable bytes are replaced and an
        unreadable file reads as empty (discovery already proved it exists)."""
        key = f"text:{path}"
        if key not in self.cache:
            try:
                self.cache[key] = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                self.cache[key] = ""
        text: str = self.cache[key]
        return text

    @property
    def in_container(self) -> bool:
        """The app runs in a container (a Dockerfile or compose file is there and no
        systemd unit runs it on a VM), which changes what is right for some settings."""
        return bool(self.of_kind("dockerfile") or self.of_kind("compose")) and not self.of_kind(
            "systemd"
        )

    def relative(self, path: Path) -> str:
        """A path as reports show it: relative to the project root when inside it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


# The app fields' defaults live in __init__ only: without a class attribute, reading a
# field the background import has not set yet reaches __getattr__, which waits.
for _name in APP_FIELDS:
    delattr(Context, _name)
