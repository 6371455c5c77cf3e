"""The one release pipeline, shared by ``flaskprod reload`` (this machine) and
``flaskprod deploy`` (an SSH host): build -> release step -> start -> readiness ->
switch -> drain -> retire, on blue/green slots "a" and "b".

The new release starts on the slot that is not live; nginx sends new requests to it
only once its app server answers the ready path; nginx's old workers finish their
requests on the old slot, whose server then stops gracefully. Any failure before the
switch stops the new slot and leaves the old one serving. Where things run (this
machine, a host over SSH) is a :class:`ReleaseTarget`; the order and the failure
handling live here only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from flaskprod.errors import ExitCode, ServiceFailed, UserError

SLOTS = ("a", "b")
#: Seconds the new slot gets to answer its ready path (a release can override it).
READY_TIMEOUT = 60.0

Echo = Callable[[str], None]


def other_slot(slot: str | None) -> str:
    """The slot a new release starts on: the one that is not live ("a" when none is)."""
    return "b" if slot == "a" else "a"


@dataclass(frozen=True)
class Release:
    """One release: ``id`` names it everywhere (folder, ledger), ``revision`` is the
    committed revision it ships (``"working tree"`` when not from git)."""

    id: str
    revision: str
    created: str
    ready_timeout: float = READY_TIMEOUT

    @classmethod
    def new(cls, revision: str, *, now: datetime | None = None, **kw: float) -> Release:
        """``YYYYmmddTHHMMSSZ-<shortrev>`` (the contract's id), created now (UTC)."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        short = revision[:12] if revision else "local"
        short = "".join(c if c.isalnum() else "-" for c in short).strip("-") or "local"
        return cls(
            id=f"{moment:%Y%m%dT%H%M%SZ}-{short}",
            revision=revision,
            created=moment.isoformat(timespec="seconds"),
            **kw,
        )


class NotReady(ServiceFailed):
    """The new slot's app server did not answer its ready path; ``lines``: the app's
    own error lines (its log since it started)."""

    def __init__(self, message: str, lines: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.lines = list(lines)


class ReleaseFailed(ServiceFailed):
    """The release stopped at ``step``; before the switch the old release keeps serving
    (``live`` says whether the new one serves anyway: a failure after the switch)."""

    def __init__(
        self,
        step: str,
        message: str,
        lines: Sequence[str] = (),
        *,
        live: bool = False,
        hint: str | None = None,
        exit_code: ExitCode | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.lines = list(lines)
        self.live = live
        if exit_code is not None:  # the cause's (a refused nginx config stays a usage error)
            self.exit_code = exit_code

    def __str__(self) -> str:
        # The first line is the error; the app's own lines follow, indented: they are
        # usually the only place that says why.
        head = super().__str__()
        return "\n".join([head, *(f"  | {line}" for line in self.lines)])


class ReleaseTarget(Protocol):
    """Where a release runs. Each method does one step; :func:`run_release` orders
    them and handles failures."""

    label: str  # "this machine" / "root@h1"

    def build(self, release: Release) -> None: ...  # code + venv of the release in place
    def release_step(self, release: Release) -> None: ...  # migrations + commands, once
    def start(self, release: Release, slot: str) -> None: ...  # app server on slot's socket
    def ready(self, slot: str, timeout: float) -> None: ...  # raises NotReady(lines)
    def switch(self, slot: str) -> None: ...  # nginx sends NEW requests to slot
    def drain(self, old_slot: str) -> None: ...  # old slot's in-flight requests finished
    def retire(self, slot: str) -> None: ...  # stop the old app server gracefully
    def stop_slot(self, slot: str) -> None: ...  # failure path: stop a never-ready slot
    def live_slot(self) -> str | None: ...
    def record(self, release: Release, state: str) -> None: ...  # ledger


@dataclass
class ReleaseResult:
    release: Release
    slot: str
    previous: str | None
    #: Seconds per phase, in the order they ran.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())


def _lines(error: BaseException) -> list[str]:
    """The error lines an exception carries (a NotReady's, a log tail), else its text."""
    lines = getattr(error, "lines", None)
    if isinstance(lines, list) and lines:
        return [str(line) for line in lines]
    tail = getattr(error, "log_tail", None)
    if isinstance(tail, str) and tail.strip():
        return tail.strip().splitlines()
    return []


def _message(error: BaseException) -> str:
    message = getattr(error, "message", None)
    if isinstance(message, str) and message:
        return message
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def run_release(target: ReleaseTarget, release: Release, echo: Echo) -> ReleaseResult:
    """Run ``release`` on ``target``: build, release step, start on the free slot,
    readiness, switch, drain and retire the old slot. Returns the timings per phase.

    Before the switch any failure (or Ctrl-C) stops the new slot, records the release
    as failed and raises :class:`ReleaseFailed`; the old release never stopped serving.
    """
    previous = target.live_slot()
    slot = other_slot(previous)
    result = ReleaseResult(release=release, slot=slot, previous=previous)

    def phase(name: str, step: Callable[[], None]) -> None:
        began = time.monotonic()
        try:
            step()
        finally:
            result.timings[name] = round(time.monotonic() - began, 3)

    started = False
    try:
        phase("build", lambda: target.build(release))
        phase("release", lambda: target.release_step(release))
        started = True  # from here a half-started server may exist
        phase("start", lambda: target.start(release, slot))
        phase("ready", lambda: target.ready(slot, release.ready_timeout))
        phase("switch", lambda: target.switch(slot))
    except BaseException as error:
        failed_at = next(reversed(result.timings)) if result.timings else "build"
        if started:
            target.stop_slot(slot)
        target.record(release, "failed")
        if not isinstance(error, UserError):
            raise  # Ctrl-C, a bug: the new slot is stopped, the old one serves
        serving = (
            f"the live release keeps serving on slot {previous} ({target.label})"
            if previous is not None
            else f"nothing was serving on {target.label}"
        )
        raise ReleaseFailed(
            failed_at,
            f"release {release.id} failed at {failed_at}: {_message(error)}; {serving}",
            _lines(error),
            hint=error.hint,
            exit_code=error.exit_code,
        ) from None
    target.record(release, "live")
    if previous is not None:
        try:
            phase("drain", lambda: target.drain(previous))
            phase("retire", lambda: target.retire(previous))
        except UserError as error:
            raise ReleaseFailed(
                next(reversed(result.timings)),
                f"release {release.id} serves on slot {slot}, but the old slot {previous} "
                f"did not stop cleanly: {_message(error)}",
                _lines(error),
                live=True,
                hint=error.hint,
            ) from None
    timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings.items())
    echo(f"release {release.id}: live on slot {slot} ({timings})")
    return result
