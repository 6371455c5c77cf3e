"""The settings an app reads from its environment, found without importing it.

Sources, in order: the project's Python files (``os.environ["X"]``, ``os.environ.get``,
``os.getenv``, ``environ.get``, with their defaults), its env samples (``.env.example``,
``.env.sample``, ``.env.prod-sample``, ...) and its compose files (``environment:``).
A name from a sample or compose counts only when the app's code reads it (or names it
in a string, as a config loader does, or it falls under ``from_prefixed_env``'s
prefix): samples also hold Docker and compose knobs (``COMPOSE_PROFILES``,
``DOCKER_WEB_VOLUME=.:/app``, ``NODE_ENV=development``) that are no setting of the app.
Each name becomes one ``app.settings`` entry, the value the env file shows:

- ``""``: optional, the line stays commented out (unset, as the app expects when it
  tests ``is not None``);
- ``"CHANGE-ME"``: required (read with ``os.environ["X"]``, no default) and unknown;
- anything else: the app's own default, or the sample's (never for a secret: a real
  value in a sample must not travel into the kit).

The uploads folder: the setting the app really uses for uploads (``UPLOAD_FOLDER``,
``MEDIA_ROOT``, ``MEDIA_FOLDER``, ...) when read from the environment goes to
``paths.media_env``; a folder built from another variable and a fixed tail
(flask-on-docker: ``MEDIA_FOLDER = f"{os.getenv('APP_FOLDER')}/project/media"``) makes
that variable the install folder and ``paths.media_dir`` that folder plus the tail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REQUIRED = "CHANGE-ME"
#: Names that say "secret": a value never travels, Kubernetes keeps them in a Secret.
SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN", "CREDENTIAL")
#: Config keys that name the uploads folder, in the apps and extensions that use them.
MEDIA_KEYS = frozenset(
    {
        "UPLOAD_FOLDER",
        "UPLOADS_FOLDER",
        "UPLOAD_DIR",
        "UPLOADS_DIR",
        "UPLOAD_PATH",
        "MEDIA_ROOT",
        "MEDIA_FOLDER",
        "MEDIA_DIR",
        "MEDIA_PATH",
    }
)
#: Variables flaskprod sets itself, development-only ones, and the stack's own.
_NOT_SETTINGS = re.compile(
    r"^(FLASKPROD_\w+|SECRET_KEY|DATABASE_URL|REDIS_URL|SENTRY_DSN|TRUSTED_PROXIES|"
    r"MAX_CONTENT_LENGTH|FLASK_APP|FLASK_DEBUG|FLASK_ENV|FLASK_RUN_\w+|POSTGRES_\w+|"
    r"PYTHON[A-Z]+|PATH|HOME|PORT|WEB_CONCURRENCY|GUNICORN_\w+|FORWARDED_ALLOW_IPS|"
    r"IMAGE_TAG|REDIS_PASSWORD|VIRTUAL_ENV)$"
)
#: Variables the official ``python:*`` images define (their Dockerfiles' ``ENV``), which an
#: app may read as if every machine had them (docker-flask-example shows
#: ``os.environ["PYTHON_VERSION"]`` on its home page). The kit's image inherits them; every
#: other target gets these values: ``{python}`` is the Python that runs the app there
#: (:meth:`flaskprod.spec.model.Spec.image_settings`).
IMAGE_SETTINGS = {"PYTHON_VERSION": "{python}", "LANG": "C.UTF-8"}
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SAMPLE = re.compile(r"^\.env(\.[\w.-]+)?[.-](example|sample|template|dist)$|^\.env\.example\.\w+$")
_COMPOSE = re.compile(r"^(docker-)?compose[\w.-]*\.ya?ml$")
#: A name in quotes in Python code: read through a loader (``config("X")``, an ini
#: interpolated from the environment), so a sample's line for it is a setting.
_QUOTED_NAME = re.compile(r"""["']([A-Z][A-Z0-9_]*)["']""")
#: Code that takes the whole environment (pydantic-settings, environs, a mapping of
#: os.environ): any sample name may be read, none can be told apart.
_WHOLE_ENVIRONMENT = re.compile(r"BaseSettings|environs|from_mapping\(\s*(os\.)?environ\b")
#: Sample values that only make sense on a developer's machine.
_DEVELOPMENT_VALUE = re.compile(r"^(development|dev|local|debug)$|:/", re.IGNORECASE)


@dataclass
class AppSettings:
    """What the scan found (:func:`scan_settings`)."""

    settings: dict[str, str] = field(default_factory=dict)
    media_env: list[str] = field(default_factory=list)
    #: An uploads folder built from a variable: (variable, the folder it must name, tail),
    #: e.g. ("APP_FOLDER", "{root}", "/project/media").
    media_from: tuple[str, str, str] | None = None
    #: Uploads folders fixed in the code (not read from the environment): "KEY (file:line)".
    media_fixed: list[str] = field(default_factory=list)
    #: ``app.config.from_prefixed_env()``: the app also reads every FLASK_* variable.
    prefixed_env: str | None = None
    sources: list[str] = field(default_factory=list)
    #: Names the code mentions in quotes; None: it reads the whole environment.
    mentioned: set[str] | None = field(default_factory=set)

    def read_by_app(self, name: str) -> bool:
        """Whether the app's code reads ``name`` (for names from samples and compose)."""
        if self.mentioned is None or name in self.settings or name in self.mentioned:
            return True
        return self.prefixed_env is not None and name.startswith(f"{self.prefixed_env}_")


#: Switches an app offers to log to stdout instead of files beside its code: on a server
#: the service manager (journald, the container runtime) keeps stdout, and the kit's
#: services cannot write their code's folder (ProtectSystem=strict, read-only images).
STDOUT_LOGGING = ("LOG_TO_STDOUT", "LOGS_TO_STDOUT", "LOG_STDOUT")


def is_secret(name: str) -> bool:
    return any(word in name for word in SECRET_WORDS)


def scan_settings(root: Path, python_files: Iterator[Path]) -> AppSettings:
    found = AppSettings()
    for path in python_files:
        _scan_python(root, path, found)
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_file() and _SAMPLE.match(path.name):
            _scan_sample(path, found)
            found.sources.append(path.name)
        elif path.is_file() and _COMPOSE.match(path.name):
            _scan_compose(path, found)
    if found.media_from:
        variable, folder, _ = found.media_from
        found.settings[variable] = folder  # where the app's code is installed
    for name in found.media_env:
        found.settings.pop(name, None)  # set to media_dir by the kit itself
    for name in STDOUT_LOGGING:
        if name in found.settings and not found.settings[name]:
            found.settings[name] = "1"
    found.settings = dict(sorted(found.settings.items()))
    return found


def required_reads(path: Path) -> list[str]:
    """The names one Python file reads with ``os.environ["X"]`` (no default): the app
    cannot be imported without them when that code runs at import."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if "environ[" not in text:
        return []
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    names = []
    for node in ast.walk(tree):
        read = _env_read(node)
        if read and read[1] == REQUIRED and _NAME.match(read[0]) and read[0] not in names:
            names.append(read[0])
    return names


def sample_values(root: Path) -> dict[str, str]:
    """The plain values the project's env samples show (secrets, URLs and paths left
    out, as for the kit): every name, read by the app or not (stand-ins for an import)."""
    found = AppSettings(mentioned=None)
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_file() and _SAMPLE.match(path.name):
            _scan_sample(path, found)
    return {name: value for name, value in found.settings.items() if value}


def _add(found: AppSettings, name: str, value: str, *, sample: bool = False) -> None:
    if not _NAME.match(name) or _NOT_SETTINGS.match(name):
        return
    if sample and not found.read_by_app(name):
        return  # a Docker/compose knob, or a name the app never reads
    if name in IMAGE_SETTINGS:
        found.settings[name] = IMAGE_SETTINGS[name]  # what the image gives, wherever it runs
        return
    if is_secret(name) and value != REQUIRED:
        value = ""  # a sample's or a default's secret never travels
    if "://" in value or "@" in value:
        value = ""  # a URL may hold credentials, and names a host of its author's
    current = found.settings.get(name)
    if current is None or (not current and value):
        found.settings[name] = value


# -- Python -------------------------------------------------------------------------------


def _env_read(node: ast.AST) -> tuple[str, str] | None:
    """``os.environ["X"]`` -> (X, REQUIRED); ``os.getenv("X", "d")`` -> (X, "d")."""
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value, REQUIRED
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    getenv = isinstance(func, ast.Attribute) and func.attr == "getenv"
    getenv = getenv or (isinstance(func, ast.Name) and func.id == "getenv")
    get = isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value)
    first = node.args[0]
    if not (getenv or get) or not isinstance(first, ast.Constant):
        return None
    if not isinstance(first.value, str):
        return None
    default = node.args[1] if len(node.args) > 1 else None
    value = ""
    if isinstance(default, ast.Constant) and default.value is not None:
        value = str(default.value)
    return first.value, value


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _scan_python(root: Path, path: Path, found: AppSettings) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    if found.mentioned is not None:
        if _WHOLE_ENVIRONMENT.search(text):
            found.mentioned = None
        else:
            found.mentioned.update(_QUOTED_NAME.findall(text))
    if "environ" not in text and "getenv" not in text and "from_prefixed_env" not in text:
        return
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return
    relative = path.relative_to(root).as_posix()
    by_name = _reads_env_by_name(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            # "UPLOAD_FOLDER: str = ..." (CTFd's config classes): an assignment too
            node = ast.Assign(targets=[node.target], value=node.value, lineno=node.lineno)
        read = _env_read(node)
        if read:
            _add(found, *read)
            if read[0] in MEDIA_KEYS and read[0] not in found.media_env:
                found.media_env.append(read[0])
            if relative not in found.sources:
                found.sources.append(relative)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "from_prefixed_env"
        ):
            prefix = node.args[0] if node.args else None
            found.prefixed_env = str(prefix.value) if isinstance(prefix, ast.Constant) else "FLASK"
        if isinstance(node, ast.Assign) and not _media_assignment(
            node, found, path.parent, root, by_name
        ):
            keys = [k for k in _assigned_keys(node) if k in MEDIA_KEYS]
            if keys and not isinstance(node.value, ast.Name):
                found.media_fixed.append(f"{keys[0]} ({relative}:{node.lineno})")


def _assigned_keys(node: ast.Assign) -> list[Any]:
    keys: list[Any] = []
    for target in node.targets:
        if isinstance(target, ast.Name):
            keys.append(target.id)
        elif isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
            keys.append(target.slice.value)
    return keys


def _reads_env_by_name(tree: ast.AST) -> bool:
    """Whether the module reads variables named at run time (``os.getenv(option)``):
    CTFd's config parser takes each ini option from the variable of the same name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            key: ast.AST = node.slice
        elif isinstance(node, ast.Call) and node.args and _is_env_getter(node.func):
            key = node.args[0]
        else:
            continue
        if not isinstance(key, ast.Constant):
            return True
    return False


