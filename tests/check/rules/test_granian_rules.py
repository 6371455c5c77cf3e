"""granian rules, the reading of granian command lines, and gunicorn's rules staying
quiet on a granian deployment (and granian's on a gunicorn one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import (
    assert_fixture,
    check,
    context,
    fixture_cases,
    fixture_copy,
    ids,
    write,
)

from flaskprod.check.parsers.granian import granian_setups


@pytest.mark.parametrize(("rule_id", "side"), fixture_cases("GRN"))
def test_fixture(tmp_path: Path, rule_id: str, side: str) -> None:
    assert_fixture(rule_id, side, tmp_path)


def test_command_lines_are_read_everywhere(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "wsgi.py": "from flask import Flask\napp = Flask(__name__)\n",
            "Procfile": "web: python -m flaskprod.serve --interface wsgi --host 0.0.0.0 "
            "--port $PORT --respawn-failed-workers wsgi:app\n",
            "Dockerfile": "FROM python:3.11-slim\nENV GRANIAN_INTERFACE=wsgi\n"
            'CMD ["granian", "--host=0.0.0.0", "--port", "8000", "--no-ws", "wsgi:app"]\n',
        },
    )
    by_origin = {s.origin: s for s in granian_setups(context(tmp_path))}
    paas, image = by_origin["procfile"], by_origin["dockerfile"]
    assert paas.launcher and paas.binds == ["0.0.0.0:$PORT"] and paas.target == "wsgi:app"
    assert paas.setting("--respawn-failed-workers") is True
    assert not image.launcher and image.binds == ["0.0.0.0:8000"]
    assert image.interface == "wsgi"  # from GRANIAN_INTERFACE, as click reads it
    assert image.setting("--ws") is False


def test_gunicorn_rules_stay_quiet_on_a_granian_deployment(tmp_path: Path) -> None:
    """A gunicorn config for local runs (the shop's gunicorn_local.py) is not the
    deployment's when flaskprod.toml says granian: GUN009 judged it before."""
    root = fixture_copy("GRN004", "pass", tmp_path)
    write(root, {"gunicorn.conf.py": "workers = 2\n"})  # no max_requests: GUN009 bait
    found = check(root)
    assert not {i for i in ids(found) if i.startswith("GUN")}, found
    assert not {i for i in ids(found) if i.startswith("GRN")}, found


def test_granian_rules_stay_quiet_on_a_gunicorn_deployment(tmp_path: Path) -> None:
    root = fixture_copy("GUN009", "pass", tmp_path)
    assert not {i for i in ids(check(root)) if i.startswith("GRN")}


def test_nginx_upstream_must_reach_granian(tmp_path: Path) -> None:
    """NGX002 knows granian's address: an upstream to another socket is reported,
    naming granian; the same socket is not."""
    root = fixture_copy("GRN002", "pass", tmp_path)
    site = (
        "upstream app {{ server unix:{sock} fail_timeout=0; keepalive 16; }}\n"
        "server {{ listen 80; server_name example.com; location / {{ proxy_pass http://app; }} }}\n"
    )
    write(root, {"deploy/nginx/app.conf": site.format(sock="/run/app/gunicorn.sock")})
    missed = [f for f in check(root) if f.id == "NGX002"]
    assert [f.message for f in missed] == [
        "proxy_pass goes to unix:/run/app/gunicorn.sock, but granian listens on "
        "unix:/run/app/app.sock"
    ]
    write(root, {"deploy/nginx/app.conf": site.format(sock="/run/app/app.sock")})
    assert "NGX002" not in ids(check(root))


def test_pool_rule_counts_granian_threads(tmp_path: Path) -> None:
    """PRJ008 works off the spec: a granian worker's pool is threads + 1."""
    from flaskprod.check.runner import CheckOptions, run_checks

    spec = '[app]\ntarget = "wsgi:app"\nname = "app"\n\n[server]\nkind = "granian"\n'
    write(tmp_path, {"wsgi.py": "from flask import Flask\napp = Flask(__name__)\n"})
    write(tmp_path, {"flaskprod.toml": spec + "workers = 12\nthreads = 8\n"})
    options = CheckOptions(root=tmp_path, select=("PRJ008",), no_import=True)
    (finding,) = run_checks(options).findings
    assert finding.message == (
        "12 workers x (pool 8 + overflow 1) = 108 connections, plus 5 reserved, exceed "
        "database.max_connections = 100"
    )
    write(tmp_path, {"flaskprod.toml": spec + "workers = 10\nthreads = 8\n"})  # 90 + 5
    assert run_checks(options).findings == []


def test_no_upstream_keepalive_in_front_of_granian(tmp_path: Path) -> None:
    """NGX015: granian's workers are threaded, so nginx should keep connections open."""
    root = fixture_copy("GRN002", "pass", tmp_path)
    site = (
        "server {{ listen 80; server_name example.com; location / {{ proxy_pass {to}; "
        'proxy_http_version 1.1; proxy_set_header Connection ""; }} }}\n{upstream}'
    )
    write(
        root,
        {"deploy/nginx/app.conf": site.format(to="http://unix:/run/app/app.sock", upstream="")},
    )
    (finding,) = [f for f in check(root) if f.id == "NGX015"]
    assert finding.message == "nginx opens a new connection to granian for every request"
    upstream = "upstream app { server unix:/run/app/app.sock; keepalive 16; }\n"
    write(root, {"deploy/nginx/app.conf": site.format(to="http://app", upstream=upstream)})
    assert "NGX015" not in ids(check(root))
