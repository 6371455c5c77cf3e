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
from flaskprod.spec.servers import served_target
from flaskprod.stack.state import children_of


def overlay_flags(
    spec: Spec,
    *,
    socket_path: Path,
    project: Path,
    pid_file: Path,
    proxy_group: str | None = None,
    version: str | None = None,
) -> list[str]:
    """The settings ``up`` overrides, as gunicorn flags (each one a machine difference).
    ``version``: of the gunicorn that runs (the project's), default this Python's.

    ``proxy_group``: on a server nginx joins the app's group to reach the socket
    (0660 through the rendered umask); here, as root, the app runs with nginx's
    workers' group instead, so the same socket mode works.
    """
    group = ["--group", proxy_group] if proxy_group else []
    return [
        *group,
        *_no_control_socket(version),
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


def _no_control_socket(given: str | None) -> list[str]:
    # gunicorn >= 24 opens a control socket at one per-user path by default: two stacks
    # on one machine would fight over it, and up does not use it. Older ones refuse the flag.
    from importlib.metadata import version

    text = given or version("gunicorn")
    major = int(text.split(".")[0]) if text.split(".")[0].isdigit() else 0
    return ["--no-control-socket"] if major >= 24 else []


def command(
    spec: Spec,
    *,
    conf: Path,
    socket_path: Path,
    project: Path,
    pid_file: Path,
    proxy_group: str | None = None,
    executable: list[str] | None = None,
    version: str | None = None,
) -> list[str]:
    """``gunicorn -c <rendered conf> <overlay flags> <app target>``, with ``executable``
    (``up``: the project's gunicorn, see :mod:`flaskprod.stack.project_env`), default
    the gunicorn of this Python."""
    return [
        *(executable or gunicorn_executable()),
        "--config",
        str(conf),
        *overlay_flags(
            spec,
            socket_path=socket_path,
            project=project,
            pid_file=pid_file,
            proxy_group=proxy_group,
            version=version,
        ),
        served_target(spec),
    ]


def gunicorn_executable() -> list[str]:
    """The ``gunicorn`` script beside this Python. Not ``python -m gunicorn``: on USR2
    gunicorn re-executes its own argv, and ``python .../gunicorn/__main__.py`` puts the
    package folder first on sys.path, where ``gunicorn/http`` hides the stdlib ``http``
    and the new master dies on import."""
    script = Path(sys.executable).parent / "gunicorn"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "gunicorn"]


def app_environment(
    spec: Spec,
    base: Mapping[str, str],
    *,
    secret_key: str,
    database_url: str,
    redis_url: str | None,
    media_root: Path,
    settings: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the app runs with: what systemd's EnvironmentFile gives on a server.
    ``settings``: the app's own (app.settings, as stack/app_settings gives them here)."""
    env = dict(base)
    env.update(settings or {})
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
            # The pool the worker model can use (as the kit's env file says).
            "FLASKPROD_SQLALCHEMY_POOL_SIZE": str(spec.pool[0]),
            "FLASKPROD_SQLALCHEMY_MAX_OVERFLOW": str(spec.pool[1]),
            # The request watchdog: gunicorn's timeout for gthread workers too.
            "FLASKPROD_REQUEST_TIMEOUT": str(spec.server.timeout),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The uploads setting the app itself reads (paths.media_env), as the kit sets it.
    env.update(dict.fromkeys(spec.paths.media_env, str(media_root)))
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    if spec.database.pgbouncer:
        from flaskprod.spec.pgbouncer import POOLER, POOLER_VARIABLE

        env[POOLER_VARIABLE] = POOLER  # prepared statements off (runtime/database.py)
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
