"""Writing flaskprod.toml from the model: every setting visible, explained, round-tripping."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import BaseModel

from flaskprod.spec.load import parse_spec
from flaskprod.spec.model import Spec
from flaskprod.spec.write import render_spec, toml_value, workers_reasoning


def minimal() -> Spec:
    return Spec.model_validate({"app": {"target": "shop:create_app()", "name": "shop"}})


def custom() -> Spec:
    return Spec.model_validate(
        {
            "app": {"target": "wsgi:app", "name": "blog", "domains": ["a.example", "b.example"]},
            "server": {
                "kind": "gunicorn",
                "workers": 3,
                "worker_class": "sync",
                "bind": "127.0.0.1:8001",
            },
            "paths": {"static_dir": "blog/static", "static_url": "/assets/"},
            "http": {
                "max_body": "16m",
                "csp": "default-src 'self'; img-src \"data:\" \\",
                "rate_limits": {"search": {"rate": "5r/s", "burst": 1}},
            },
            "redis": {"enabled": False},
            "ignore": {"NGX004": "TLS ends at the load balancer", "odd key": "quoted"},
        }
    )


@pytest.mark.parametrize("spec", [minimal(), custom()], ids=["defaults", "custom"])
def test_the_written_spec_loads_back_identical(spec: Spec) -> None:
    assert parse_spec(render_spec(spec)) == spec


def test_rendering_is_deterministic() -> None:
    assert render_spec(custom(), cpus=2) == render_spec(custom(), cpus=2)


def _all_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _all_fields(annotation, f"{prefix}{name}.")
        else:
            found.append((f"{prefix}{name}", field.description or ""))
    return found


def test_every_setting_is_visible_with_its_description() -> None:
    text = render_spec(minimal(), cpus=2)
    lines = text.splitlines()
    comments = " ".join(line[2:] for line in lines if line.startswith("# "))
    for path, description in _all_fields(Spec):
        section, _, key = path.rpartition(".")
        if section:
            header = lines.index(f"[{section}]")
            body = lines[header + 1 :]
            body = body[: next((i for i, line in enumerate(body) if line.startswith("[")), None)]
            assert (
                any(line.startswith((f"{key} = ", f"# {key} = ")) for line in body)
                or f"[{section}.{key}." in text
            ), f"{path} is not in the written spec"
        else:
            assert f"[{key}]" in text
        # Descriptions are wrapped, so compare their words.
        assert " ".join(description.split()) in " ".join(comments.split()), path


def test_unset_workers_is_explained_for_this_machine() -> None:
    gunicorn = {
        "app": {"target": "shop:create_app()", "name": "shop"},
        "server": {"kind": "gunicorn"},
    }
    text = render_spec(Spec.model_validate(gunicorn), cpus=2)
    assert (
        "# workers: unset = one per core, at least 2, for gthread (this machine: 2 cores -> 2)\n"
        "# workers = 2\n"
    ) in text
    assert "\nworkers =" not in text  # unset stays unset: the comment is not a value


def test_workers_reasoning_follows_the_model() -> None:
    assert workers_reasoning("sync", 4).endswith("(this machine: 4 cores -> 9)")
    assert workers_reasoning("gevent", 1).endswith("(this machine: 1 cores -> 2)")


def test_ranges_and_choices_come_from_the_model() -> None:
    text = render_spec(minimal())
    assert "(one of: sync, gthread, gevent)" in " ".join(text.replace("# ", "").split())
    assert "(one of: gunicorn, granian)" in text
    assert "# Processes; unset: computed from the machine. (1 to 64)" in text


@pytest.mark.parametrize(
    "value", ["plain", 'it\'s "quoted" \\ back', "line\nbreak\ttab", "ünïcode", 0, True, ["a", "b"]]
)
def test_toml_value_round_trips(value: object) -> None:
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value


def test_a_granian_spec_writes_the_gunicorn_settings_as_comments() -> None:
    spec = Spec.model_validate(
        {"app": {"target": "wsgi:app", "name": "shop"}, "server": {"kind": "granian"}}
    )
    text = render_spec(spec, cpus=2)
    for key in ("worker_class", "keepalive", "max_requests", "max_requests_jitter", "preload_app"):
        assert f"\n# {key} = " in text and f"\n{key} = " not in text, key
    assert "# workers: unset = one per core, at least 2, for granian" in text
    assert parse_spec(text) == spec  # and it loads back (a written key would be refused)
