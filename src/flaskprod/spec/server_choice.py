"""The app server a project already uses, from what it says: its launchers (Procfile,
boot/entrypoint scripts, Dockerfile CMD/ENTRYPOINT, compose ``command``, systemd units)
and its requirements.

gunicorn there -> ``server.kind = "gunicorn"`` with the worker class and count the
launchers use (gevent stays gevent: apps that stream server-sent events need it);
granian there -> granian; neither -> the default (granian), with the line to add.
The launchers are read with the shell-aware parsers ``check`` uses, so ``init`` and
``check`` agree on what a project runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaskprod.spec.stackdeps import PINNED

#: gunicorn worker classes the spec knows (server.worker_class).
_WORKER_CLASSES = ("sync", "gthread", "gevent")


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
        workers = setup.get("workers")
        if isinstance(workers, int) and workers > 1:
            settings["workers"] = workers
        threads = setup.get("threads")
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


def _launchers(root: Path) -> tuple[list[Any], list[Any]]:
    """gunicorn and granian setups in the project's own files (not flaskprod's kit)."""
    from flaskprod.check.context import Context
    from flaskprod.check.discover import discover
    from flaskprod.check.parsers.granian import granian_setups
    from flaskprod.check.parsers.gunicorn import gunicorn_setups
    from flaskprod.kit.write import read_manifest

    ctx = Context(root=root, files=discover(root))
    ours = {root / path for path in read_manifest(root)}  # a kit rendered before
    try:
        found = gunicorn_setups(ctx), granian_setups(ctx)
    except Exception:  # a launcher the parsers cannot read must not stop init
        return [], []
    gunicorns = [s for s in found[0] if s.file not in ours and s.origin != "config"]
    granians = [s for s in found[1] if s.file not in ours]
    return gunicorns, granians
