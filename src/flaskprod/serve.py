"""``python -m flaskprod.serve [granian flags] APP``: start granian with the worker
count of *this* machine, then become it (exec: same pid for systemd, Docker, ``up``).

gunicorn computes its worker count in the rendered ``gunicorn.conf.py``, on the machine
that runs it; granian has no config file, so this does the same before granian starts:
``WEB_CONCURRENCY`` (containers, PaaS) wins, then a ``--workers`` given on the command
line (server.workers), then one per core, at least 2
(:func:`flaskprod.spec.workers.default_workers`). Standard library only.

Kept for kits rendered before issue #12, still running on servers: today's kit starts
granian with a plain shell line (:func:`flaskprod.spec.servers.granian_shell`) and needs
nothing of flaskprod in the app's environment.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flaskprod.spec.workers import default_workers


def granian_command(args: list[str], environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """granian's argv for ``args`` (flags and target), with ``--workers`` decided here."""
    args = list(args)
    given = environ.get("WEB_CONCURRENCY", "").strip()
    if "--workers" in args:
        at = args.index("--workers")
        if given:
            args[at + 1] = given
    else:
        args[:0] = ["--workers", given or str(default_workers("granian"))]
    script = Path(sys.executable).parent / "granian"
    return [str(script), *args] if script.is_file() else ["granian", *args]


def main() -> None:
    argv = granian_command(sys.argv[1:], os.environ)
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - becomes granian, keeping the pid
    except OSError as error:
        message = f"flaskprod.serve: cannot run {argv[0]}: {error} (pip install granian)"
        print(message, file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main()
