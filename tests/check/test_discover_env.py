"""Discovery of deployment files and the environment production will have."""

from __future__ import annotations

from pathlib import Path

import pytest
from project_files import write

from flaskprod.check.context import Context
from flaskprod.check.envsource import is_env_template, parse_env_file, production_env
from flaskprod.check.runner import CheckOptions, build_context
from flaskprod.launch.discover import discover


def names(found: dict[str, list[Path]], root: Path) -> dict[str, list[str]]:
    return {k: [p.relative_to(root).as_posix() for p in v] for k, v in found.items() if v}


def test_files_are_sorted_by_kind(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "deploy/nginx/site": "server { listen 80; }\n",
            "conf/app.conf": "upstream app { server 127.0.0.1:8000; }\n",
            "conf/other.conf": "[section]\nkey = value\n",
            "nginx.conf": "events {}\n",
            "gunicorn.conf.py": "workers = 2\n",
            "gunicorn_prod.py": "workers = 4\n",
            "Procfile": "web: gunicorn app:app\n",
            "deploy/app.service": "[Service]\n",
            "deploy/app.timer": "[Timer]\n",
            "Dockerfile": "FROM python\n",
            "docker/web.Dockerfile": "FROM python\n",
            "Dockerfile.dev": "FROM python\n",
            ".dockerignore": ".git\n",
            "docker-compose.prod.yml": "services: {}\n",
            "compose.yaml": "services: {}\n",
            "requirements.txt": "flask\n",
            "requirements/prod.txt": "flask\n",
            "pyproject.toml": "[project]\n",
            "poetry.lock": "",
            ".env": "A=1\n",
            ".env.example": "A=\n",
            "prod.env": "A=1\n",
            ".gitignore": ".env\n",
            ".venv/lib/nginx.conf": "server { }\n",
            "node_modules/x/Dockerfile": "FROM node\n",
            "__pycache__/requirements.txt": "x\n",
        },
    )
    found = names(discover(tmp_path), tmp_path)
    assert found == {
        "nginx": ["conf/app.conf", "deploy/nginx/site", "nginx.conf"],
        "gunicorn": ["gunicorn.conf.py", "gunicorn_prod.py"],
        "procfile": ["Procfile"],
        "systemd": ["deploy/app.service", "deploy/app.timer"],
        "dockerfile": ["Dockerfile", "Dockerfile.dev", "docker/web.Dockerfile"],
        "dockerignore": [".dockerignore"],
        "compose": ["compose.yaml", "docker-compose.prod.yml"],
        "requirements": ["requirements/prod.txt", "requirements.txt"],  # Path order
        "pyproject": ["pyproject.toml"],
        "lock": ["poetry.lock"],
        "env": [".env", ".env.example", "prod.env"],
        "gitignore": [".gitignore"],
    }


def test_discovery_is_bounded(tmp_path: Path, monkeypatch: object) -> None:
    import flaskprod.launch.discover as discover_module

    for number in range(30):
        (tmp_path / f"{number:02d}.service").write_text("[Service]\n")
    setattr(discover_module, "MAX_FILES", 10)  # noqa: B010 - restored below
    try:
        assert len(discover(tmp_path)["systemd"]) == 10
    finally:
        discover_module.MAX_FILES = 5000


def test_env_file_syntax() -> None:
    text = "export A=1\nB=\"two words\"\nC='x#y'\n# comment\nD=plain # trailing\nbad line\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words", "C": "x#y", "D": "plain"}


def _ctx(root: Path) -> Context:
    return build_context(CheckOptions(root=root, no_import=True))


def test_systemd_environment_file_followed_through_working_directory(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "deploy/app.service": """\
                [Service]
                WorkingDirectory=/srv/app
                Environment="FLASK_DEBUG=0" LOG=json
                EnvironmentFile=/srv/app/config/prod.env
                EnvironmentFile=-/etc/optional.env
                ExecStart=/srv/app/.venv/bin/gunicorn -b 127.0.0.1:8000 wsgi:app
            """,
            "config/prod.env": "SECRET_KEY=abc\n",
        },
    )
    source = production_env(_ctx(tmp_path))
    assert source.known
    assert source.env == {"FLASK_DEBUG": "0", "LOG": "json", "SECRET_KEY": "abc"}
    assert source.description == "deploy/app.service (EnvironmentFile config/prod.env)"
    assert source.command and "wsgi:app" in source.command


