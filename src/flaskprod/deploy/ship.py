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
from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.deploy import ledger
from flaskprod.deploy._pipeline import Echo, Release, ReleaseFailed, ReleaseResult, run_release
from flaskprod.deploy.source import local_wheels, read_source
from flaskprod.deploy.ssh_target import SshTarget, new_release
from flaskprod.spec.model import Spec

if TYPE_CHECKING:
    from flaskprod.deploy.remote import Remote


def release_to_host(
    remote: Remote,
    spec: Spec,
    project: Path,
    echo: Echo,
    *,
    allow_dirty: bool = False,
    release_commands: Sequence[str] = (),
    ready_timeout: float = 60.0,
) -> ReleaseResult:
    """Ship ``project``'s committed revision to the host and switch to it with zero
    downtime. Raises ReleaseFailed (exit 7) naming the step; the old release serves on."""
    source = read_source(project, allow_dirty=allow_dirty)
    wheels = local_wheels(source.requirements_text)
    target = SshTarget(
        remote, spec, echo, source=source, wheels=wheels, release_commands=release_commands
    )
    release = new_release(source)
    taken = {entry.id for entry in target.entries()}
    if release.id in taken:  # the same revision again within a second: never reuse a folder
        number = 2
        while f"{release.id}-{number}" in taken:
            number += 1
        release = Release(f"{release.id}-{number}", release.revision, release.created)
    result = _run(target, release, echo, ready_timeout)
    echo(f"{target.label}: release {release.id} live on slot {result.slot}")
    return result


def _run(target: SshTarget, release: Release, echo: Echo, ready_timeout: float) -> ReleaseResult:
    """The pipeline; on failure the app's own lines are printed before the one-line error."""
    try:
        return run_release(target, release, echo, ready_timeout=ready_timeout)
    except ReleaseFailed as error:
        if error.lines:
            echo(f"{target.label}: {error.step} failed; the last lines it wrote:")
            for line in error.lines:
                echo(f"  | {line}")
        echo(f"{target.label}: the release that was serving before keeps serving")
        raise


def rollback_host(
    remote: Remote, spec: Spec, echo: Echo, *, to: str | None = None, ready_timeout: float = 60.0
) -> ReleaseResult:
    """Switch back to an earlier release that is still on the host (no build)."""
    target = SshTarget(remote, spec, echo)
    try:
        entry = ledger.rollback_target(target.entries(), to)
    except LookupError as error:
        raise ReleaseFailed("rollback", f"{target.label}: {error}") from None
    release = Release(id=entry.id, revision=entry.revision, created=entry.created)
    echo(f"{target.label}: rolling back to {entry.id}")
    result = _run(target, release, echo, ready_timeout)
    echo(f"{target.label}: release {release.id} live on slot {result.slot}")
    return result


def host_releases(remote: Remote, spec: Spec) -> list[ledger.Entry]:
    return SshTarget(remote, spec, lambda _line: None).entries()
