"""What a check rule sees: the project as discovered, read once and shared.

The runner builds one :class:`Context` per run. Rules read from it and never write
files, render templates or import anything from the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaskprod.spec.model import Spec

#: The kinds of file discovery sorts a project into (``Context.files`` keys).
FILE_KINDS = (
    "nginx",  # nginx.conf, *.conf with server/location blocks, sites-available/*
    "gunicorn",  # gunicorn.conf.py / gunicorn_config.py
    "procfile",
    "systemd",  # *.service, *.timer, *.socket
    "dockerfile",  # Dockerfile, Dockerfile.*, *.Dockerfile
    "dockerignore",
    "compose",  # docker-compose*.yml, compose*.yaml
    "requirements",  # requirements*.txt, requirements/*.txt
    "pyproject",
    "lock",  # poetry.lock, uv.lock, Pipfile.lock, requirements*.lock / compiled files
    "env",  # .env, .env.*, *.env
    "gitignore",
)


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
    #: The app's URL rules (paths), when it was imported.
    app_routes: list[str] | None = None
    #: Why the app could not be imported, when it could not (one line).
    app_error: str | None = None
    #: Shared parse results, so that one file is parsed once per run.
    cache: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Path]:
        if kind not in FILE_KINDS:
            raise KeyError(f"unknown file kind {kind!r}")
        return self.files.get(kind, [])

    def relative(self, path: Path) -> str:
        """A path as reports show it: relative to the project root when inside it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