def test_env_file_only_on_the_server_gives_a_stand_in(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.service": "[Service]\nEnvironmentFile=/etc/app/app.env\n"
            "ExecStart=/v/bin/gunicorn wsgi:app\n",
            ".env.example": "SECRET_KEY=change-me\nDATABASE_URL=postgresql://u@h/d\n",
        },
    )
    ctx = _ctx(tmp_path)
    source = production_env(ctx)
    assert not source.known
    assert "EnvironmentFile /etc/app/app.env, on the server only" in (source.description or "")
    assert source.env["DATABASE_URL"] == "postgresql://u@h/d"
    # the template's placeholder secret is replaced by a random stand-in, and remembered
    assert source.env["SECRET_KEY"] != "change-me" and len(source.env["SECRET_KEY"]) > 40
    assert ctx.cache["stand_ins"]["SECRET_KEY"] == source.env["SECRET_KEY"]


@pytest.mark.parametrize("template", [".env.tmpl", "example.env", ".env.in"])
def test_every_env_template_prj001_accepts_is_also_the_stand_in(
    tmp_path: Path, template: str
) -> None:
    """One definition of "template": these were templates for PRJ001 (committing them is
    fine) but not read as the stand-in for production's values."""
    write(
        tmp_path,
        {
            "app.service": "[Service]\nEnvironmentFile=/etc/app/app.env\n"
            "ExecStart=/v/bin/gunicorn wsgi:app\n",
            template: "DATABASE_URL=postgresql://u@h/d\n",
        },
    )
    (path,) = discover(tmp_path)["env"]
    assert is_env_template(path)
    assert production_env(_ctx(tmp_path)).env["DATABASE_URL"] == "postgresql://u@h/d"


def test_compose_environment_env_file_and_interpolation(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "compose.yaml": """\
                services:
                  db:
                    image: postgres:16
                    environment:
                      POSTGRES_PASSWORD: x
                  web:
                    build: .
                    env_file: [web.env]
                    environment:
                      - FLASK_DEBUG=0
                      - SECRET_KEY=${SECRET_KEY}
                      - LEVEL=${LEVEL:-info}
            """,
            "web.env": "DATABASE_URL=postgresql://db/app\n",
            ".env": "SECRET_KEY=from-dot-env\n",
            "Dockerfile": "FROM python:3.11-slim\nENV PYTHONUNBUFFERED=1 APP_ENV=prod\n",
        },
    )
    source = production_env(_ctx(tmp_path))
    assert source.known
    assert source.env == {
        "PYTHONUNBUFFERED": "1",
        "APP_ENV": "prod",
        "DATABASE_URL": "postgresql://db/app",
        "FLASK_DEBUG": "0",
        "SECRET_KEY": "from-dot-env",
        "LEVEL": "info",
    }
    assert source.description == "compose.yaml service web (env_file web.env)"


def test_env_file_option_wins(tmp_path: Path) -> None:
    write(tmp_path, {"prod.env": "SECRET_KEY=given\n", "app.service": "[Service]\n"})
    source = production_env(_ctx(tmp_path), tmp_path / "prod.env")
    assert source.known and source.env == {"SECRET_KEY": "given"}
    assert source.description == f"--env-file {tmp_path / 'prod.env'}"


def test_nginx_sites_named_without_conf_are_found(tmp_path: Path) -> None:
    """Sites saved as the articles name them (flaskapp.nginx, nginx-site, app.vhost)
    outside an nginx folder are nginx configs when their contents say so; other files
    with such names are not."""
    site = "server {\n    listen 80;\n    location / { proxy_pass http://127.0.0.1:8000; }\n}\n"
    write(
        tmp_path,
        {
            "deploy/flaskapp.nginx": site,
            "deploy/nginx-site": site,
            "ops/app.vhost": site,
            "deploy/nginx-howto.md": "Paste this:\n\n" + site,
            "deploy/my.nginx": "just words\n",
        },
    )
    found = names(discover(tmp_path), tmp_path)
    assert found.get("nginx") == ["deploy/flaskapp.nginx", "deploy/nginx-site", "ops/app.vhost"]
