"""The reference shop copied for a deploy test, its spec edited as a user would."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def shop_copy(folder: Path, **tls: str) -> Path:
    """The shop in ``folder``, with these [tls] keys set (a commented-out default line
    replaced, as a user would)."""
    project = folder / "shop"
    shutil.copytree(
        SHOP, project, ignore=shutil.ignore_patterns(".flaskprod", "__pycache__", "*.sqlite3")
    )
    spec = project / "flaskprod.toml"
    text = spec.read_text()
    section = text.index("\n[tls]\n")
    for key, value in tls.items():
        line = re.compile(rf"^(# )?{key} = .*$", re.MULTILINE)
        found = line.search(text, section)
        assert found is not None, f"no {key} in the shop's [tls]"
        text = text[: found.start()] + f'{key} = "{value}"' + text[found.end() :]
    spec.write_text(text)
    return project
