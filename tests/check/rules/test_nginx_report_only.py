"""A Content-Security-Policy-Report-Only header (the kit's http.csp_report_only) is a
security header like the enforced one: a location with its own add_header drops it."""

from __future__ import annotations

from pathlib import Path

from deploy_helpers import check, write

SITE = """\
server {
    listen 443 ssl;
    server_name example.com;
    add_header Strict-Transport-Security "max-age=63072000" always;
    add_header Content-Security-Policy-Report-Only "default-src 'self'" always;
    location / { proxy_pass http://127.0.0.1:8000; }
    location /static/ {
        add_header Strict-Transport-Security "max-age=63072000" always;
        add_header Cache-Control "public";
    }
}
"""


def test_a_location_dropping_the_report_only_csp_is_reported(tmp_path: Path) -> None:
    write(tmp_path, {"deploy/nginx/site.conf": SITE})
    found = [f for f in check(tmp_path) if f.id == "NGX008"]
    assert [f.message for f in found] == [
        "location /static/ adds its own headers, so nginx no longer sends "
        "content-security-policy-report-only here"
    ]
