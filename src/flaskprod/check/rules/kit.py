"""Rules of the ``kit`` layer: the deployment files ``flaskprod init`` rendered still
say what flaskprod.toml says.

Every other layer judges the files as they are; this one compares them with a fresh
render of the spec, exactly as ``flaskprod render --check`` does (the same
:func:`flaskprod.kit.commands.render_files` and :func:`flaskprod.kit.write.plan_kit`
that ``plan_render`` joins, so the two can never disagree). A file
edited by hand is overwritten by the next render (or blocks it), and a kit not
re-rendered after the spec changed deploys something else than what was reviewed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.memo import context_digest, memo_key, remembered, stored_key
from flaskprod.check.model import Finding, Level, rule
from flaskprod.errors import UserError
from flaskprod.spec.rendered import read_manifest

#: Level by how the file differs, and why: a hand edit (or a file flaskprod did not
#: write at a kit path) is lost or refused at the next render, and what runs is not
#: what the spec says: warning. A missing file, a stale one (the spec changed after the
#: render) or a wrong mode (a script no longer executable): the kit deploys something
#: other than the spec: warning too; none of them is an attack surface by itself.
_REASONS = {
    "edited": "edited by hand since the last render: the next 'flaskprod render' refuses "
    "to overwrite it (--force loses the edit); move the change into flaskprod.toml",
    "foreign": "not written by flaskprod, at a path the kit renders: 'flaskprod render' "
    "refuses to overwrite it; move it aside or describe it in flaskprod.toml",
    "update": "differs from a fresh render of flaskprod.toml (changed since, or a newer "
    "flaskprod): run 'flaskprod render'",
    "create": "missing: run 'flaskprod render'",
}


def _static_facts(ctx: Context) -> Any:
    """What ``render --no-import`` detects from the project's sources, once per run."""
    from flaskprod.spec.detect import detect_project

    assert ctx.spec is not None
    if "kit:static-facts" not in ctx.cache:
        ctx.cache["kit:static-facts"] = detect_project(
            ctx.root, ctx.spec.app.target, introspect=False
        )
    return ctx.cache["kit:static-facts"]


def _project_facts(ctx: Context) -> Any:
    """What the kit's templates know about the project, detected from its sources as
    ``render --no-import`` does, plus what the app showed when it was imported here
    (Redis and Flask-Migrate loaded at import), as ``render`` after an import sees."""
    project = _static_facts(ctx)
    if ctx.app is not None:
        redis = project.uses_redis or "redis" in ctx.app.modules
        migrate = project.uses_migrate or "migrate" in ctx.app.extensions
        project = dataclasses.replace(
            project,
            uses_redis=redis,
            uses_migrate=migrate,
            migrations=migrate or project.migrations_present,
        )
    return project


def _render(ctx: Context, project: Any) -> dict[str, Any]:
    """The kit ``render_files`` makes from the spec and ``project``, once per run and
    set of facts."""
    from flaskprod.kit.commands import render_files  # detection, templates: on a miss

    assert ctx.spec is not None
    done: list[tuple[Any, dict[str, Any]]] = ctx.cache.setdefault("kit:renders", [])
    for facts, kit in done:
        if facts == project:
            return kit
    files, modes = render_files(ctx.spec, project)
    kit = {"files": files, "modes": modes}
    done.append((project, kit))
    return kit


def _render_key(ctx: Context, shown: list[bool] | None) -> str | None:
    """The kit's key in the state folder, for what the imported app showed."""
    from flaskprod.spec.repository import subfolder

    digest = context_digest(ctx.cache, ctx.root)
    if digest is None:
        return None
    return memo_key(digest, "kit", str(ctx.root.resolve()), shown, subfolder(ctx.root))


#: What the app may show at import ([Redis loaded, Flask-Migrate loaded]); None: the
#: app was not imported.
_SHOWN: tuple[list[bool] | None, ...] = (
    None,
    *([redis, migrate] for redis in (False, True) for migrate in (False, True)),
)


def _render_ahead(ctx: Context) -> None:
    """While the app is still being imported, and no kept kit can be the answer: render
    from what the sources say. When the import shows nothing more (the usual case: the
    sources already import redis and flask_migrate), that render is the one KIT001
    needs, and it was made while the app's import ran in its own process."""
    stored = stored_key(ctx.root, "kit-render")
    if stored is not None and stored in {_render_key(ctx, shown) for shown in _SHOWN}:
        return  # the kept kit answers, whatever the app shows
    with contextlib.suppress(Exception):  # the render after the import reports errors
        _render(ctx, _static_facts(ctx))


def _fresh_render(ctx: Context) -> tuple[dict[str, str], dict[str, int]]:
    """The kit as ``render`` would write it now (the files ``render --check`` compares,
    :func:`flaskprod.kit.commands.plan_render`), kept in the state folder until the
    project's files, flaskprod or what the app showed at import change: detecting and
    rendering is a third of what ``check`` costs."""
    assert ctx.spec is not None
    if ctx.app_pending is not None:
        _render_ahead(ctx)
    app = ctx.app  # waits for the import (or, in the runner's first pass, ends here)
    shown = None if app is None else ["redis" in app.modules, "migrate" in app.extensions]
    key = _render_key(ctx, shown)
    kept = remembered(ctx.root, "kit-render", key, lambda: _render(ctx, _project_facts(ctx)))
    return kept["files"], kept["modes"]


@rule(
    "KIT001",
    layer="kit",
    level=Level.WARNING,
    title="The rendered kit differs from flaskprod.toml",
    help="The deployment files are rendered from flaskprod.toml: change the spec and run "
    "'flaskprod render' (it refuses to overwrite hand edits unless --force). "
    "'flaskprod render --check' lists the same files.",
    example="deploy/nginx/shop.conf edited by hand after 'flaskprod init'",
    level_reason="warning: what runs is not what flaskprod.toml says (and what check "
    "judged there), and the next render loses or refuses the edit; info when no kit was "
    "rendered yet (nothing deployed from it).",
)
def kit_drift(ctx: Context) -> Iterator[Finding]:
    if ctx.spec is None:
        return  # no spec, no kit: nothing was rendered, nothing is missing
    if not read_manifest(ctx.root):
        yield kit_drift.finding(
            "flaskprod.toml is here but the kit was never rendered (no "
            "deploy/.flaskprod.lock.json): nothing to compare",
            level=Level.INFO,
            hint="Run 'flaskprod render' to write the deployment files it describes.",
            file="flaskprod.toml",
        )
        return
    from flaskprod.kit.write import plan_kit

    try:
        files, modes = _fresh_render(ctx)
        drift = plan_kit(ctx.root, files, modes).drift
    except UserError as error:  # e.g. app.target names no module: render fails the same
        yield kit_drift.finding(
            f"the kit could not be rendered to compare: {error}",
            level=Level.INFO,
            hint="Run 'flaskprod render --check' to see why.",
            file="flaskprod.toml",
        )
        return
    for change in drift:
        why = _REASONS.get(change.action, change.reason)
        if change.action == "update" and change.detail.startswith("mode "):
            why = f"{change.detail}: run 'flaskprod render'"
        yield kit_drift.finding(why, file=change.path)
