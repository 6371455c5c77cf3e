"""Run the rendered ``deploy/gunicorn.conf.py`` on a developer's machine.

The config file runs as rendered; gunicorn's command-line settings take precedence
over a config file, so the few things that must differ here are given as flags:
the bind (a socket in the state folder, since ``/run/<name>/`` is root's and the
server's), the working folder (the project, not ``/srv/<name>``), the pid file and the
logs (to our log file, not ``/var/log/<name>``). See :func:`overlay_flags`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from flaskprod.spec.model import Spec
from flaskprod.stack.state import children_of


def overlay_flags(
    spec: Spec,
    *,
    socket_path: Path,
    project: Path,
    pid_file: Path,
    proxy_group: str | None = None,
) -> list[str]:
    """The settings ``up`` overrides, as gunicorn flags (each one a machine difference).

    ``proxy_group``: on a server nginx joins the app's group to reach the socket
    (0660 through the rendered umask); here, as root, the app runs with nginx's
    workers' group instead, so the same socket mode works.
    """
    control = socket_path.with_name("gunicorn.ctl")
    group = ["--group", proxy_group] if proxy_group else []
    return [
        *group,
        # gunicorn >= 24 opens a control socket at one per-user path by default: two
        # stacks on one machine would fight over it.
        "--control-socket",
        str(control),
        "--bind",
        f"unix:{socket_path}",
        "--chdir",
        str(project),
        "--pid",
        str(pid_file),
        # Both logs to stdout/stderr, which up collects per service; the access log
        # is how one sees which requests reached the app (and which nginx answered).
        "--access-logfile",
        "-",
        "--error-logfile",
        "-",
    ]


def command(
    spec: Spec,
    *,
    conf: Path,
    socket_path: Path,
    project: Path,
    pid_file: Path,
    proxy_group: str | None = None,
) -> list[str]:
    """``python -m gunicorn -c <rendered conf> <overlay flags> <app target>``."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(conf),
        *overlay_flags(
            spec,
            socket_path=socket_path,
            project=project,
            pid_file=pid_file,
            proxy_group=proxy_group,
        ),
        spec.app.target,
    ]


def app_environment(
    spec: Spec,
    base: Mapping[str, str],
    *,
    secret_key: str,
    database_url: str,
    redis_url: str | None,
    media_root: Path,
) -> dict[str, str]:
    """The environment the app runs with: what systemd's EnvironmentFile gives on a server."""
    env = dict(base)
    env.update(
        {
            "FLASKPROD_ENV": "production",
            "SECRET_KEY": secret_key,
            "DATABASE_URL": database_url,
            "MEDIA_ROOT": str(media_root),
            "FLASKPROD_MEDIA_ROOT": str(media_root),
            "TRUSTED_PROXIES": str(spec.http.trusted_proxies),
            "MAX_CONTENT_LENGTH": str(spec.http.max_body_bytes),
            # "nginx": the app leaves the security headers to nginx, so each is sent once.
            "FLASKPROD_SECURITY_HEADERS": spec.http.security_headers,
            "FLASK_APP": spec.app.target,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


def socket_accepts(path: Path) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def workers(master: int) -> list[int]:
    """The worker pids of the gunicorn master ``master``."""
    return children_of(master)


def start_new_workers(
    master: int, expected: int, timeout: float = 60.0
) -> tuple[list[int], set[int]]:
    """HUP the master; return once ``expected`` new workers run: (new pids, old pids).

    On HUP gunicorn forks the new workers first and only then asks the old ones to
    stop gracefully (each finishes the requests it has), so the pool never empties.
    With ``preload_app`` the new workers fork from the master's already imported app:
    configuration changes apply, code changes need ``flaskprod down && flaskprod up``.
    """
    old = set(workers(master))
    with contextlib.suppress(ProcessLookupError):
        _send(master, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(workers(master)) - old
        if len(new) >= expected:
            return sorted(new), old
        time.sleep(0.02)
    raise TimeoutError(f"gunicorn did not start new workers within {timeout:g}s")


def wait_gone(master: int, pids: set[int], timeout: float = 60.0) -> bool:
    """Wait until none of ``pids`` is a worker of ``master`` any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pids & set(workers(master)):
            return True
        time.sleep(0.02)
    return False


def _send(pid: int, signum: int) -> None:
    os.kill(pid, signum)
