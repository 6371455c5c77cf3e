"""A per-checkout secret key kept in the instance folder (never in the code).

Used by the development profile when SECRET_KEY is unset, and by ``run_local.py``
(which passes it to the production profile through the environment).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILENAME = "secret_key"


def instance_secret(instance_path: str | Path) -> str:
    """Read the key, creating it once (mode 0600, written atomically) if missing."""
    folder = Path(instance_path)
    path = folder / FILENAME
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{FILENAME}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    try:
        # link, not replace: if another process won the race, keep its key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
