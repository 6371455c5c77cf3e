"""The reference shop copied for a deploy test, its spec edited as a user would."""

from __future__ import annotations

import shutil
from pathlib import Path

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def shop_copy(folder: Path, **tls: str) -> Path:
    """The shop, with [tls] keys added (the spec as a user would edit it)."""
    project = folder / "shop"
    shutil.copytree(
        SHOP, project, ignore=shutil.ignore_patterns(".flaskprod", "__pycache__", "*.sqlite3")
    )
    spec = project / "flaskprod.toml"
    extra = "".join(f'{key} = "{value}"\n' for key, value in tls.items())
    text = spec.read_text()
    anchor = 'acme_webroot = "/var/www/letsencrypt"\n'
    assert anchor in text
    spec.write_text(text.replace(anchor, anchor + extra))
    return project
