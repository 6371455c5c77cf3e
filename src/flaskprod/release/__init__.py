"""The release pipeline (build -> release step -> start -> readiness -> switch ->
drain -> retire on blue/green slots), shared by ``up``'s reload and ``deploy``."""

from flaskprod.release.pipeline import (
    SLOTS,
    NotReady,
    Release,
    ReleaseFailed,
    ReleaseResult,
    ReleaseTarget,
    other_slot,
    run_release,
)

__all__ = [
    "SLOTS",
    "NotReady",
    "Release",
    "ReleaseFailed",
    "ReleaseResult",
    "ReleaseTarget",
    "other_slot",
    "run_release",
]
