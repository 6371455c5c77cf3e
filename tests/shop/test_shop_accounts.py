"""Sign up, log in, log out, with real CSRF tokens, on SQLite and PostgreSQL+Redis."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from shop_helpers import PASSWORD, csrf_token, signup, sqlite_only


def test_signup_login_logout_flow(client: FlaskClient) -> None:
    email = signup(client)
    assert email in client.get("/").get_data(as_text=True)  # logged in after sign-up

    logout = client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert logout.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert email not in page and "Log in" in page

    wrong = client.post(
        "/login",
        data={"csrf_token": csrf_token(client, "/login"), "email": email, "password": "nope-nope"},
    )
    assert wrong.status_code == 400
    assert "Wrong email or password." in wrong.get_data(as_text=True)

    unknown = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(client, "/login"),
            "email": "nobody@example.com",
            "password": PASSWORD,
        },
    )
    assert unknown.status_code == 400  # same answer as a wrong password
    assert "Wrong email or password." in unknown.get_data(as_text=True)

    right = client.post(
        "/login?next=/orders",
        data={"csrf_token": csrf_token(client, "/login"), "email": email, "password": PASSWORD},
    )
    assert right.status_code == 302 and right.headers["Location"] == "/orders"
    assert client.get("/orders").status_code == 200


@sqlite_only
def test_login_rejects_offsite_next(client: FlaskClient) -> None:
    email = signup(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    response = client.post(
        "/login?next=//evil.example/",
        data={"csrf_token": csrf_token(client, "/login"), "email": email, "password": PASSWORD},
    )
    assert response.headers["Location"] == "/"


@sqlite_only
def test_post_without_csrf_token_is_refused(client: FlaskClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"email": "a@example.com", "password": "whatever1"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


@sqlite_only
def test_duplicate_email_is_a_form_error(client: FlaskClient) -> None:
    email = signup(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    again = client.post(
        "/signup",
        data={
            "csrf_token": csrf_token(client, "/signup"),
            "email": email.upper(),
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert again.status_code == 400
    assert "already exists" in again.get_data(as_text=True)


@sqlite_only
def test_pages_that_need_an_account_redirect_to_login(client: FlaskClient) -> None:
    for path in ("/orders", "/products/new", "/account"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_session_lives_in_redis_when_configured(shop_app: Flask, client: FlaskClient) -> None:
    signup(client)
    if not shop_app.config.get("REDIS_URL"):
        # Signed-cookie sessions: the cookie itself carries the (signed) data.
        assert "." in client.get_cookie("session").value
        return
    from flaskprod.runtime.redis import redis_client

    sid = client.get_cookie("session").value
    assert redis_client(shop_app).exists(f"shop:session:{sid}") == 1
