"""Compiled templates are kept in the user's cache folder, as .pyc files are: the same
kit comes out with or without them, and a cache that cannot be written is no error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flaskprod.kit import render
from flaskprod.spec.model import Spec

SPEC = Spec.model_validate({"app": {"target": "wsgi:app", "name": "shop"}})


@pytest.fixture
def fresh_environment() -> Iterator[None]:
    render._environment.cache_clear()  # its cache folder is chosen once per process
    yield
    render._environment.cache_clear()


def test_templates_compile_once_into_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_environment: None
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = render.render_kit(SPEC)
    folder = tmp_path / "cache" / "flaskprod" / "templates"
    kept = sorted(folder.iterdir())
    assert kept and all(path.name.endswith(".cache") for path in kept)
    assert folder.stat().st_mode & 0o777 == 0o700
    render._environment.cache_clear()  # a new process: loads what the first compiled
    assert render.render_kit(SPEC) == first
    assert sorted(folder.iterdir()) == kept


def test_an_unwritable_cache_only_costs_the_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_environment: None
) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the folder would be\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    with_cache = render.render_kit(SPEC)
    render._environment.cache_clear()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    assert render.render_kit(SPEC) == with_cache
