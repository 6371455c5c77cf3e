"""Import a Flask app and describe it, as JSON: run in a child process by detection.

Its source is run as ``python -c SOURCE TARGET`` by the project's own interpreter, with
the project directory as the working directory (so it is ``sys.path[0]``, as for
gunicorn): it must import nothing but the standard library and Flask.
Importing someone's app runs their code: it happens here, in a throwaway process with
a timeout, never in flaskprod's own. Anything the app prints goes to stderr; stdout
carries only the one JSON line. A failure is reported as JSON too (``ok: false``) with
the first line of the error and the project file and line it came from.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def _one_line(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg}"
    if isinstance(error, SystemExit):
        return f"the app exited while importing (exit status {error.code})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _in_project(filename: str, root: Path) -> str | None:
    if filename.startswith("<"):  # "<string>" (this probe), "<frozen ...>"
        return None
    path = Path(filename).resolve()
    try:
        relative = path.relative_to(root)
    except ValueError:
        return None
    if relative.parts and relative.parts[0] in {".venv", "venv", "env", ".tox"}:
        return None  # a virtual environment inside the project is not the user's code
    return relative.as_posix()


def _where(error: BaseException, root: Path) -> str | None:
    """``file:line`` of the deepest frame in the project's own code."""
    if isinstance(error, SyntaxError) and error.filename:
        relative = _in_project(error.filename, root)
        return f"{relative or error.filename}:{error.lineno}"
    where = None
    for frame in traceback.extract_tb(error.__traceback__):
        relative = _in_project(frame.filename, root)
        if relative is not None:
            where = f"{relative}:{frame.lineno}"
    return where


def _relative(folder: str | None, root: Path) -> str | None:
    if not folder:
        return None
    path = Path(folder).resolve()
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _loader_folders(loader: Any) -> list[str]:
    """The folders a Jinja loader searches: FileSystemLoader's searchpath, through
    ChoiceLoader/PrefixLoader (extensions wrap the app's loader in them)."""
    if loader is None:
        return []
    folders = [str(Path(folder).resolve()) for folder in getattr(loader, "searchpath", [])]
    inner = getattr(loader, "loaders", None) or getattr(loader, "mapping", None)
    for child in inner.values() if isinstance(inner, dict) else inner or []:
        folders += _loader_folders(child)
    return folders


def template_folders(app: Any) -> list[str]:
    """Every folder render_template can read from: the app's loader and each
    blueprint's template folder, extensions' package folders in site-packages included
    (APIFairy's docs page): the CSP must allow what those templates load."""
    loaders = [getattr(app, "jinja_loader", None)]
    loaders += [getattr(bp, "jinja_loader", None) for _, bp in sorted(app.blueprints.items())]
    folders: list[str] = []
    for loader in loaders:
        folders += [f for f in _loader_folders(loader) if f not in folders and Path(f).is_dir()]
    return folders


def describe(app: Any, root: Path) -> dict[str, Any]:
    """What the kit needs to know about a live Flask app."""
    static_dirs = [_relative(app.static_folder, root)]
    static_dirs += [
        _relative(blueprint.static_folder, root)
        for _, blueprint in sorted(app.blueprints.items())
        if blueprint.static_folder
    ]
    migrate = app.extensions.get("migrate")
    config = app.config
    redis_configured = any(
        "redis" in str(config.get(key) or "").lower()
        for key in ("REDIS_URL", "SESSION_TYPE", "CACHE_TYPE", "RATELIMIT_STORAGE_URI")
    )
    max_length = config.get("MAX_CONTENT_LENGTH")
    return {
        "import_name": app.import_name,
        "static_dir": static_dirs[0],
        "static_url_path": app.static_url_path,
        "static_dirs": [folder for folder in static_dirs if folder],
        "uses_sqlalchemy": "sqlalchemy" in app.extensions,
        "uses_migrate": migrate is not None,
        "migrations_dir": _relative(getattr(migrate, "directory", None), root),
        "uses_redis": "redis" in sys.modules or redis_configured,
        "routes": sorted({rule.rule for rule in app.url_map.iter_rules()}),
        "endpoints": sorted({(rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()}),
        "max_content_length": max_length if isinstance(max_length, int) else None,
        "template_dirs": template_folders(app),
        # flaskprod.Production answers its health paths in a WSGI middleware, not routes.
        "middleware_health": [config.get("HEALTH_PATH"), config.get("READY_PATH")]
        if "flaskprod" in app.extensions
        else None,
    }


def _disarm_run() -> None:
    """An unguarded ``app.run()`` at import time must not start a server here."""
    import flask

    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    setattr(flask.Flask, "run", run)  # noqa: B010 - mypy forbids assigning a method


def probe(target: str, root: Path) -> dict[str, Any]:
    from flask.cli import find_app_by_string, find_best_app

    _disarm_run()
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        app = find_app_by_string(module, attribute) if attribute else find_best_app(module)
        return {"ok": True, **describe(app, root)}
    except BaseException as error:  # the user's code may raise anything, even SystemExit
        return {"ok": False, "error": _one_line(error), "where": _where(error, root)}


def main() -> None:
    # Keep the real stdout for the JSON; the app's own prints go to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    result = probe(sys.argv[1], Path.cwd().resolve())
    out.write(json.dumps(result, sort_keys=True) + "\n")
    out.flush()
    os._exit(0)  # skip the app's atexit handlers and non-daemon threads
