"""The app server a project already uses, from what it says: its launchers (Procfile,
boot/entrypoint scripts, Dockerfile CMD/ENTRYPOINT, compose ``command``, systemd units)
and its requirements.

gunicorn there -> ``server.kind = "gunicorn"`` with the worker class and count the
launchers use (gevent stays gevent: apps that stream server-sent events need it);
granian there -> granian; neither -> the default (granian), with the line to add.
The launchers are read by :mod:`flaskprod.launch`, the reading ``check`` does too, so
``init`` and ``check`` agree on what a project runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaskprod.launch.compose import production_compose_files
from flaskprod.launch.discover import discover
from flaskprod.launch.granian import find_granian
from flaskprod.launch.gunicorn import (
    gunicorn_launch,
    merged_settings,
    read_config,
    worker_class_name,
)
from flaskprod.launch.launchers import Launcher, read_launchers
from flaskprod.launch.shell import split_command
from flaskprod.spec.rendered import rendered_files
from flaskprod.spec.stackdeps import PINNED

#: gunicorn worker classes the spec knows (server.worker_class).
_WORKER_CLASSES = ("sync", "gthread", "gevent")
#: The order a deployment would use its launchers in: a server's own first.
_ORDER = ("systemd", "supervisor", "procfile", "dockerfile", "compose")


@dataclass(frozen=True)
class ServerChoice:
    kind: str  # "gunicorn" or "granian"
    #: server.* settings beyond the kind (worker_class, workers, threads).
    settings: dict[str, Any] = field(default_factory=dict)
    #: Where it was seen ("Procfile:1", "requirements"), or None for the default.
    source: str | None = None
    #: The app server packages the project declares (gunicorn, gevent, granian).
    declared: frozenset[str] = frozenset()

    def missing_for(self, kind: str, worker_class: str) -> list[str]:
        """Packages to add for running ``kind`` (the spec's, perhaps not this choice's)."""
        wanted = [kind] + (["gevent"] if kind == "gunicorn" and worker_class == "gevent" else [])
        return [package for package in wanted if package not in self.declared]

    @property
    def missing(self) -> list[str]:
        """What the project lacks to run this choice as detected."""
        return self.missing_for(self.kind, self.settings.get("worker_class", "sync"))

    def describe(self) -> str:
        extra = ", ".join(f"{key} {value}" for key, value in self.settings.items())
        what = f"{self.kind}{f' ({extra})' if extra else ''}"
        if self.source == "requirements":
            return f"server: {what}, listed in the project's requirements"
        if self.source:
            return f"server: {what}, as the project runs it ({self.source})"
        return f"server: {what} (the default: nothing in the project names an app server)"


def detect_server(root: Path, names: set[str]) -> ServerChoice:
    """The server for the project at ``root``, whose declared packages are ``names``."""
    kind, settings, source = _choose(root, names)
    declared = frozenset(names & {"gunicorn", "gevent", "granian"})
    return ServerChoice(kind, settings, source, declared)


def _choose(root: Path, names: set[str]) -> tuple[str, dict[str, Any], str | None]:
    gunicorns, granians = _launchers(root)
    if gunicorns:
        setup = gunicorns[0]
        settings: dict[str, Any] = {}
        worker_class = setup.worker_class
        if worker_class in _WORKER_CLASSES:
            settings["worker_class"] = worker_class
        workers, threads = setup.workers, setup.threads
        if isinstance(workers, int) and workers > 1:
            settings["workers"] = workers
        if worker_class == "gthread" and isinstance(threads, int) and threads > 1:
            settings["threads"] = threads
        return "gunicorn", settings, f"{setup.file.relative_to(root).as_posix()}:{setup.line}"
    if granians:
        setup = granians[0]
        return "granian", {}, f"{setup.file.relative_to(root).as_posix()}:{setup.line}"
    # Listed but started by nothing here: granian (the default) if it is listed.
    if "granian" in names:
        return "granian", {}, "requirements"
    if "gunicorn" in names:
        return "gunicorn", {}, "requirements"
    return "granian", {}, None


def missing_note(missing: list[str], kind: str, requirements: str | None) -> str | None:
    """The note init prints when the project lacks its app server's packages."""
    if not missing:
        return None
    where = requirements or "the project's requirements"
    lines = ", ".join(f"'{PINNED[package]}'" for package in missing)
    return (
        f"the project does not list {' and '.join(missing)}, which the stack runs "
        f"(server.kind = {kind!r}): add {lines} to {where} (or run init with --add-deps)"
    )


@dataclass(frozen=True)
class _Seen:
    """An app server a launcher starts: where, and (gunicorn) its worker settings."""

    file: Path
    line: int
    worker_class: str = "sync"
    #: As set (None when not: the count then comes from the server's environment).
    workers: Any = None
    threads: Any = None


def _launchers(root: Path) -> tuple[list[_Seen], list[_Seen]]:
    """gunicorn and granian in the project's own launchers (not flaskprod's kit), in
    the order a deployment would use them: systemd, supervisor, Procfile, Dockerfile,
    compose (production compose files only)."""
    try:
        files = discover(root)
    except OSError:  # a tree init cannot walk: no launcher to learn from
        return [], []
    ours = rendered_files(root)  # a kit rendered before: not the project's launchers
    files["compose"] = production_compose_files(files["compose"])
    mine = {kind: [p for p in paths if p not in ours] for kind, paths in files.items()}
    gunicorns: list[_Seen] = []
    granians: list[_Seen] = []
    for launcher in read_launchers(mine, _ORDER):
        words = split_command(launcher.text)
        if find_granian(words) is not None:
            granians.append(_Seen(launcher.file, launcher.line))
            continue
        seen = _gunicorn(root, launcher, words, mine["gunicorn"])
        if seen is not None:
            gunicorns.append(seen)
    return gunicorns, granians


def _gunicorn(
    root: Path, launcher: Launcher, words: list[str], configs: list[Path]
) -> _Seen | None:
    """gunicorn's worker settings as ``launcher`` starts it (itself or through the
    project's script it runs), with its config file's and GUNICORN_CMD_ARGS'."""
    env, where = launcher.env, (launcher.file, launcher.line)
    launch = gunicorn_launch(root, words, where, list(launcher.bases), env, configs)
    if launch is None:
        return None
    config = read_config(launch.config, env) if launch.config is not None else None
    settings = merged_settings(config, env, launch.flags, launch.file, launch.line)

    def value(name: str) -> Any:
        return settings[name].value if name in settings else None

    worker_class = worker_class_name(value("worker_class") or "sync", value("threads"))
    return _Seen(launch.file, launch.line, worker_class, value("workers"), value("threads"))