def _is_env_getter(func: ast.AST) -> bool:
    """``os.getenv`` / ``getenv`` / ``os.environ.get``."""
    if isinstance(func, ast.Name):
        return func.id == "getenv"
    if isinstance(func, ast.Attribute):
        return func.attr == "getenv" or (func.attr == "get" and _is_environ(func.value))
    return False


def _media_assignment(
    node: ast.Assign, found: AppSettings, folder: Path, root: Path, by_name: bool = False
) -> bool:
    """``UPLOAD_FOLDER = os.environ.get("X")`` or ``app.config["MEDIA_FOLDER"] = ...``:
    True when the uploads folder comes from the environment. In a module that reads
    variables by a computed name, ``UPLOAD_FOLDER = ini["uploads"]["UPLOAD_FOLDER"]``
    is the variable ``UPLOAD_FOLDER`` (CTFd: an ini interpolated from the environment)."""
    keys = [key for key in _assigned_keys(node) if key in MEDIA_KEYS]
    if not keys:
        return False
    read = _env_read(node.value)
    if read:
        if read[0] not in found.media_env:
            found.media_env.append(read[0])
        return True
    named = {
        inner.value
        for inner in ast.walk(node.value)
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str) and inner.value in keys
    }
    if by_name and named:
        for name in sorted(named):
            if name not in found.media_env:
                found.media_env.append(name)
        return True
    found_env = any(_env_read(inner) for inner in ast.walk(node.value))
    if isinstance(node.value, ast.JoinedStr):  # f"{os.getenv('APP_FOLDER')}/project/media"
        parts = node.value.values
        if (
            len(parts) == 2
            and isinstance(parts[0], ast.FormattedValue)
            and isinstance(parts[1], ast.Constant)
            and (inner := _env_read(parts[0].value))
        ):
            tail = str(parts[1].value).rstrip("/")
            if tail.startswith("/") and ".." not in tail:
                found.media_from = (inner[0], _app_folder(folder, root, tail), tail)
    return found_env


