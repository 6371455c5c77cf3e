"""What a backup command works on: the app's name, its database, folders.

The database URL comes from ``--database-url``, else ``DATABASE_URL``, else the local
stack that ``flaskprod up`` runs (``.flaskprod/state.json`` records the URL it gave
the app). Folders come from the spec (``backup.dir``, ``paths.media_dir``); backups of
the local stack go to ``.flaskprod/backups`` so a rehearsal never writes to /var.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from flaskprod.errors import UserError
from flaskprod.ops.database import MARIADB, POSTGRESQL, Database
from flaskprod.spec.model import SPEC_FILENAME, Spec

STACK = "the local stack"


@dataclass
class Setup:
    root: Path
    app: str
    spec: Spec | None
    state_dir: Path
    stack_env: dict[str, str] = field(default_factory=dict)


def load_setup(path: Path, environ: Mapping[str, str]) -> Setup:
    from flaskprod.spec.load import load_spec
    from flaskprod.stack.state import StateDir

    root = path.resolve()
    spec_file = root / SPEC_FILENAME
    spec = load_spec(spec_file) if spec_file.is_file() else None
    app = spec.app.name if spec else _slug(root.name)
    override = environ.get("FLASKPROD_STATE_DIR")
    dirs = StateDir.for_project(root, Path(override) if override else None)
    state = dirs.read()
    return Setup(root, app, spec, dirs.root, dict(state.env) if state else {})


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return slug or "app"


def database_url(option: str | None, environ: Mapping[str, str], setup: Setup) -> tuple[str, str]:
    """(URL, where it came from)."""
    if option:
        return option, "--database-url"
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"], "DATABASE_URL"
    # PostgreSQL itself, not PgBouncer in front of it: a dump needs its own session
    for name in ("DIRECT_DATABASE_URL", "DATABASE_URL"):
        if setup.stack_env.get(name):
            return setup.stack_env[name], STACK
    raise UserError(
        f"no database for {setup.app}: no --database-url, no DATABASE_URL, and no local "
        f"stack running in {setup.root}",
        hint="pass --database-url URL, set DATABASE_URL, or start the stack with 'flaskprod up'",
    )


def admin(db: Database, source: str, state_dir: Path | None = None) -> Database:
    """Who creates and drops scratch databases. On the local stack's own cluster that
    is its superuser (trust authentication on loopback): the app's role there may
    not create databases. Elsewhere, the configured role itself."""
    from flaskprod.stack.postgres import PG_USER

    if source == STACK and db.kind == POSTGRESQL:
        return replace(db, user=PG_USER, password="")
    if source == STACK and db.kind == MARIADB and state_dir is not None:
        # MariaDB's root, by the unix socket of the stack's server (no password)
        from flaskprod.stack.mariadb import socket_for
        from flaskprod.stack.state import StateDir

        socket = socket_for(StateDir(state_dir).mariadb)
        return replace(db, user="root", password="", options={"unix_socket": str(socket)})
    return db


def backup_folder(option: Path | None, setup: Setup, source: str) -> Path:
    if option is not None:
        return option.absolute()
    if source == STACK:
        return setup.state_dir / "backups"
    if setup.spec is not None:
        return Path(setup.spec.resolve(setup.spec.backup.dir))
    raise UserError(
        f"no backup folder: {setup.root} has no {SPEC_FILENAME} (its backup.dir)",
        hint="pass --output DIR",
    )


def media_root(setup: Setup, environ: Mapping[str, str]) -> str | None:
    """The app's ``MEDIA_ROOT``: the environment's, else the local stack's, else the
    spec's paths.media_dir."""
    return (
        environ.get("MEDIA_ROOT")
        or setup.stack_env.get("MEDIA_ROOT")
        or (setup.spec.media_dir if setup.spec is not None else None)
    )


def media_folder(choice: bool | None, setup: Setup, environ: Mapping[str, str]) -> Path | None:
    """``--media``: MEDIA_ROOT must exist; ``--no-media``: none; default: if it exists."""
    if choice is False:
        return None
    candidate = media_root(setup, environ)
    if candidate and Path(candidate).is_dir():
        return Path(candidate)
    if choice:
        where = candidate or f"(no {SPEC_FILENAME} and no local stack)"
        raise UserError(f"--media: the media folder {where} does not exist", hint="or --no-media")
    return None
