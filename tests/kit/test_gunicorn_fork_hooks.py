"""The shop's rendered gunicorn.conf.py (server.kind = "gunicorn"), as gunicorn itself
loads it: pre_fork freezes the preloaded app's objects out of the garbage collector's
walk (before_fork), and post_fork is still after_fork."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench.shop_gunicorn import gunicorn_shop  # noqa: E402

PROBE = """
import gc, json, sys
from gunicorn.config import Config
from gunicorn.app.base import Application

class Probe(Application):
    def init(self, *args): pass
    def load(self): pass

app = Probe.__new__(Probe)
app.usage = app.prog = None
app.cfg = Config()
app.load_config_from_file(sys.argv[1])
before = gc.get_freeze_count()
app.cfg.pre_fork(None, None)
print(json.dumps({
    "before": before,
    "after": gc.get_freeze_count(),
    "preload": app.cfg.preload_app,
    "post_fork": app.cfg.settings["post_fork"].get().__code__.co_names,
}))
"""


def test_rendered_pre_fork_freezes_and_post_fork_disposes(tmp_path: Path) -> None:
    config = gunicorn_shop(tmp_path) / "deploy" / "gunicorn.conf.py"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(config)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    hooks = json.loads(result.stdout.strip().splitlines()[-1])
    assert hooks["preload"] is True
    assert hooks["before"] == 0
    assert hooks["after"] > 10_000  # gunicorn's and the config's objects, all frozen
    assert "after_fork" in hooks["post_fork"]
