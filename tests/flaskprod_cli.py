"""Running ``flaskprod`` as a user does: the console script of this environment, in a
subprocess with no stdin and a time bound (shared by the stack, e2e and live tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The console script of this environment (what a user runs).
FLASKPROD = str(Path(sys.executable).parent / "flaskprod")


def run_flaskprod(
    *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Its exit status and output; never raises on a non-zero exit (tests assert it)."""
    return subprocess.run(
        [FLASKPROD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )
