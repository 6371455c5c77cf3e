"""Loading flaskprod.toml: every error is one line naming file, key path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from flaskprod.errors import ExitCode, SpecError
from flaskprod.spec.load import load_spec, parse_spec
from flaskprod.spec.model import Spec

APP = '[app]\ntarget = "shop:create_app()"\nname = "shop"\n'


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert caught.value.exit_code == ExitCode.USAGE
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_minimal_spec_loads_with_the_model_defaults() -> None:
    spec = parse_spec(APP)
    assert spec == Spec.model_validate({"app": {"target": "shop:create_app()", "name": "shop"}})
    assert spec.server.threads == 4
    assert spec.app.domains == ["localhost"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        # range (greater_than_equal / less_than_equal)
        ("[server]\nworkers = 0", "flaskprod.toml: server.workers: must be at least 1 (got 0)"),
        ("[server]\nthreads = 65", "flaskprod.toml: server.threads: must be at most 64 (got 65)"),
        # unknown keys, with and without a close match
        (
            "[server]\nwokers = 2",
            "flaskprod.toml: server.wokers: unknown key (did you mean 'workers'?)",
        ),
        ("[serverr]\n", "flaskprod.toml: serverr: unknown key (did you mean 'server'?)"),
        (
            "[http.rate_limits.api]\nrate = '1r/s'\nburts = 3",
            "flaskprod.toml: http.rate_limits.api.burts: unknown key (did you mean 'burst'?)",
        ),
        (
            "[redis]\nzzz = 1",
            "flaskprod.toml: redis.zzz: unknown key (expected one of: enabled, local, "
            "maxmemory, maxmemory_policy)",
        ),
        # types: TOML is typed, "4" is not an integer
        (
            '[server]\nthreads = "four"',
            'flaskprod.toml: server.threads: must be an integer (got "four")',
        ),
        ('[server]\nthreads = "4"', 'flaskprod.toml: server.threads: must be an integer (got "4")'),
        ("[server]\ntimeout = 2.5", "flaskprod.toml: server.timeout: must be an integer (got 2.5)"),
        (
            '[server]\npreload_app = "yes"',
            'flaskprod.toml: server.preload_app: must be true or false (got "yes")',
        ),
        ("[http]\ncsp = 3", "flaskprod.toml: http.csp: must be a string (got 3)"),
        (
            '[app]\ntarget = "a:b"\nname = "x"\ndomains = "example.com"',
            'flaskprod.toml: app.domains: must be a list, e.g. ["a", "b"] (got "example.com")',
        ),
        ("server = 3\n" + APP, "flaskprod.toml: server: must be a table (got 3)"),
        # literal_error
        (
            '[server]\nworker_class = "eventlet"',
            "flaskprod.toml: server.worker_class: must be one of 'sync', 'gthread', 'gevent' "
            '(got "eventlet")',
        ),
        # string_pattern_mismatch, said in words
        (
            '[paths]\nstatic_url = "static/"',
            "flaskprod.toml: paths.static_url: must be a URL path starting with '/' "
            '(got "static/")',
        ),
        (
            '[http.rate_limits.api]\nrate = "10/s"',
            "flaskprod.toml: http.rate_limits.api.rate: must be a rate like '10r/s' or '5r/m' "
            '(got "10/s")',
        ),
        (
            '[container]\npython_image = "python:latest"',
            "flaskprod.toml: container.python_image: must be a pinned slim Python image like "
            "'python:3.11.11-slim-bookworm' (got \"python:latest\")",
        ),
        # value_error: the validator's own message
        (
            '[server]\nbind = "localhost"',
            "flaskprod.toml: server.bind: must be 'unix:/path.sock' or 'host:port' "
            "(got 'localhost')",
        ),
        (
            '[paths]\nstatic_url = "/assets"',
            "flaskprod.toml: paths.static_url: must end with '/' so nginx's alias maps it "
            "safely (got '/assets')",
        ),
        # missing
        (
            "[http.rate_limits.api]\nburst = 3",
            "flaskprod.toml: http.rate_limits.api.rate: is required",
        ),
        # a setting of the other app server (server.kind) is refused by name
        (
            '[server]\nkind = "granian"\nworker_class = "gevent"',
            "flaskprod.toml: server.worker_class: only applies to gunicorn, and server.kind "
            "is 'granian' (granian runs server.threads blocking threads per worker, like "
            "gthread); remove it, or set kind = 'gunicorn'",
        ),
        (
            '[server]\nkind = "granian"\nmax_requests = 1000',
            "flaskprod.toml: server.max_requests: only applies to gunicorn, and server.kind "
            "is 'granian' (granian cannot recycle a worker by request count: use "
            "server.workers_lifetime (seconds) or server.workers_max_rss (MiB)); remove it, "
            "or set kind = 'gunicorn'",
        ),
        (
            '[server]\nkind = "granian"\npreload_app = true',
            "flaskprod.toml: server.preload_app: only applies to gunicorn, and server.kind is "
            "'granian' (granian imports the app in each worker (no preload)); remove it, or "
            "set kind = 'gunicorn'",
        ),
        (
            '[server]\nkind = "gunicorn"\nworkers_lifetime = 3600',
            "flaskprod.toml: server.workers_lifetime: only applies to granian, and server.kind "
            "is 'gunicorn' (gunicorn recycles workers by request count: use "
            "server.max_requests); remove it, or set kind = 'granian'",
        ),
        (
            '[server]\nkind = "granian"\nworkers_lifetime = 30',
            "flaskprod.toml: server.workers_lifetime: must be at least 60 (got 30)",
        ),
        (
            '[server]\nkind = "uwsgi"',
            "flaskprod.toml: server.kind: must be one of 'gunicorn', 'granian' (got \"uwsgi\")",
        ),
        (
            '[app]\ntarget = "shop:create_app(1)"\nname = "x"\n[server]\nkind = "granian"',
            "flaskprod.toml: app.target: granian calls a factory without arguments (got "
            "'shop:create_app(1)'); use 'module:create_app()' or 'module:app', or set "
            "server.kind = 'gunicorn'",
        ),
        # a check across sections names its keys itself
        (
            '[deploy]\npython_version = "3.12"',
            "flaskprod.toml: container.python_image must be a Python 3.12 image, like "
            "deploy.python_version (got 'python:3.11.11-slim-bookworm')",
        ),
    ],
)
def test_each_problem_gives_one_exact_line(toml: str, message: str) -> None:
    text = toml if "[app]" in toml else APP + toml
    assert error_of(text) == message


def test_missing_app_section_is_required() -> None:
    assert error_of("[server]\nworkers = 2\n") == "flaskprod.toml: app: is required"


def test_bad_name_and_target_are_said_in_words() -> None:
    assert error_of('[app]\ntarget = "shop"\nname = "shop"\n') == (
        "flaskprod.toml: app.target: must be 'module:app' or 'module:create_app()' (got \"shop\")"
    )
    assert error_of('[app]\ntarget = "a:b"\nname = "My Shop"\n') == (
        "flaskprod.toml: app.name: must be lowercase letters, digits and '-', starting with "
        'a letter, at most 31 characters (got "My Shop")'
    )


def test_empty_domains_list() -> None:
    assert error_of('[app]\ntarget = "a:b"\nname = "x"\ndomains = []\n') == (
        "flaskprod.toml: app.domains: must have at least 1 item (got [])"
    )


def test_invalid_toml_names_the_line() -> None:
    text = APP + "\n[server]\nworkers = 2\nthreads 4\n"
    message = error_of(text)
    assert message.startswith("flaskprod.toml:7: invalid TOML: ")
    assert "(at line" not in message


def test_invalid_toml_at_the_end() -> None:
    assert error_of(APP + "x = ").startswith("flaskprod.toml: invalid TOML: ")


def test_load_spec_uses_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "flaskprod.toml"
    path.write_text(APP + "[server]\nworkers = 0\n")
    with pytest.raises(SpecError, match=r"^flaskprod.toml: server.workers: must be at least 1"):
        load_spec(path)
    path.write_text(APP + "[server]\nworkers = 3\n")
    assert load_spec(path).server.workers == 3


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "flaskprod.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'flaskprod.toml'}: not found (run 'flaskprod init' to write one)"
    )


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "flaskprod.toml"
    path.write_bytes(b"\xff\xfe[app]")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(path)


def test_granian_takes_the_shared_settings_and_its_own() -> None:
    spec = parse_spec(
        APP + '[server]\nkind = "granian"\nworkers = 3\nthreads = 6\nworkers_lifetime = 3600\n'
    )
    assert spec.server.kind == "granian" and spec.server.workers_lifetime == 3600
    # the gunicorn-only settings keep their defaults, unused
    assert spec.server.concurrency == "granian" and spec.server.effective_workers == 3
