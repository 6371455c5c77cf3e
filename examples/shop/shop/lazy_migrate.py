"""Flask-Migrate, imported only when something uses it (``flask db ...``, a test).

``from flask_migrate import Migrate`` imports Alembic, and Alembic Mako and Pygments:
about 12 MiB in every gunicorn worker, which never runs a migration (readiness reads
the revisions itself, flaskprod.runtime.migrations). :func:`init_migrate` registers
the same ``db`` command group and ``app.extensions["migrate"]`` as
``Migrate(app, db, directory=...)`` does, as stand-ins that do the real
``Migrate.init_app`` on first use.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask


def init_migrate(app: Flask, db: Any, directory: str, **options: Any) -> None:
    """``Migrate(app, db, directory=directory, **options)``, deferred until used."""

    def load() -> Any:
        from flask_migrate import Migrate

        # Replaces both stand-ins with the real config and command group.
        Migrate(app, db, directory=directory, **options)
        return app.extensions["migrate"]

    app.extensions["migrate"] = _LazyConfig(directory, load)
    app.cli.add_command(_LazyGroup(load, app), name="db")


class _LazyConfig:
    """``app.extensions["migrate"]`` until first use. ``directory`` is known without
    Flask-Migrate (readiness and ``flaskprod`` read it); anything else loads it."""

    def __init__(self, directory: str, load: Any) -> None:
        self.directory = directory
        self._load = load

    def __getattr__(self, name: str) -> Any:
        return getattr(self._load(), name)


class _LazyGroup(click.Group):
    """The ``db`` group: listed by ``flask --help`` as is; run, it is Flask-Migrate's."""

    def __init__(self, load: Any, app: Flask) -> None:
        super().__init__("db", help="Perform database migrations.")
        self._load = load
        self._app = app

    def _real(self) -> click.Group:
        if isinstance(self._app.extensions.get("migrate"), _LazyConfig):
            self._load()
        from flask_migrate.cli import db

        return db

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._real().get_command(ctx, name)
