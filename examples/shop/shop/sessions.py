"""Sessions: server-side in Redis when REDIS_URL is set, signed cookies otherwise.

A Redis outage must give the pages that need a session a clear 503, never a 500, and
must not touch pages that do not need one (the product list, the API with a token,
the health checks). Flask opens the session before any view runs and an exception
there becomes a 500, so the Redis interface below catches Redis errors itself: it
hands out an empty, unsaveable session and records that the store is down; views
that need a session ask :func:`require_session_store` and answer 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, render_template, request, session
from flask_session.redis import RedisSessionInterface
from redis.exceptions import RedisError

from flaskprod.runtime.sessions import redis_session_interface
from shop.redis_guard import redis_failed, redis_usable

F = TypeVar("F", bound=Callable[..., Any])


class SessionStoreDown(Exception):
    """Raised by views that need a session while Redis is unreachable."""


class _ResilientRedisSessions(RedisSessionInterface):
    def open_session(self, app: Flask, request: Any) -> Any:
        if redis_usable(app):
            try:
                return super().open_session(app, request)
            except RedisError as error:
                redis_failed(app, "session read", error)
        g.session_store_down = True
        return self.session_class(sid=self._generate_sid(self.sid_length), permanent=self.permanent)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if g.get("session_store_down"):
            return  # never overwrite a session we could not read
        try:
            super().save_session(app, session, response)
        except RedisError as error:
            redis_failed(app, "session write", error)
            if session.modified:
                # The view changed the session and that change is lost: say so
                # instead of pretending (a login redirect that did not log in).
                # A lost expiry refresh of an unchanged session is harmless.
                _turn_into_503(response)

    def regenerate(self, session: Any) -> None:
        try:
            super().regenerate(session)
        except RedisError as error:
            raise SessionStoreDown(str(error)) from error


def _turn_into_503(response: Response) -> None:
    response.status_code = 503
    response.headers.pop("Location", None)
    response.headers["Retry-After"] = "5"
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.set_data(render_template("session_down.html"))


def init_sessions(app: Flask) -> None:
    if not app.config.get("REDIS_URL"):
        return  # Flask's signed-cookie sessions
    # The runtime's Redis sessions (what SESSION_BACKEND=redis gives any app: bounded
    # client, Flask-Session), with the shop's outage handling on top; on whenever the
    # shop has Redis, so every app server shares the sessions.
    app.session_interface = redis_session_interface(app, _ResilientRedisSessions)

    app.before_request(_check_store)

    @app.errorhandler(SessionStoreDown)
    def _store_down(error: SessionStoreDown) -> tuple[str, int, dict[str, str]]:
        return render_template("session_down.html"), 503, {"Retry-After": "5"}


def session_store_available() -> bool:
    """True with cookie sessions; with Redis, whether it answered for this request
    (or answers a PING now, when the request carried no session to read)."""
    interface = current_app.session_interface
    if not isinstance(interface, _ResilientRedisSessions):
        return True
    if g.get("session_store_down"):
        return False
    if g.get("session_store_ok"):
        return True
    if redis_usable(current_app):
        try:
            interface.client.ping()
        except RedisError as error:
            redis_failed(current_app, "session PING", error)
        else:
            g.session_store_ok = True
            return True
    g.session_store_down = True
    return False


def require_session_store(view: F) -> F:
    """Mark a view that logs in, logs out or needs the logged-in user: it answers 503
    while the session store is down. The check runs in a before_request hook that is
    registered before CSRFProtect's, so a POST gets the 503 rather than a CSRF error
    about a session token that could not be read."""
    view.needs_session = True  # type: ignore[attr-defined]
    return view


def _check_store() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "needs_session", False) and not session_store_available():
        raise SessionStoreDown("session store unreachable")


def start_user_session(user_id: int) -> None:
    """Log ``user_id`` in under a new session id (no session fixation)."""
    session.clear()
    session["user_id"] = user_id
    interface = current_app.session_interface
    if isinstance(interface, _ResilientRedisSessions):
        interface.regenerate(cast(Any, session))


def end_user_session() -> None:
    session.clear()  # server-side: the stored session is deleted when the response is saved
