"""Run granian (``server.kind = "granian"``) on a developer's machine, as the kit does.

The command is the kit's own (:func:`flaskprod.spec.servers.granian_argv`), run with
the project's granian; ``up`` counts the workers itself (what the kit's shell line does
on a server: ``WEB_CONCURRENCY``, else server.workers, else one per core, at least 2)
and changes where it listens (a socket in the state folder) and, as root, the group it
runs with, so that nginx's workers reach the 0660 socket as they do through the app's
group on a server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from flaskprod.spec.model import Spec
from flaskprod.spec.servers import Listen, granian_argv
from flaskprod.spec.workers import default_workers
from flaskprod.stack.state import children_of

#: granian's pause between starting a new worker and stopping the old one on HUP
#: (--respawn-interval, default 3.5 s): a reload takes about this long per worker.
RESPAWN_INTERVAL = 3.5


def command(
    spec: Spec,
    *,
    socket_path: Path,
    proxy_group: str | None = None,
    executable: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """``granian --workers N <the kit's flags, bound to socket_path> <target>`` with
    ``executable`` (``up``: the project's granian), default the granian of this Python."""
    workers = worker_count(spec, os.environ if environ is None else environ)
    launcher = [*(executable or _own_granian()), "--workers", str(workers)]
    argv = granian_argv(spec, Listen(uds=str(socket_path)), launcher=launcher, workers=False)
    if proxy_group:
        # exec, so the pid stays granian's; the socket is created with this group.
        return ["setpriv", f"--regid={proxy_group}", "--keep-groups", *argv]
    return argv


def worker_count(spec: Spec, environ: Mapping[str, str]) -> int:
    """What the kit's launch line computes on a server: WEB_CONCURRENCY, else
    server.workers, else one per core (at least 2)."""
    given = environ.get("WEB_CONCURRENCY", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return spec.server.workers or default_workers("granian")


def _own_granian() -> list[str]:
    script = Path(sys.executable).parent / "granian"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "granian"]


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
