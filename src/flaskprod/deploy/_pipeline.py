"""STAND-IN for ``flaskprod.release`` (helper "release" writes the real pipeline in
parallel): the contract's ``Release``, ``ReleaseTarget``, ``NotReady``,
``ReleaseFailed`` and ``run_release``, minimal, so the SSH target can be coded and
tested against them. Delete this module when ``flaskprod.release`` lands and import
from there instead (only :mod:`flaskprod.deploy.ssh_target` and
:mod:`flaskprod.deploy.ship` import it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from flaskprod.errors import DeployError

Echo = Callable[[str], None]
SLOTS = ("a", "b")


@dataclass(frozen=True)
class Release:
    id: str
    revision: str
    created: str


class NotReady(Exception):
    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines


class ReleaseFailed(DeployError):
    """A release step failed on the host (exit 7); the old release keeps serving."""

    def __init__(self, step: str, message: str, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.lines = lines or []


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
    old_slot: str | None
    timings: dict[str, float] = field(default_factory=dict)


def other_slot(slot: str | None) -> str:
    return "b" if slot == "a" else "a"


def run_release(
    target: ReleaseTarget, release: Release, echo: Echo, *, ready_timeout: float = 60.0
) -> ReleaseResult:
    """build -> release step -> start -> ready -> switch -> drain -> retire. A failure
    before the switch stops the new slot; the old one keeps serving."""
    old = target.live_slot()
    new = other_slot(old)
    result = ReleaseResult(release, new, old)

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        result.timings[name] = round(time.monotonic() - started, 2)

    started_slot = False
    try:
        with phase("build"):
            target.build(release)
        with phase("release step"):
            target.release_step(release)
        with phase("start"):
            started_slot = True
            target.start(release, new)
        with phase("ready"):
            target.ready(new, ready_timeout)
    except NotReady as error:
        target.stop_slot(new)
        target.record(release, "failed")
        raise ReleaseFailed("ready", f"{target.label}: {error}", error.lines) from None
    except DeployError:
        if started_slot:
            target.stop_slot(new)
        target.record(release, "failed")
        raise
    with phase("switch"):
        target.switch(new)
        target.record(release, "live")
    if old is not None:
        with phase("drain"):
            target.drain(old)
        with phase("retire"):
            target.retire(old)
    return result
