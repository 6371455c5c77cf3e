"""Which deployment a file belongs to: flaskprod's kit, or the project's own.

After ``flaskprod init`` a project holds two deployments side by side: the kit
(``deploy/``, listed in ``deploy/.flaskprod.lock.json``) and whatever the project already
shipped (its own nginx site, its dev compose.yaml, its ``.env.prod-sample``). Rules that
pair files across layers (the proxy in front of a gunicorn, the compose service that
runs it, the env template standing in for the server's env file) must pair files of the
SAME deployment: the kit's gunicorn is not behind the project's nginx.
"""

from __future__ import annotations

import json
from pathlib import Path

from flaskprod.check.context import Context
from flaskprod.check.parsers import cached
from flaskprod.spec.model import SPEC_FILENAME, Spec
from flaskprod.spec.rendered import MANIFEST

_KIT_FOLDER = Path(MANIFEST).parent.name  # "deploy"


def _manifests(ctx: Context) -> set[Path]:
    """Kit manifests: the root's, and one beside any discovered file under a deploy/
    folder (a kit rendered in a subfolder, e.g. services/web/deploy)."""
    found = {ctx.root / MANIFEST}
    for paths in ctx.files.values():
        for path in paths:
            for parent in path.parents:
                if parent.name == _KIT_FOLDER:
                    found.add(parent / Path(MANIFEST).name)
                if parent == ctx.root:
                    break
    return {path for path in found if path.is_file()}


def kit_roots(ctx: Context) -> list[Path]:
    """Folders a kit was rendered for (where its flaskprod.toml is), the root's first."""
    return sorted((m.parent.parent for m in _manifests(ctx)), key=lambda p: len(p.parts))


def _kits(ctx: Context) -> dict[Path, frozenset[Path]]:
    """Each kit's project folder -> the files rendered into it (absolute, resolved)."""
    kits: dict[Path, frozenset[Path]] = {}
    for manifest in _manifests(ctx):
        base = manifest.parent.parent  # paths in it are relative to the kit's project
        try:
            listed = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError, AttributeError):
            continue  # a broken manifest is init's to report; nothing is the kit's
        if isinstance(listed, dict):
            kits[base.resolve()] = frozenset((base / name).resolve() for name in listed)
    return kits


def kit_files(ctx: Context) -> frozenset[Path]:
    """Every file flaskprod rendered into the project (absolute, resolved)."""
    kits = cached(ctx, "deployments.kits", lambda: _kits(ctx))
    return frozenset().union(*kits.values()) if kits else frozenset()


def kit_root_of(ctx: Context, path: Path) -> Path | None:
    """The folder of the kit that rendered ``path`` (its flaskprod.toml's folder, where
    the kit's relative paths start: services/web for a kit rendered there), or None for
    a file of the project's own."""
    kits = cached(ctx, "deployments.kits", lambda: _kits(ctx))
    resolved = path.resolve()
    return next((root for root, files in kits.items() if resolved in files), None)


def is_kit(ctx: Context, path: Path) -> bool:
    return path.resolve() in kit_files(ctx)


def same_deployment(ctx: Context, first: Path, second: Path) -> bool:
    """Both files are the kit's, or both the project's own."""
    return is_kit(ctx, first) == is_kit(ctx, second)


def spec_governs(ctx: Context, path: Path) -> bool:
    """flaskprod.toml describes the kit: once a kit is rendered, the project's own
    launchers (its Procfile, boot.sh, supervisor program) are not held to it."""
    return not kit_files(ctx) or is_kit(ctx, path)


def kit_health_paths(ctx: Context, path: Path) -> set[str]:
    """The health and readiness paths the spec of the kit that rendered ``path`` names
    (the project's own file: the spec's at the root, if any). Whether the app answers
    them is APP011's to say, once; rules judging a probe or HEALTHCHECK of the kit skip
    them. A kit in a subfolder (services/web) has its spec there, read once."""
    root = kit_root_of(ctx, path)
    if root is None or root == ctx.root:
        spec = ctx.spec
    else:
        spec = cached(ctx, f"deployments.spec:{root}", lambda: _spec_at(root))
    return {spec.http.health_path, spec.http.ready_path} if spec is not None else set()


def _spec_at(root: Path) -> Spec | None:
    from flaskprod.errors import UserError
    from flaskprod.spec.load import load_spec

    try:
        return load_spec(root / SPEC_FILENAME)
    except (UserError, OSError):
        return None  # an invalid spec of a subfolder: its own check reports it
