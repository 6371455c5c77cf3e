"""nginx rules: every fixture folder, then the cross-layer judgements."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import assert_fixture, check, fixture_cases, ids, write

from flaskprod.check.model import Level


@pytest.mark.parametrize(("rule_id", "side"), fixture_cases("NGX"))
def test_fixture(tmp_path: Path, rule_id: str, side: str) -> None:
    assert_fixture(rule_id, side, tmp_path)


PROXY = """
server {
    listen 443 ssl default_server;
    server_name example.com;
    server_tokens off;
    client_max_body_size 10m;
    location / {
        %s
        proxy_pass %s;
    }
}
"""


def test_proxy_pass_through_upstream_matches_the_socket(tmp_path: Path) -> None:
    conf = "upstream app { server unix:/run/app/g.sock; }\n" + PROXY % ("", "http://app")
    write(tmp_path, {"site.conf": conf, "gunicorn.conf.py": 'bind = "unix:/run/app/g.sock"\n'})
    assert "NGX002" not in ids(check(tmp_path))
    write(tmp_path, {"gunicorn.conf.py": 'bind = "unix:/run/app/other.sock"\n'})
    found = [f for f in check(tmp_path) if f.id == "NGX002"]
    assert len(found) == 1
    assert "unix:/run/app/other.sock" in found[0].message


def test_debian_proxy_params_counts_as_forwarded_headers(tmp_path: Path) -> None:
    write(tmp_path, {"site.conf": PROXY % ("include proxy_params;", "http://127.0.0.1:8000")})
    assert "NGX010" not in ids(check(tmp_path))


def test_no_hsts_is_fine_when_the_app_sends_it(tmp_path: Path) -> None:
    write(tmp_path, {"site.conf": PROXY % ("", "http://127.0.0.1:8000")})
    assert "NGX007" in ids(check(tmp_path))
    write(
        tmp_path,
        {
            "flaskprod.toml": '[app]\ntarget = "wsgi:app"\nname = "app"\n'
            '[http]\nsecurity_headers = "app"\n'
        },
    )
    assert "NGX007" not in ids(check(tmp_path))


def test_short_hsts_max_age(tmp_path: Path) -> None:
    header = 'add_header Strict-Transport-Security "max-age=86400" always;'
    write(tmp_path, {"site.conf": PROXY % (header, "http://127.0.0.1:8000")})
    found = [f for f in check(tmp_path) if f.id == "NGX007"]
    assert len(found) == 1 and "86400" in found[0].message


def test_body_size_default_is_1m_against_the_spec(tmp_path: Path) -> None:
    conf = (PROXY % ("", "http://127.0.0.1:8000")).replace("client_max_body_size 10m;", "")
    write(
        tmp_path,
        {
            "site.conf": conf,
            "flaskprod.toml": '[app]\ntarget = "wsgi:app"\nname = "app"\n[http]\nmax_body = "5M"\n',
        },
    )
    found = [f for f in check(tmp_path) if f.id == "NGX011"]
    assert len(found) == 1
    assert "1m (nginx's default" in found[0].message and "5242880" in found[0].message


def test_server_tokens_in_a_fragment_is_only_info(tmp_path: Path) -> None:
    conf = (PROXY % ("", "http://127.0.0.1:8000")).replace("server_tokens off;", "")
    write(tmp_path, {"site.conf": conf})
    found = [f for f in check(tmp_path) if f.id == "NGX012"]
    assert [f.level for f in found] == [Level.INFO]


def test_alias_traversal_both_directions(tmp_path: Path) -> None:
    conf = """
    server {
        listen 80 default_server;
        location /static { alias /srv/app/static/; }
        location /media/ { alias /srv/app/media; }
        location ~ ^/x/(.*)$ { alias /srv/app/x/$1; }
    }
    """
    write(tmp_path, {"site.conf": conf})
    found = sorted(f.line or 0 for f in check(tmp_path) if f.id == "NGX003")
    assert found == [4, 5]


def test_static_alias_judged_through_the_systemd_working_directory(tmp_path: Path) -> None:
    unit = (
        "[Service]\n"
        "User=app\n"
        "WorkingDirectory=/opt/site\n"
        "ExecStart=/opt/site/venv/bin/gunicorn app:app\n"
    )
    conf = (
        "server { listen 80 default_server; location /static/ { alias /opt/site/pkg/static/; } }\n"
    )
    write(tmp_path, {"app.service": unit, "site.conf": conf, "pkg/static/app.css": "a{}"})
    assert "NGX004" not in ids(check(tmp_path))
    (tmp_path / "pkg/static/app.css").unlink()
    (tmp_path / "pkg/static").rmdir()
    found = [f for f in check(tmp_path) if f.id == "NGX004"]
    assert len(found) == 1 and "pkg/static" in found[0].message


def test_other_services_behind_the_same_nginx_are_not_the_app(tmp_path: Path) -> None:
    conf = """
    server {
        listen 443 ssl default_server;
        server_tokens off;
        add_header Strict-Transport-Security "max-age=63072000" always;
        location / {
            proxy_pass http://unix:/run/app/g.sock;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
        location /grafana/ { proxy_pass http://127.0.0.1:3000; }
    }
    """
    write(tmp_path, {"site.conf": conf, "gunicorn.conf.py": 'bind = "unix:/run/app/g.sock"\n'})
    assert not {"NGX002", "NGX010"} & ids(check(tmp_path))
    # Without any gunicorn bind known, every proxy_pass is judged.
    (tmp_path / "gunicorn.conf.py").unlink()
    assert "NGX010" in ids(check(tmp_path))


def test_each_nginx_config_must_reach_gunicorn(tmp_path: Path) -> None:
    vm = "server { listen 80 default_server; location / { proxy_pass http://unix:/run/a/g.sock; } }"
    box = "server { listen 80 default_server; location / { proxy_pass http://web:9000; } }\n"
    write(
        tmp_path,
        {
            "deploy/nginx/vm.conf": vm,
            "deploy/nginx/compose.conf": box,
            "gunicorn.conf.py": 'bind = ["unix:/run/a/g.sock", "0.0.0.0:8000"]\n',
        },
    )
    found = [f for f in check(tmp_path) if f.id == "NGX002"]
    assert [(f.file, "web:9000" in f.message) for f in found] == [
        ("deploy/nginx/compose.conf", True)
    ]


def test_cipher_strings_and_unset_protocols(tmp_path: Path) -> None:
    weak = "ssl_ciphers ALL:!ADH:RC4+RSA:+HIGH:+EXP;"
    write(tmp_path, {"site.conf": PROXY % (weak, "http://127.0.0.1:8000")})
    found = [f for f in check(tmp_path) if f.id == "NGX006"]
    levels = sorted((f.level, f.message) for f in found)
    assert [level for level, _ in levels] == [Level.INFO, Level.ERROR]
    assert "RC4+RSA" in levels[1][1] and "+EXP" in levels[1][1]
    strong = "server_tokens off; ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers HIGH:!aNULL:!3DES;"
    conf = (PROXY % ("", "http://127.0.0.1:8000")).replace("server_tokens off;", strong)
    write(tmp_path, {"site.conf": conf})
    assert "NGX006" not in ids(check(tmp_path))


def test_static_alias_with_the_code_in_a_subfolder(tmp_path: Path) -> None:
    # WorkingDirectory is the src/ folder on the server; the alias names the real
    # folder, found by its tail in the project: no false alarm.
    unit = (
        "[Service]\nUser=app\nWorkingDirectory=/srv/site/src\n"
        "ExecStart=/srv/site/venv/bin/gunicorn app:app\n"
    )
    conf = (
        "server { listen 80 default_server; "
        "location /static/ { alias /srv/site/src/pkg/static/; } }\n"
    )
    write(tmp_path, {"app.service": unit, "site.conf": conf, "src/pkg/static/a.css": "a{}"})
    assert "NGX004" not in ids(check(tmp_path))
    # A host folder mounted into a compose nginx is not the project's: not judged.
    compose = (
        "services:\n  nginx:\n    image: nginx:1.27\n    restart: always\n"
        "    volumes: ['/srv/shared/static:/usr/share/nginx/static:ro']\n"
    )
    conf2 = (
        "server { listen 80 default_server; location /static/ { alias /usr/share/nginx/static/; } }"
    )
    write(tmp_path / "two", {"compose.yaml": compose, "site.conf": conf2})
    assert "NGX004" not in ids(check(tmp_path / "two"))


def test_the_projects_own_site_is_not_held_to_the_kits_max_body(tmp_path: Path) -> None:
    """CTFd after init: its own conf/nginx/http.conf allows 4G; flaskprod.toml's
    max_body (10M) is what the kit's site enforces, not the project's (the app, not
    imported, gives no MAX_CONTENT_LENGTH to compare with)."""
    conf = (PROXY % ("", "http://127.0.0.1:8000")).replace(
        "client_max_body_size 10m;", "client_max_body_size 4G;"
    )
    spec = '[app]\ntarget = "wsgi:app"\nname = "app"\n[http]\nmax_body = "10M"\n'
    write(tmp_path, {"conf/nginx/http.conf": conf, "flaskprod.toml": spec})
    alone = [f for f in check(tmp_path) if f.id == "NGX011"]
    assert [f.file for f in alone] == ["conf/nginx/http.conf"]  # no kit: the spec governs all
    manifest = '{"files": {"deploy/nginx/app.conf": "0"}}\n'
    write(tmp_path, {"deploy/.flaskprod.lock.json": manifest})
    assert [f for f in check(tmp_path) if f.id == "NGX011"] == []