def _app_folder(folder: Path, root: Path, tail: str) -> str:
    """The folder the variable must name: the config module's nearest ancestor that
    holds the tail's first part ("project" of /project/media), as {root}/..."""
    first = tail.strip("/").split("/")[0]
    for candidate in [folder, *folder.parents]:
        if (candidate / first).exists():
            relative = candidate.relative_to(root).as_posix()
            return "{root}" if relative == "." else "{root}/" + relative
        if candidate == root:
            break
    return "{root}"


# -- samples and compose ------------------------------------------------------------------


def _scan_sample(path: Path, found: AppSettings) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for line in lines:
        line = line.strip().removeprefix("export ").strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        value = value.strip().strip("'\"")
        # A sample shows where things are on its author's machine (paths, volumes,
        # hosts, "development"): keep plain values only.
        if "://" in value or "@" in value or value.startswith("/"):
            value = ""
        if _DEVELOPMENT_VALUE.search(value):
            value = ""
        _add(found, name.strip(), value, sample=True)


def _scan_compose(path: Path, found: AppSettings) -> None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return
    services = data.get("services") if isinstance(data, dict) else None
    for service in (services or {}).values():
        environment = service.get("environment") if isinstance(service, dict) else None
        if isinstance(environment, dict):
            names = [str(name) for name in environment]
        elif isinstance(environment, list):
            names = [str(item).split("=", 1)[0] for item in environment]
        else:
            continue
        for name in names:
            _add(found, name.strip(), "", sample=True)
