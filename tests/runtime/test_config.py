from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from flask import Flask
from runtime_helpers import GOOD_KEY, MakeApp

from flaskprod import Production
from flaskprod.runtime.config import (
    EXIT_REFUSED,
    StartupRefused,
    detect_profile,
    normalise_database_url,
)

NO_KEY = (
    'flaskprod: SECRET_KEY is not set: generate one with  python -c "import secrets; '
    'print(secrets.token_hex(32))"  and put it in the environment'
)


def refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], app: Flask | None = None
) -> StartupRefused:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(StartupRefused) as info:
        Production(app or Flask("refused"))
    assert info.value.code == EXIT_REFUSED == 3
    assert isinstance(info.value, SystemExit)
    return info.value


# -- profiles -------------------------------------------------------------------------


def test_profile_detection() -> None:
    assert detect_profile({}) == "production"
    assert detect_profile({"FLASK_ENV": "development"}) == "development"
    assert detect_profile({"FLASK_ENV": "development", "FLASKPROD_ENV": "testing"}) == "testing"
    assert detect_profile({"FLASKPROD_ENV": "Prod"}) == "production"
    assert detect_profile({"FLASK_ENV": "dev"}) == "development"
    assert detect_profile({}, fallback="testing") == "testing"


def test_unknown_profile_refuses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = refused(monkeypatch, {"FLASKPROD_ENV": "staging"})
    assert error.problems == [
        "FLASKPROD_ENV='staging' is not a profile: use one of development, testing, production"
    ]
    assert capsys.readouterr().err.splitlines() == [f"flaskprod: {error.problems[0]}"]


def test_default_profile_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused(monkeypatch, {})
    assert NO_KEY.removeprefix("flaskprod: ") in error.problems


def test_profile_from_overrides_when_env_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Flask("x")
    ext = Production(app, FLASKPROD_ENV="testing")
    assert ext.profile == "testing" and app.testing
    assert app.extensions["flaskprod"] is ext
    monkeypatch.setenv("FLASKPROD_ENV", "development")
    app2 = Flask("y")
    assert Production(app2, FLASKPROD_ENV="testing").profile == "development"


def test_applied_twice_is_an_error(make_app: MakeApp) -> None:
    app = make_app("testing")
    with pytest.raises(RuntimeError, match="already applied"):
        Production(app)


# -- mapping the environment ----------------------------------------------------------


def test_prefixed_variables_map_to_config(make_app: MakeApp) -> None:
    app = make_app(
        "development",
        env={
            "FLASK_SQLALCHEMY_POOL_SIZE": "7",
            "FLASK_FEATURE_ON": "true",
            "FLASK_GREETING": "hello world",
            "FLASK_LIMITS": '{"a": 1}',
            "FLASKPROD_HEALTH_TIMEOUT": "0.5",
            "FLASK_RUN_PORT": "9999",
            "FLASK_APP": "something:app",
        },
    )
    assert app.config["SQLALCHEMY_POOL_SIZE"] == 7
    assert app.config["FEATURE_ON"] is True
    assert app.config["GREETING"] == "hello world"
    assert app.config["LIMITS"] == {"a": 1}
    assert app.config["HEALTH_TIMEOUT"] == 0.5
    assert "RUN_PORT" not in app.config and "APP" not in app.config


