"""``flaskprod check --host``: the server this runs on (layer ``host``; read-only).

The rules share one :class:`~flaskprod.check.host.target.HostTarget`, resolved once
per run by :func:`host_target`.
"""

from __future__ import annotations

from flaskprod.check.context import Context
from flaskprod.check.host.target import HostTarget, resolve

__all__ = ["HostTarget", "host_target"]


def host_target(ctx: Context) -> HostTarget:
    if "host_target" not in ctx.cache:
        ctx.cache["host_target"] = resolve(ctx)
    target: HostTarget = ctx.cache["host_target"]
    return target
