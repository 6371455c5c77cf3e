"""The server's own files, derived from the spec (no host needed): the HTTP-only site,
the env file template, and the host helper that fills in the secrets."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
from pathlib import Path

from flaskprod.deploy import hostside
from flaskprod.deploy.hostfiles import env_template, http_only_site, parse_site, secret_names
from flaskprod.spec.load import load_spec
from flaskprod.spec.model import Spec

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def shop_spec(**sections: dict[str, object]) -> Spec:
    data = load_spec(SHOP / "flaskprod.toml").model_dump(exclude_unset=True)
    data.update(sections)
    return Spec.model_validate(data)


def test_http_only_site_serves_the_app_and_the_challenge_on_port_80_only() -> None:
    site = http_only_site(parse_site(SHOP / "deploy" / "nginx" / "shop.conf"))
    assert "listen 443" not in site and "ssl_" not in site
    assert "Strict-Transport-Security" not in site
    assert "return 301" not in site  # the app itself, not the redirect
    assert "location ^~ /.well-known/acme-challenge/" in site
    assert "proxy_pass http://shop_app;" in site
    assert "X-Content-Type-Options" in site  # the other headers stay


def test_env_template_holds_placeholders_never_secrets() -> None:
    spec = shop_spec()
    text = env_template(spec)
    assert "SECRET_KEY={{secret:SECRET_KEY}}\n" in text
    assert (
        "DATABASE_URL=postgresql+psycopg://shop:{{secret:DB_PASSWORD}}@localhost:5432/shop\n"
        in text
    )
    assert "REDIS_URL=redis://:{{secret:REDIS_PASSWORD}}@localhost:6379/0\n" in text
    assert "SENTRY_DSN={{keep:SENTRY_DSN}}\n" in text
    assert "MEDIA_ROOT=/var/lib/shop/media\n" in text
    assert secret_names(spec) == ["SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD"]
    sqlite = shop_spec(database={"engine": "sqlite"}, redis={"enabled": False})
    assert "DATABASE_URL=sqlite:////var/lib/shop/shop.sqlite3\n" in env_template(sqlite)
    assert "REDIS_URL" not in env_template(sqlite)
    assert secret_names(sqlite) == ["SECRET_KEY"]
    # MariaDB on the host: its user of 127.0.0.1 (skip-name-resolve), utf8mb4 in the URL
    mariadb = shop_spec(database={"engine": "mariadb", "driver": "pymysql"})
    assert (
        "DATABASE_URL=mysql+pymysql://shop:{{secret:DB_PASSWORD}}@127.0.0.1:3306/shop"
        "?charset=utf8mb4\n" in env_template(mariadb)
    )
    assert "FLASKPROD_SQLALCHEMY_POOL_RECYCLE=1800\n" in env_template(mariadb)
    assert secret_names(mariadb) == ["SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD"]
    elsewhere = shop_spec(database={"engine": "mariadb", "local": False})
    assert "DATABASE_URL={{keep:DATABASE_URL}}\n" in env_template(elsewhere)
    assert "DB_PASSWORD" not in secret_names(elsewhere)


def test_host_helper_makes_secrets_once_and_renders_them(tmp_path: Path) -> None:
    helper = [sys.executable, hostside.__file__]
    secrets = tmp_path / "secrets.env"

    def run(*args: str) -> str:
        done = subprocess.run([*helper, *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert run("secrets", str(secrets), "A_KEY", "--check") == "to generate: A_KEY"
    assert run("secrets", str(secrets), "A_KEY") == "generated: A_KEY"
    first = secrets.read_text()
    assert run("secrets", str(secrets), "A_KEY") == "ok"
    assert secrets.read_text() == first and oct(secrets.stat().st_mode & 0o777) == "0o600"
    template = tmp_path / "app.env.in"
    template.write_text("KEY={{secret:A_KEY}}\nTOKEN={{keep:TOKEN}}\n")
    dest = tmp_path / "app.env"
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    args = [str(secrets), str(template), str(dest), "600", user, group]
    assert run("render", *args, "--check") == f"to write: {dest}"
    assert run("render", *args) == f"wrote {dest}"
    key = hostside.read_env(str(secrets))["A_KEY"]
    assert dest.read_text() == f"KEY={key}\n# TOKEN=\n"
    # A value filled in by hand on the server survives the next render.
    dest.write_text(dest.read_text().replace("# TOKEN=", "TOKEN=by-hand"))
    assert run("render", *args) == "ok"
    assert dest.read_text() == f"KEY={key}\nTOKEN=by-hand\n"
    # A changed template is rendered again, keeping it.
    template.write_text("# new line\n" + template.read_text())
    assert run("render", *args) == f"wrote {dest}"
    assert dest.read_text() == f"# new line\nKEY={key}\nTOKEN=by-hand\n"


def test_host_helper_refuses_a_mariadb_name_it_cannot_quote(tmp_path: Path) -> None:
    """Names go into SQL and a client defaults file: one line, nothing run. (The rest of
    ``hostside.py mariadb`` needs a host's MariaDB: tests/deploy/test_mariadb_deploy.py.)"""
    secrets = tmp_path / "secrets.env"
    secrets.write_text("DB_PASSWORD=x\n")
    helper = [sys.executable, hostside.__file__, "mariadb", str(secrets)]
    for user, database in (("shop", "my shop"), ("a'b", "shop"), ("shop", "x" * 65)):
        done = subprocess.run(
            [*helper, user, database, "DB_PASSWORD", "--check"], capture_output=True, text=True
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().startswith("MariaDB name "), done.stderr
        assert "(database.name, database.user)" in done.stderr
