"""STAND-IN for ``flaskprod.release`` (helper "release" writes the real pipeline in
parallel, ``src/flaskprod/release/pipeline.py`` on wip-release): the names and the
semantics of ``/work/agents/release-protocol-changes.md`` (Release with its
ready_timeout, phases build/release/start/ready/switch/drain/retire, ReleaseFailed a
ServiceFailed wrapping the phase's UserError, ``live=True`` after the switch), minimal,
so the SSH target is coded and tested against them. Delete this module when
``flaskprod.release`` lands and import from there (only ``deploy/ssh_target.py`` and
``deploy/ship.py`` import it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from flaskprod.errors import ServiceFailed, UserError

Echo = Callable[[str], None]
SLOTS = ("a", "b")


@dataclass(frozen=True)
class Release:
    id: str
    revision: str
    created: str
    ready_timeout: float = 60.0


class NotReady(ServiceFailed):
    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines


class ReleaseFailed(ServiceFailed):
    def __init__(
        self, step: str, message: str, lines: list[str] | None = None, *, live: bool = False
    ) -> None:
        super().__init__(message)
        self.step = step
        self.lines = lines or []
        self.live = live


class ReleaseTarget(Protocol):
    label: str

    def build(self, release: Release) -> None: ...
    def release_step(self, release: Release) -> None: ...
    def start(self, release: Release, slot: str) -> None: ...
    def ready(self, slot: str, timeout: float) -> None: ...
    def switch(self, slot: str) -> None: ...
    def drain(self, old_slot: str) -> None: ...
    def retire(self, slot: str) -> None: ...
    def stop_slot(self, slot: str) -> None: ...
    def live_slot(self) -> str | None: ...
    def record(self, release: Release, state: str) -> None: ...


@dataclass
class ReleaseResult:
    release: Release
    slot: str
    previous: str | None
    timings: dict[str, float] = field(default_factory=dict)


def other_slot(slot: str | None) -> str:
    return "b" if slot == "a" else "a"


def run_release(target: ReleaseTarget, release: Release, echo: Echo) -> ReleaseResult:
    """build -> release -> start -> ready -> switch -> drain -> retire. A failure up to
    the switch stops the new slot; the old one keeps serving."""
    old = target.live_slot()
    new = other_slot(old)
    result = ReleaseResult(release, new, old)
    current = ""

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        nonlocal current
        current = name
        started = time.monotonic()
        yield
        result.timings[name] = round(time.monotonic() - started, 2)

    started_slot = False
    try:
        with phase("build"):
            target.build(release)
        with phase("release"):
            target.release_step(release)
        with phase("start"):
            started_slot = True
            target.start(release, new)
        with phase("ready"):
            target.ready(new, release.ready_timeout)
        with phase("switch"):
            target.switch(new)
    except BaseException as error:
        if started_slot:
            target.stop_slot(new)
        target.record(release, "failed")
        if isinstance(error, UserError):
            lines = list(getattr(error, "lines", []) or [])
            raise ReleaseFailed(current, error.message, lines) from error
        raise
    target.record(release, "live")
    try:
        if old is not None:
            with phase("drain"):
                target.drain(old)
            with phase("retire"):
                target.retire(old)
    except UserError as error:
        raise ReleaseFailed(current, error.message, live=True) from error
    spent = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings.items())
    echo(f"release {release.id}: live on slot {new} ({spent})")
    return result
