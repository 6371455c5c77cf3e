"""Releasing to a provisioned host: what ``flaskprod deploy`` runs after provisioning,
and ``flaskprod releases`` / ``rollback``.

- :func:`release_to_host`: the committed revision shipped into ``releases/<id>/``, its
  venv built on the host, its release step (migrations once), then the slot switch
  through the one release pipeline.
- :func:`rollback_host`: the previous successful release (or ``--to ID``) started again
  on the free slot and switched to: no rebuild, no migration.
- :func:`host_releases`: the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.deploy import ledger
from flaskprod.deploy.source import Source, local_wheels, read_source
from flaskprod.deploy.ssh_target import SshTarget, new_release
from flaskprod.errors import DeployError
from flaskprod.release.pipeline import Echo, Release, ReleaseFailed, ReleaseResult, run_release
from flaskprod.spec.model import Spec

if TYPE_CHECKING:
    from flaskprod.deploy.remote import Remote


class DeployFailed(DeployError):
    """A release was refused on a host (exit 7): ``step`` is the pipeline's phase
    (build, release, start, ready, switch, drain, retire; rollback), ``lines`` what the
    app or the command wrote last; ``live``: the new release was already serving."""

    def __init__(self, step: str, message: str, lines: list[str], *, live: bool = False) -> None:
        super().__init__(message)
        self.step = step
        self.lines = lines
        self.live = live


def release_to_host(
    remote: Remote,
    spec: Spec,
    project: Path,
    echo: Echo,
    *,
    allow_dirty: bool = False,
    release_commands: Sequence[str] = (),
    ready_timeout: float = 60.0,
    shipment: Shipment | None = None,
    release_step: bool = True,
) -> ReleaseResult:
    """Ship ``project``'s committed revision to the host and switch to it with zero
    downtime. Raises ReleaseFailed (exit 7) naming the step; the old release serves on.
    ``shipment``: one revision read once for several hosts (same release id on each);
    ``release_step``: False on the app hosts after the first (migrations run once)."""
    shipment = shipment or Shipment.read(project, allow_dirty=allow_dirty)
    source = shipment.source
    target = SshTarget(
        remote,
        spec,
        echo,
        source=source,
        wheels=shipment.wheels,
        release_commands=release_commands,
        run_release_step=release_step,
    )
    release = new_release(source, ready_timeout, shipment.moment)
    taken = {entry.id for entry in target.entries()}
    if release.id in taken:  # the same revision again within a second: never reuse a folder
        number = 2
        while f"{release.id}-{number}" in taken:
            number += 1
        release = Release(
            f"{release.id}-{number}", release.revision, release.created, ready_timeout
        )
    return _run(target, release, echo)


@dataclass(frozen=True)
class Shipment:
    """The committed revision and the wheels it needs, read once for every host."""

    source: Source
    wheels: dict[str, Path]
    moment: datetime

    @classmethod
    def read(cls, project: Path, *, allow_dirty: bool = False) -> Shipment:
        source = read_source(project, allow_dirty=allow_dirty)
        return cls(source, local_wheels(source.requirements_text), datetime.now(UTC))


def _run(target: SshTarget, release: Release, echo: Echo) -> ReleaseResult:
    """The pipeline; a refusal prints the app's own lines, then fails with one line
    naming the host and the step (exit 7)."""
    try:
        result = run_release(target, release, echo)
    except ReleaseFailed as error:
        if error.lines:
            echo(f"{target.label}: {error.step} failed; the last lines it wrote:")
            for line in error.lines:
                echo(f"  | {line}")
        if not error.live:
            echo(f"{target.label}: the release that was serving before keeps serving")
        message = error.message
        if not message.startswith(f"{target.label}: "):
            message = f"{target.label}: {error.step}: {message}"
        raise DeployFailed(error.step, message, error.lines, live=error.live) from None
    target.restart_processes()
    return result


def rollback_host(
    remote: Remote, spec: Spec, echo: Echo, *, to: str | None = None, ready_timeout: float = 60.0
) -> ReleaseResult:
    """Switch back to an earlier release that is still on the host (no build)."""
    target = SshTarget(remote, spec, echo)
    try:
        entry = ledger.rollback_target(target.entries(), to)
    except LookupError as error:
        raise DeployFailed("rollback", f"{target.label}: {error}", []) from None
    release = Release(entry.id, entry.revision, entry.created, ready_timeout)
    echo(f"{target.label}: rolling back to {entry.id}")
    return _run(target, release, echo)


def host_releases(remote: Remote, spec: Spec) -> list[ledger.Entry]:
    return SshTarget(remote, spec, lambda _line: None).entries()
