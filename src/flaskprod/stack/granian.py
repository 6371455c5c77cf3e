"""Run granian (``server.kind = "granian"``) on a developer's machine, as the kit does.

The command is the kit's own (:func:`flaskprod.spec.servers.granian_argv`, started
through :mod:`flaskprod.serve` like the systemd unit); ``up`` only changes where it
listens (a socket in the state folder) and, as root, the group it runs with, so that
nginx's workers reach the 0660 socket as they do through the app's group on a server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from flaskprod.spec.model import Spec
from flaskprod.spec.servers import Listen, granian_argv
from flaskprod.stack.state import children_of

#: granian's pause between starting a new worker and stopping the old one on HUP
#: (--respawn-interval, default 3.5 s): a reload takes about this long per worker.
RESPAWN_INTERVAL = 3.5


def command(spec: Spec, *, socket_path: Path, proxy_group: str | None = None) -> list[str]:
    """``python -m flaskprod.serve <the kit's flags, bound to socket_path> <target>``."""
    argv = granian_argv(
        spec, Listen(uds=str(socket_path)), launcher=[sys.executable, "-m", "flaskprod.serve"]
    )
    if proxy_group:
        # exec, so the pid stays granian's; the socket is created with this group.
        return ["setpriv", f"--regid={proxy_group}", "--keep-groups", *argv]
    return argv


def overlay_flags(spec: Spec, *, socket_path: Path, proxy_group: str | None) -> list[str]:
    """What ``up`` runs differently from the systemd unit, for ``--print-config``."""
    lines = ["--uds", str(socket_path)]
    if proxy_group:
        lines += ["(group)", proxy_group]
    return lines


def replace_workers(master: int, timeout: float) -> tuple[list[int], set[int]]:
    """HUP granian and wait until every worker it had is replaced: (new pids, old pids).

    granian starts one new worker, gives it RESPAWN_INTERVAL to load the app (it imports
    the app afresh: new code), then stops one old worker, which finishes its requests
    (--workers-kill-timeout), and so on: the other workers serve meanwhile."""
    old = set(children_of(master))
    with contextlib.suppress(ProcessLookupError):
        os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = set(children_of(master))
        if not current & old and len(current) >= len(old):
            return sorted(current), old
        time.sleep(0.05)
    raise TimeoutError(f"granian did not replace its workers within {timeout:g}s")
