"""compose rules, the YAML reader, and a mixed compose project judged in context."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import assert_fixture, check, context, fixture_cases, ids, write

from flaskprod.check.model import Level
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.check.rules.compose import duration
from flaskprod.launch.compose import parse_compose_text


@pytest.mark.parametrize(("rule_id", "side"), fixture_cases("CMP"))
def test_fixture(tmp_path: Path, rule_id: str, side: str) -> None:
    assert_fixture(rule_id, side, tmp_path)


def test_anchors_merge_keys_and_lines(tmp_path: Path) -> None:
    text = (
        "x-common: &common\n  restart: unless-stopped\n  environment:\n    LOG: info\n"
        "services:\n  web:\n    <<: *common\n    image: app:1\n  worker:\n    <<: *common\n"
    )
    compose = parse_compose_text(tmp_path / "compose.yaml", text)
    assert compose.error is None
    assert compose.services["worker"]["restart"] == "unless-stopped"
    assert compose.line("web", "image") == 8
    assert compose.line("worker") == 9


def test_bad_yaml_is_one_finding(tmp_path: Path) -> None:
    write(tmp_path, {"compose.yaml": "services:\n  web:\n    image: a\n   bad: [\n"})
    found = [f for f in check(tmp_path) if f.id == "CMP001"]
    assert len(found) == 1 and found[0].line is not None


def test_interpolated_and_file_secrets_are_fine(tmp_path: Path) -> None:
    text = """
services:
  db:
    image: postgres:16
    restart: always
    environment:
      - POSTGRES_PASSWORD=${POSTGRES_PASSWORD:?set it}
      - POSTGRES_PASSWORD_FILE=/run/secrets/pg
  web:
    image: app:1
    restart: always
    environment:
      DATABASE_URL: postgresql://app:hunter2@db/app
      SECRET_KEY: "${SECRET_KEY}"
