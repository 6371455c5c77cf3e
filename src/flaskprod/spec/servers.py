"""The app server's command line, computed once from the spec.

Every place that starts the server uses :func:`granian_argv` (the kit's systemd unit,
Dockerfile CMD, Procfile; ``flaskprod up``), so they cannot disagree; gunicorn reads the
rendered ``gunicorn.conf.py`` instead. Only where it listens differs per place: a unix
socket on a server and under ``up``, a TCP port in a container or on a PaaS.

How the spec's shared settings map onto granian's flags:

- ``workers`` -> ``--workers``, given by the launch line on the machine that runs it
  (:func:`granian_shell`: ``WEB_CONCURRENCY``, else server.workers, else one per core,
  at least 2, as ``gunicorn.conf.py`` does; granian's own default is 1) — plain
  shell, so the project's environment needs granian only, not flaskprod;
- ``threads`` -> ``--blocking-threads`` (the threads that run the WSGI app: a granian
  worker serves that many requests at once, like a gthread worker);
- ``bind`` -> ``--uds PATH`` or ``--host H --port P``;
- ``graceful_timeout`` -> ``--workers-kill-timeout`` (a worker still busy after it on
  reload/stop is killed);
- ``timeout`` -> nothing in granian (it has no per-request timeout): the app's request
  watchdog (``FLASKPROD_REQUEST_TIMEOUT``) ends the worker, and
  ``--respawn-failed-workers`` makes granian replace it;
- ``workers_lifetime`` / ``workers_max_rss`` -> granian's own recycling (it cannot
  count requests: ``max_requests`` is gunicorn only);
- ``preload_app``, ``worker_class``, ``keepalive`` -> gunicorn only (refused with granian).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from flaskprod.spec.model import Spec

#: The socket's mode: nginx reaches it through the app's group (as gunicorn's umask 007).
SOCKET_MODE = "0660"


@dataclass(frozen=True)
class Listen:
    """Where the server listens: a unix socket path, or host and port (the port may be
    a shell word such as ``$PORT`` where a shell expands it)."""

    uds: str | None = None
    host: str | None = None
    port: str | None = None

    @classmethod
    def from_bind(cls, bind: str) -> Listen:
        if bind.startswith("unix:"):
            return cls(uds=bind[5:])
        host, _, port = bind.rpartition(":")
        return cls(host=host.strip("[]"), port=port)

    def flags(self) -> list[str]:
        if self.uds is not None:
            return ["--uds", self.uds, "--uds-permissions", SOCKET_MODE]
        return ["--host", self.host or "0.0.0.0", "--port", self.port or "8000"]


def granian_target(target: str) -> tuple[str, list[str]]:
    """The spec's 'module:app' / 'module:create_app()' as granian takes it."""
    if target.endswith("()"):
        return target[:-2], ["--factory"]
    return target, []


def granian_flags(spec: Spec, listen: Listen, *, workers: bool = True) -> list[str]:
    """granian's flags for ``spec`` listening at ``listen``, without the executable and
    the app target (see :func:`granian_argv`); ``workers=False`` leaves ``--workers``
    to the launcher."""
    server = spec.server
    flags = ["--interface", "wsgi", "--http", "1", "--no-ws", *listen.flags()]
    if workers and server.workers:
        flags += ["--workers", str(server.workers)]
    flags += [
        *("--blocking-threads", str(server.threads)),
        *("--workers-kill-timeout", str(server.graceful_timeout)),
        # The request watchdog ends a worker holding a request past server.timeout:
        # granian must replace it (by default one dead worker stops the whole server).
        "--respawn-failed-workers",
    ]
    if server.workers_lifetime:
        flags += ["--workers-lifetime", str(server.workers_lifetime)]
    if server.workers_max_rss:
        flags += ["--workers-max-rss", str(server.workers_max_rss)]
    return flags


def granian_argv(
    spec: Spec, listen: Listen, *, launcher: list[str], workers: bool = True
) -> list[str]:
    """The whole command: ``launcher`` (granian's executable, perhaps with
    ``--workers N``) + flags + the app target."""
    target, factory = granian_target(served_target(spec))
    return [*launcher, *granian_flags(spec, listen, workers=workers), *factory, target]


#: The worker count when server.workers is unset: one per core, at least 2
#: (:func:`flaskprod.spec.workers.default_workers`), counted by the shell that starts it.
_CORES = 'w=$(nproc); [ "$w" -ge 2 ] || w=2; '


def granian_shell(spec: Spec, listen: Listen, *, granian: str) -> str:
    """A POSIX shell line that starts granian with the worker count of the machine it
    runs on and becomes it (exec: the same pid for systemd, Docker, a PaaS):
    ``WEB_CONCURRENCY`` wins, then server.workers, then the cores."""
    argv = granian_argv(spec, listen, launcher=[granian], workers=False)
    count = str(spec.server.workers) if spec.server.workers else "$w"
    words = [shlex.quote(argv[0]), "--workers", f'"${{WEB_CONCURRENCY:-{count}}}"']
    words += ["$PORT" if word == "$PORT" else shlex.quote(word) for word in argv[1:]]
    return ("" if spec.server.workers else _CORES) + "exec " + " ".join(words)


def slot_socket(spec: Spec, slot: str) -> str:
    """The unix socket of a release slot's app server on a deploy host
    (``/run/{name}-a/granian.sock``; ``slot`` may be systemd's ``%i``)."""
    return f"/run/{spec.app.name}-{slot}/{spec.server.kind}.sock"


#: The kit's entry module (``http.health_source = "kit"``), rendered at the project root.
ENTRY_MODULE = "flaskprod_wsgi"


def served_target(spec: Spec) -> str:
    """What the app server serves: the app itself, or the kit's entry module, which
    answers the health paths in front of it (every place that starts the server uses
    this)."""
    if spec.http.health_source == "kit":
        return f"{ENTRY_MODULE}:application"
    return spec.app.target
