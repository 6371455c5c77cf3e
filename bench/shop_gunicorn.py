"""examples/shop as a gunicorn deployment.

The shop runs granian (the spec's default app server), but gunicorn stays a supported
``server.kind``: the tests and benchmarks of gunicorn's own kit (the rendered
deploy/gunicorn.conf.py, its hooks and access logger, its stack) use a copy of the shop
switched to ``kind = "gunicorn"`` and rendered by ``flaskprod render``, as a user would.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

SHOP = Path(__file__).resolve().parents[1] / "examples" / "shop"
FLASKPROD = str(Path(sys.executable).parent / "flaskprod")


def switch_to_gunicorn(project: Path) -> None:
    """``server.kind = "gunicorn"`` in the project's flaskprod.toml. The shop's
    gunicorn-only settings are comments holding gunicorn's defaults, so the kind line
    is the whole switch."""
    spec = project / "flaskprod.toml"
    text = spec.read_text()
    # only [server]'s: other sections have a kind of their own ([storage])
    section = re.search(r"(?ms)^\[server\]\n.*?(?=^\[)", text)
    if section is None:
        raise ValueError(f"{spec}: no [server] section to switch")
    body, count = re.subn(r'(?m)^kind = "[a-z]+"$', 'kind = "gunicorn"', section.group(0))
    if count != 1:
        raise ValueError(f"{spec}: no single 'kind = ...' line in [server] to switch")
    spec.write_text(text[: section.start()] + body + text[section.end() :])


def gunicorn_shop(base: Path) -> Path:
    """A copy of the shop at ``base/shop`` with kind = "gunicorn" and its kit rendered
    (deploy/gunicorn.conf.py, the units and launchers running gunicorn)."""
    project = base / "shop"
    shutil.copytree(
        SHOP,
        project,
        ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__", "*.pyc"),
    )
    switch_to_gunicorn(project)
    result = subprocess.run(
        [FLASKPROD, "render", str(project)],
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0 or not (project / "deploy" / "gunicorn.conf.py").is_file():
        raise RuntimeError(f"flaskprod render {project}:\n{result.stdout}\n{result.stderr}")
    return project
