"""The committed kit of examples/shop is exactly what rendering its spec gives today.

When a template, the spec model or the shop changes, this fails until the kit is
re-rendered and committed: ``flaskprod render examples/shop`` (then review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flaskprod.kit.commands import render_files
from flaskprod.kit.write import MANIFEST, plan_kit
from flaskprod.spec.detect import detect_project
from flaskprod.spec.load import load_spec

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def test_the_committed_shop_kit_matches_a_fresh_render() -> None:
    spec = load_spec(SHOP / "flaskprod.toml")
    project = detect_project(SHOP, spec.app.target)
    files, modes = render_files(spec, project)
    plan = plan_kit(SHOP, files, modes)
    drift = plan.drift
    listed = ", ".join(f"{change.path} ({change.detail or change.action})" for change in drift)
    assert not drift, (
        f"examples/shop's kit is stale: {listed}. Run 'flaskprod render examples/shop' "
        "and commit the result."
    )
    assert (SHOP / MANIFEST).read_text() == plan.manifest  # .dockerignore: as merged


def test_the_shop_spec_is_what_init_detects() -> None:
    spec = load_spec(SHOP / "flaskprod.toml")
    project = detect_project(SHOP, spec.app.target, introspect=False)
    assert spec.app.target == project.target == "wsgi:app"
    assert spec.app.name == "shop"
    assert spec.paths.static_dir == project.static_dir == "shop/static"


def test_the_kit_does_not_depend_on_the_machine_that_renders_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = load_spec(SHOP / "flaskprod.toml")
    project = detect_project(SHOP, spec.app.target, introspect=False)
    rendered = []
    for cores in (2, 8):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        rendered.append(render_files(spec, project)[0])
    assert rendered[0] == rendered[1]
