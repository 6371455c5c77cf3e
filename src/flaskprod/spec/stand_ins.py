"""Stand-in values for the settings an app needs just to be imported by ``init``.

Many apps read production's environment at import (``os.environ["SECRET_KEY"]``,
``os.environ["DATABASE_URL"]``); the shell running ``flaskprod init`` has none of it,
and the import only has to describe the app. Each name the code reads without a
default, and that the environment lacks, gets a placeholder of its kind: a random
token for a secret (never a real one), an in-memory SQLite URL for a database, a
loopback URL on the discard port for the rest, else the project's own sample value.
The import runs offline (flaskprod/offline.py), so nothing is reached with them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from flaskprod.spec.settings_scan import is_secret, required_reads, sample_values

STAND_IN = "flaskprod-init-stand-in"


def stand_ins(
    root: Path, python_files: Iterable[Path], environ: Mapping[str, str]
) -> dict[str, str]:
    """Placeholder values for what the code requires and ``environ`` lacks."""
    names: list[str] = []
    for path in python_files:
        names += [name for name in required_reads(path) if name not in names]
    samples = sample_values(root)
    return {name: _value(name, samples) for name in names if name not in environ}


def _value(name: str, samples: Mapping[str, str]) -> str:
    if is_secret(name):
        return secrets.token_urlsafe(32)
    if "DATABASE" in name or name.endswith(("_DB_URL", "_DB_URI")):
        return "sqlite://"  # a URL SQLAlchemy accepts, with no driver or server behind
    if name.endswith(("_URL", "_URI", "_DSN")):
        scheme = "redis" if "REDIS" in name or "BROKER" in name or "CACHE" in name else "http"
        return f"{scheme}://127.0.0.1:9/0" if scheme == "redis" else "http://127.0.0.1:9/"
    return samples.get(name, STAND_IN)
