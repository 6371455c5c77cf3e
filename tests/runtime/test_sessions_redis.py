"""SESSION_BACKEND=redis: server-side sessions every app server shares. Two real
gunicorn servers of one app on the same real Redis: a login on the first is honoured
by the second, a logout on the second revokes the session on both (the cookie a
browser kept is worth nothing afterwards), and a misconfiguration refuses to start."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.request
from pathlib import Path

import pytest
from runtime_helpers import MakeApp, app_server, gunicorn_argv, server_env

from flaskprod.runtime.config import StartupRefused
from flaskprod.runtime.redis import redis_client
from flaskprod.stack.ports import free_ports

pytestmark = pytest.mark.services

APP = """
from flask import Flask, jsonify, session

from flaskprod import Production

app = Flask(__name__)
Production(app, SESSION_KEY_PREFIX="twin:")


@app.post("/login")
def login():
    session["user"] = "ada"
    return jsonify(ok=True)


@app.get("/me")
def me():
    return jsonify(user=session.get("user"))


@app.post("/logout")
def logout():
    session.clear()
    return jsonify(ok=True)
"""


def call(opener: urllib.request.OpenerDirector, port: int, method: str, path: str) -> object:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with opener.open(request, data=b"" if method == "POST" else None, timeout=5) as response:
        return json.load(response)


def test_a_login_on_one_server_is_honoured_by_the_other_and_logout_revokes_it(
    tmp_path: Path, redis_url: str
) -> None:
    (tmp_path / "twinapp.py").write_text(APP)
    env = server_env(
        REDIS_URL=redis_url, FLASKPROD_SESSION_BACKEND="redis", DATABASE_URL="sqlite://"
    )
    env["FLASKPROD_SESSION_COOKIE_SECURE"] = "false"  # plain http on loopback here
    first, second = free_ports(2)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    argv_a = gunicorn_argv(first, "gthread", "twinapp:app")
    argv_b = gunicorn_argv(second, "gthread", "twinapp:app")
    env["PYTHONPATH"] = str(tmp_path)
    store = redis_client(redis_url)
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with (
        app_server(tmp_path / "a", first, argv_a, env),
        app_server(tmp_path / "b", second, argv_b, env),
    ):
        assert call(browser, second, "GET", "/me") == {"user": None}
        assert call(browser, first, "POST", "/login") == {"ok": True}
        assert len(store.keys("twin:*")) == 1  # stored in Redis, not in the cookie
        assert "ada" not in "".join(cookie.value or "" for cookie in jar)
        assert call(browser, second, "GET", "/me") == {"user": "ada"}
        kept = [(cookie.name, cookie.value) for cookie in jar]
        assert call(browser, second, "POST", "/logout") == {"ok": True}
        assert store.keys("twin:*") == []
        assert call(browser, first, "GET", "/me") == {"user": None}
        # a copy of the old cookie, replayed: revoked everywhere
        replay = urllib.request.build_opener()
        replay.addheaders = [("Cookie", "; ".join(f"{n}={v}" for n, v in kept))]
        assert call(replay, first, "GET", "/me") == {"user": None}
        assert call(replay, second, "GET", "/me") == {"user": None}


def test_redis_sessions_without_redis_refuse_to_start(make_app: MakeApp) -> None:
    with pytest.raises(StartupRefused) as refused:
        make_app(env={"FLASKPROD_SESSION_BACKEND": "redis"})
    assert "SESSION_BACKEND=redis but REDIS_URL is not set" in str(refused.value)
    with pytest.raises(StartupRefused) as refused:
        make_app(env={"FLASKPROD_SESSION_BACKEND": "memcached"})
    assert "is not a session backend" in str(refused.value)
