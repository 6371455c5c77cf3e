"""The reference shop copied for a deploy test, its spec edited as a user would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
if str(REPO) not in sys.path:  # bench/ is imported as a package from the checkout
    sys.path.insert(0, str(REPO))

from bench.deploy_host import set_tls  # noqa: E402


def shop_copy(folder: Path, **tls: str) -> Path:
    """The shop in ``folder``, with these [tls] keys set."""
    project = folder / "shop"
    shutil.copytree(
        SHOP, project, ignore=shutil.ignore_patterns(".flaskprod", "__pycache__", "*.sqlite3")
    )
    set_tls(project, **tls)
    return project
