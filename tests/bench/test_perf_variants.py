"""The full run's gunicorn rows: with granian the shop's default, each worker model is
the shop switched to server.kind = "gunicorn" with that worker_class (a spec flaskprod
accepts, whose kit is gunicorn's), named flaskprod/gunicorn-<class>; --models alike."""

from __future__ import annotations

from pathlib import Path

from bench.perf import run
from bench.perf.stacks import GRANIAN_EDITS, copy_shop, gunicorn_edits, load_spec
from flaskprod.kit.render import render_kit


def test_the_gunicorn_rows_are_gunicorn_specs(tmp_path: Path) -> None:
    for worker_class in ("sync", "gthread", "gevent"):
        project = copy_shop(tmp_path / worker_class, gunicorn_edits(worker_class))
        spec = load_spec(project)
        assert spec.server.kind == "gunicorn"
        assert spec.server.worker_class == worker_class
        assert spec.server.preload_app and spec.server.max_requests == 2000
        kit = render_kit(spec)
        assert f'worker_class = "{worker_class}"' in kit["deploy/gunicorn.conf.py"]


def test_the_default_stack_is_granian_and_granian_edits_still_apply(tmp_path: Path) -> None:
    assert load_spec(copy_shop(tmp_path / "default")).server.kind == "granian"
    spec = load_spec(copy_shop(tmp_path / "granian", GRANIAN_EDITS))
    assert spec.server.kind == "granian"
    assert "deploy/gunicorn.conf.py" not in render_kit(spec)


def test_the_variants_cover_every_gunicorn_model_beside_granian(tmp_path: Path) -> None:
    spec = load_spec(copy_shop(tmp_path))
    names = [name for _make, workloads, _rates, name in run._variants(None, spec.server, {})]  # type: ignore[arg-type]
    assert names == [
        "flaskprod/gunicorn-sync",
        "flaskprod/gunicorn-gthread",
        "flaskprod/gunicorn-gevent",
    ]
    gthread = spec.server.model_copy(update={"kind": "gunicorn", "worker_class": "gthread"})
    names = [name for *_rest, name in run._variants(None, gthread, {})]  # type: ignore[arg-type]
    assert names == ["flaskprod/gunicorn-sync", "flaskprod/gunicorn-gevent"]