"""
    write(tmp_path, {"compose.yaml": text})
    found = [f for f in check(tmp_path) if f.id == "CMP004"]
    assert [(f.line, "DATABASE_URL" in f.message) for f in found] == [(13, True)]


MIXED = {
    "wsgi.py": "from flask import Flask\napp = Flask(__name__)\n",
    "requirements.txt": "flask==3.1.3\ngunicorn==23.0.0\n",
    "Dockerfile": """\
        FROM python:3.11-slim
        WORKDIR /app
        COPY requirements.txt .
        RUN pip install --no-cache-dir -r requirements.txt
        COPY . .
        USER 10001
        HEALTHCHECK CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/')"
        CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "3", "--forwarded-allow-ips", "*", \
             "--max-requests", "1000", "--max-requests-jitter", "100", "wsgi:app"]
        """,
    "compose.yaml": """\
        services:
          web:
            build: .
            expose: ["8000"]
            restart: unless-stopped
          nginx:
            image: nginx:1.27
            ports: ["80:80"]
            volumes: ["./nginx.conf:/etc/nginx/conf.d/default.conf:ro"]
            depends_on: [web]
            restart: unless-stopped
        """,
    "nginx.conf": """\
        server {
            listen 80 default_server;
            server_tokens off;
            location / {
                proxy_pass http://web:8000;
                proxy_set_header Host $host;
                proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                proxy_set_header X-Forwarded-Proto $scheme;
            }
        }
        """,
}


def test_mixed_project_binding_all_interfaces_inside_the_container(tmp_path: Path) -> None:
    write(tmp_path, MIXED)
    found = check(tmp_path)
    # gunicorn on 0.0.0.0:8000 in the container, reached as web:8000 by the compose
    # nginx, trusting '*' (only the proxy can reach it): all right.
    assert not {"GUN003", "GUN004", "GUN007", "NGX002", "CMP009", "FP000"} & ids(found), found
    # Plain HTTP only is still worth a warning (TLS may end at a load balancer).
    assert ids([f for f in found if f.level >= Level.WARNING]) == {"NGX005"}


def test_mixed_project_publishing_the_app_port(tmp_path: Path) -> None:
    write(tmp_path, MIXED)
    compose = (tmp_path / "compose.yaml").read_text()
    (tmp_path / "compose.yaml").write_text(
        compose.replace('expose: ["8000"]', 'ports: ["8000:8000"]')
    )
    (tmp_path / "Dockerfile").unlink()
    write(
        tmp_path,
        {
            "compose.yaml": (tmp_path / "compose.yaml")
            .read_text()
            .replace(
                "build: .",
                (
                    "build: .\n"
                    '    command: ["gunicorn", "-b", "0.0.0.0:8000",'
                    ' "--forwarded-allow-ips=*", "wsgi:app"]'
                ),
            )
        },
    )
    found = ids(check(tmp_path))
    assert {"CMP009", "GUN004"} <= found
    assert "GUN003" not in found


def test_app_from_an_image_without_healthcheck_is_noted(tmp_path: Path) -> None:
    text = (
        "services:\n  web:\n    image: ghcr.io/acme/app:1.2\n    restart: always\n"
        "    command: gunicorn -b 0.0.0.0:8000 -w 3 wsgi:app\n"
    )
    write(tmp_path, {"compose.yaml": text})
    found = [f for f in check(tmp_path) if f.id == "CMP003"]
    assert [(f.level, f.line) for f in found] == [(Level.INFO, 2)]
    healthy = text + "    healthcheck:\n      test: [CMD, curl, -f, http://localhost:8000/health]\n"
    write(tmp_path, {"compose.yaml": healthy})
    assert "CMP003" not in ids(check(tmp_path))


def test_a_built_service_runs_the_image_command_under_its_own_environment(
    tmp_path: Path,
) -> None:
    write(tmp_path, MIXED)
    dockerfile = (tmp_path / "Dockerfile").read_text()
    (tmp_path / "Dockerfile").write_text(dockerfile.replace('"--forwarded-allow-ips", "*", ', ""))
    compose = (tmp_path / "compose.yaml").read_text()
    published = compose.replace(
        'expose: ["8000"]', 'ports: ["8000:8000"]\n    environment: {FORWARDED_ALLOW_IPS: "*"}'
    )
    (tmp_path / "compose.yaml").write_text(published)
    (setup,) = gunicorn_setups(context(tmp_path))
    assert (setup.origin, setup.service, setup.file.name) == ("compose", "web", "Dockerfile")
    found = [f for f in check(tmp_path) if f.id in ("GUN004", "CMP009")]
    assert {(f.id, f.file) for f in found} == {("GUN004", "Dockerfile"), ("CMP009", "compose.yaml")}


def test_lines_of_list_items(tmp_path: Path) -> None:
    text = (
        "services:\n"  # 1
        "  app:\n"  # 2
        "    image: app:1\n"  # 3
        "    restart: always\n"  # 4
        "    environment:\n"  # 5
        "      - LOG_LEVEL=info\n"  # 6
        "      # the key comes from the vault in production\n"  # 7
        "      - API_TOKEN=abc123def456\n"  # 8
        "    volumes:\n"  # 9
        "      - ./data:/data\n"  # 10
        "      - /var/run/docker.sock:/var/run/docker.sock\n"  # 11
    )
    write(tmp_path, {"compose.yaml": text})
    found = {f.id: f.line for f in check(tmp_path) if f.id in ("CMP004", "CMP007")}
    assert found == {"CMP004": 8, "CMP007": 11}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("1.5s", 1.5), ("500ms", 0.5), (45, 45.0), ("soon", None)],
)
def test_compose_durations(text: object, seconds: float | None) -> None:
    assert duration(text) == seconds


def test_stop_grace_level_rises_when_a_shutdown_window_was_chosen(tmp_path: Path) -> None:
    """Both defaults (gunicorn's 30 s, Docker's 10 s): info, only requests over 10 s are
    cut; a graceful timeout written and undone by Docker's default: a warning."""
    compose = (
        "services:\n  web:\n    build: .\n"
        '    command: ["gunicorn", "--bind", "0.0.0.0:8000"{flags}, "wsgi:app"]\n'
        "    restart: unless-stopped\n"
    )
    write(tmp_path, {"compose.yaml": compose.format(flags=""), "wsgi.py": "app = None\n"})
    found = [(f.level, f.line) for f in check(tmp_path) if f.id == "CMP010"]
    assert found == [(Level.INFO, 2)], found
    write(tmp_path, {"compose.yaml": compose.format(flags=', "--graceful-timeout", "60"')})
    found = [(f.level, f.line) for f in check(tmp_path) if f.id == "CMP010"]
    assert found == [(Level.WARNING, 2)], found