def test_unprefixed_variables(make_app: MakeApp) -> None:
    app = make_app(
        "production",
        env={
            "DATABASE_URL": "postgres://u:p@db.internal:5432/shop",
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "MAX_CONTENT_LENGTH": "1M",
            "TRUSTED_PROXIES": "2",
        },
    )
    assert app.config["SECRET_KEY"] == GOOD_KEY
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.internal:5432/shop"
    assert app.config["REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert app.config["TRUSTED_PROXIES"] == 2


def test_database_url_normalisation() -> None:
    assert normalise_database_url("postgres://a@h/d") == "postgresql+psycopg://a@h/d"
    assert normalise_database_url("postgresql://a@h/d") == "postgresql+psycopg://a@h/d"
    assert normalise_database_url("postgresql+psycopg://a@h/d") == "postgresql+psycopg://a@h/d"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_precedence_app_config_then_overrides_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASKPROD_ENV", "development")
    app = Flask("x")
    app.config["HEALTH_PATH"] = "/from-app"
    app.config["READY_PATH"] = "/ready-from-app"
    app.config["API_PREFIX"] = "/v1/"
    Production(app, READY_PATH="/ready-from-override", API_PREFIX="/v2/")
    assert app.config["HEALTH_PATH"] == "/from-app"
    assert app.config["READY_PATH"] == "/ready-from-override"
    assert app.config["API_PREFIX"] == "/v2/"
    monkeypatch.setenv("FLASK_API_PREFIX", "/v3/")
    app2 = Flask("y")
    Production(app2, API_PREFIX="/v2/")
    assert app2.config["API_PREFIX"] == "/v3/"


def test_profile_defaults(make_app: MakeApp) -> None:
    prod = make_app("production")
    assert prod.config["SESSION_COOKIE_SECURE"] is True
    assert prod.config["TRUSTED_PROXIES"] == 1
    assert prod.config["LOG_FORMAT"] == "json"
    assert prod.config["PREFERRED_URL_SCHEME"] == "https"
    dev = make_app("development")
    assert dev.config["SESSION_COOKIE_SECURE"] is False
    assert dev.config["TRUSTED_PROXIES"] == 0
    assert dev.config["LOG_FORMAT"] == "text"
    assert dev.config["PREFERRED_URL_SCHEME"] == "http"
    assert make_app("testing").testing is True


def test_bad_values_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused(
        monkeypatch,
        {
            "FLASKPROD_ENV": "development",
            "TRUSTED_PROXIES": "lots",
            "MAX_CONTENT_LENGTH": "big",
            "FLASK_HEALTH_TIMEOUT": "soon",
            "FLASKPROD_LOG_LEVEL": "LOUD",
            "FLASKPROD_LOG_FORMAT": "xml",
            "FLASKPROD_HEALTH_PATH": "health",
        },
    )
    assert error.problems == [
        "MAX_CONTENT_LENGTH='big' is not a size: use bytes or nginx notation like 10M",
        "TRUSTED_PROXIES='lots' is not a count of proxies: use 0 (no proxy) to 5, "
        "usually 1 behind nginx",
        "HEALTH_TIMEOUT='soon' is not a number of seconds: use e.g. 2",
        "LOG_LEVEL='LOUD' is not a level: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "LOG_FORMAT='xml' is not a format: use json or text",
        "HEALTH_PATH='health' is not a path: use one like /health",
    ]


# -- the production gate ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["change-me", "changeme", "dev", "secret", "your-secret-key"])
def test_placeholder_key_refused(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    error = refused(monkeypatch, {"SECRET_KEY": key, "DATABASE_URL": "sqlite://"})
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"SECRET_KEY is a placeholder ({key!r}): generate one with")


@pytest.mark.parametrize(
    "key",
    [
        "you-will-never-guess",
        "hard to guess string",
        "super secret key",
        "super-secret-key-for-my-flask-app-2024!!",
        "replace-with-a-long-random-string",
    ],
)
def test_tutorial_keys_are_placeholders(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    """The keys the best-known tutorials print are in thousands of repositories: weak
    whatever their length, and named as placeholders (not just 'short')."""
    error = refused(monkeypatch, {"SECRET_KEY": key, "DATABASE_URL": "sqlite://"})
    assert error.problems[0].startswith(f"SECRET_KEY is a placeholder ({key!r})")


def test_long_placeholder_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "please-change-me-before-going-to-production-ok"
    error = refused(monkeypatch, {"SECRET_KEY": key, "DATABASE_URL": "sqlite://"})
    assert error.problems[0].startswith("SECRET_KEY is a placeholder")


def test_short_key_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused(monkeypatch, {"SECRET_KEY": "a9f8e7d6c5b4", "DATABASE_URL": "sqlite://"})
    assert error.problems[0].startswith("SECRET_KEY is 12 characters, fewer than 32: generate")


def test_missing_database_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused(monkeypatch, {"SECRET_KEY": GOOD_KEY})
    assert error.problems == [
        "DATABASE_URL is not set: put the database URL in the environment, e.g. "
        "DATABASE_URL=postgresql://user:password@host/dbname"
    ]


def test_debug_refused_from_env_and_from_code(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"SECRET_KEY": GOOD_KEY, "DATABASE_URL": "sqlite://", "FLASK_DEBUG": "1"}
    error = refused(monkeypatch, env)
    assert len(error.problems) == 1 and error.problems[0].startswith("debug is on")
    monkeypatch.delenv("FLASK_DEBUG")
    app = Flask("debugging")
    app.debug = True
    error = refused(monkeypatch, {}, app)
    assert error.problems[0].startswith("debug is on")


def test_all_problems_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(monkeypatch, {"FLASK_DEBUG": "true"})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    assert lines[0] == NO_KEY
    assert lines[1].startswith("flaskprod: DATABASE_URL is not set")
    assert lines[2].startswith("flaskprod: debug is on")


def test_database_not_required_when_opted_out(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASKPROD_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    app = Flask("nodb")
    Production(app, DATABASE_REQUIRED=False)
    assert app.extensions["flaskprod"].profile == "production"


def test_development_allows_what_production_refuses(make_app: MakeApp) -> None:
    app = make_app("development", env={"FLASK_DEBUG": "1"})
    assert app.debug is True


def test_sqlite_in_production_warns_once(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    make_app("production", env={"DATABASE_URL": "sqlite:////tmp/shop.db"})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "flaskprod.config"
    assert "SQLite in production" in warnings[0].getMessage()


# -- .env -------------------------------------------------------------------------------


def test_dotenv_in_development_never_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("FLASK_FROM_DOTENV=yes\nFLASK_GREETING=from-file\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLASKPROD_ENV", "development")
    monkeypatch.setenv("FLASK_GREETING", "from-environment")
    try:
        app = Flask("dotenv")
        Production(app)
        assert app.config["FROM_DOTENV"] == "yes"
        assert app.config["GREETING"] == "from-environment"
    finally:
        os.environ.pop("FLASK_FROM_DOTENV", None)


def test_dotenv_ignored_in_production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"SECRET_KEY={GOOD_KEY}\nDATABASE_URL=sqlite://\n")
    monkeypatch.chdir(tmp_path)
    error = refused(monkeypatch, {"FLASKPROD_ENV": "production"})
    assert len(error.problems) == 2
    assert "SECRET_KEY" not in os.environ
