"""Run a program with no network at all, where this system allows it.

The app is imported for judgement with production's settings, which name production's
hosts: a compose service (``cache:6379``), a database, a placeholder password for a
Redis that happens to listen on this machine's 6379. The probe refuses Python-level
connections itself (``_probe._offline``); C libraries (libpq under psycopg/psycopg2)
open their own sockets, so the probe also runs in a fresh network namespace, whose
only interface is a loopback that is down: every TCP connection and name lookup fails
at once, with nothing to reach.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess


@functools.cache
def offline_prefix() -> tuple[str, ...]:
    """``("unshare", "--net", ...)`` when unshare can make a network namespace here
    (root, or unprivileged user namespaces mapping the current user to itself, so the
    app sees its own uid), else ``()`` and the probe's own refusal is all there is."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, "--net") if os.geteuid() == 0 else (unshare, "--map-current-user", "--net")
    try:
        trial = subprocess.run([*prefix, "true"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if trial.returncode == 0 else ()
