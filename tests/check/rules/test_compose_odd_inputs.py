"""Valid-but-odd and invalid shapes in every deployment format (types YAML allows,
empty directives, lists where mappings go, empty assignments): the rules never crash,
and still report what they can, each finding with a file and a line."""

from __future__ import annotations

from pathlib import Path

from deploy_helpers import check, ids, write

ODD = {
    "Dockerfile": (
        "FROM scratch\nENV\nARG\nUSER\nHEALTHCHECK NONE\nCMD\nENTRYPOINT []\nADD\nCOPY\n"
    ),
    "Procfile": ("web gunicorn\nrelease: gunicorn\n: gunicorn -b\nweb: gunicorn -w\n"),
    "compose.yaml": (
        "services:\n"
        "  web:\n"
        "    image: 123\n"
        "    ports:\n"
        "      - 8000\n"
        "      - target: 8000\n"
        '        published: "8080"\n'
        "        protocol: tcp\n"
        "    environment:\n"
        "      - JUST_A_NAME\n"
        "      - PASSWORD\n"
        "      - SECRET_KEY=\n"
        "    volumes:\n"
        "      - type: bind\n"
        "        source: /var/run/docker.sock\n"
        "        target: /var/run/docker.sock\n"
        "    depends_on:\n"
        "      db:\n"
        "        condition: service_started\n"
        "    command: 42\n"
        "    deploy:\n"
        "      restart_policy:\n"
        "        condition: on-failure\n"
        "  db: null\n"
        "  redis:\n"
        "    image: redis\n"
        '    ports: "6379:6379"\n'
        "    healthcheck: {disable: true}\n"
        "x-list: [1, 2]\n"
    ),
    "docker-compose.override.yml": ("- just\n- a list\n"),
    "gunicorn.conf.py": (
        'bind = ["0.0.0.0:80", some_var]\n'
        'workers = "four"\n'
        "timeout = None\n"
        "threads = -1\n"
        "worker_class = 7\n"
        'max_requests = "1000"\n'
        'forwarded_allow_ips = ["*"]\n'
        "preload_app = 1\n"
    ),
    "nginx.conf": (
        "http {\n"
        "  upstream u { server; }\n"
        "  server {\n"
        "    listen;\n"
        "    listen unix:/tmp/x.sock;\n"
        "    server_name;\n"
        "    ssl_protocols;\n"
        "    ssl_ciphers;\n"
        "    add_header;\n"
        "    proxy_set_header;\n"
        "    client_max_body_size abc;\n"
        "    location { alias; }\n"
        "    location /a { proxy_pass; }\n"
        "    location /b { proxy_pass http://u; proxy_buffering off; }\n"
        "    location /c { proxy_pass http://$host; }\n"
        "    location /d { proxy_pass http://[::1]:8000; }\n"
        "    location = /e { alias /x/; }\n"
        "    if ($x) { add_header X 1; }\n"
        "  }\n"
        "}\n"
    ),
    "weird.service": (
        "[Service]\n"
        "ExecStart=\n"
        "ExecStart=-@/usr/bin/gunicorn --bind= wsgi:app\n"
        "User=\n"
        "EnvironmentFile=\n"
        "WorkingDirectory=~\n"
        'Environment="A=1 B=2" C\n'
        "[Unit]\n"
        "After=\n"
    ),
}


def test_odd_inputs_never_crash(tmp_path: Path) -> None:
    write(tmp_path, ODD)
    found = check(tmp_path)
    assert "FP000" not in ids(found), [f.message for f in found if f.id == "FP000"]
    assert all(f.file and f.line for f in found)
    # What can be judged still is: the Docker socket, the list-shaped compose file.
    assert {"CMP007", "CMP001", "SYS002"} <= ids(found)
    # An empty --bind= or CMD is not a finding about an empty value.
    assert not [f for f in found if f.id in ("GUN003", "GUN004", "DOC006")]
