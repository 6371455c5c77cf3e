"""NGX016 agrees with nginx itself: the pairs of locations ``nginx -t`` refuses as
``duplicate location`` are reported, the ones it accepts are not (issue #12, item 5:
``location ^~ /`` beside ``location /`` for a static_url_path of "")."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import check, write

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRAPPER = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16; }}
http {{
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    access_log off;
    include {site};
}}
"""
SITE = """\
server {{
    listen 127.0.0.1:8080;
    server_name example.com;
    location {first} {{ root /srv/app/static; }}
    location {second} {{ proxy_pass http://127.0.0.1:8000; }}
}}
"""
PAIRS = [
    ("^~ /", "/", True),
    ("/static/", "^~ /static/", True),
    ("= /", "= /", True),
    ("@app", "@app", False),  # nginx -t accepts it
    ("= /", "/", False),
    ("~ ^/static/", "^~ /static/", False),
    ("/static", "/static/", False),
    ("~ /x", "~ /x", False),  # regexes are never compared
]


def nginx_refuses(tmp_path: Path, site: Path) -> bool:
    (tmp_path / "tmp").mkdir(parents=True)
    conf = tmp_path / "nginx.conf"
    conf.write_text(WRAPPER.format(prefix=tmp_path, site=site))
    done = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        assert "duplicate location" in done.stderr, done.stderr
    return done.returncode != 0


@pytest.mark.parametrize(("first", "second", "duplicate"), PAIRS)
def test_the_rule_refuses_what_nginx_refuses(
    tmp_path: Path, first: str, second: str, duplicate: bool
) -> None:
    project = tmp_path / "project"
    write(project, {"deploy/nginx/site.conf": SITE.format(first=first, second=second)})
    assert nginx_refuses(tmp_path / "nginx", project / "deploy/nginx/site.conf") is duplicate
    found = [f for f in check(project) if f.id == "NGX016"]
    assert [(f.file, f.line) for f in found] == (
        [("deploy/nginx/site.conf", 5)] if duplicate else []
    )
