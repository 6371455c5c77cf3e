"""The reference shop copied for a deploy test, its spec edited as a user would."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
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


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_after(line: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and press Ctrl-C (SIGINT) as soon as it prints ``line``. The child
    gets SIGINT's default back: a suite started in the background by a shell without job
    control (``make test &``) runs with SIGINT ignored, which children inherit."""
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, preexec_fn=_default_sigint,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        seen = []
        deadline = time.monotonic() + 600
        for output in proc.stdout:
            seen.append(output)
            if line in output or time.monotonic() > deadline:
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(argv, proc.returncode, "".join(seen) + rest, "")
