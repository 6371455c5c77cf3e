"""Accounts: sign up, log in, log out, API tokens; who the current user is."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.wrappers import Response

from shop.extensions import db
from shop.forms import EmptyForm, LoginForm, SignupForm
from shop.models import User, hash_token
from shop.sessions import end_user_session, require_session_store, start_user_session

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])

# Compared against when the email is unknown, so both cases cost one hash (no timing
# oracle for which emails have accounts).
_DUMMY = User(password_hash="scrypt:32768:8:1$dummydummydummy$" + "0" * 128)


def current_user() -> User | None:
    """The user of this request: an API bearer token, or else the session."""
    if "user" not in g:
        g.user = _user_from_token() or _user_from_session()
    return cast(User | None, g.user)


def current_user_for_page() -> User | None:
    """``current_user`` for the layout, which error pages use too: an error page must
    render while the database is down (it shows the visitor as logged out)."""
    try:
        return current_user()
    except SQLAlchemyError:
        db.session.rollback()
        g.user = None
        return None


def _user_from_token() -> User | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return db.session.scalars(
        select(User).where(User.api_token_hash == hash_token(token.strip()))
    ).first()


def _user_from_session() -> User | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    return db.session.get(User, user_id)


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            flash("Please log in first.", "info")
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return require_session_store(cast(F, wrapper))


def form_status(form: Any) -> int:
    """400 for a submitted form with errors (the browser shows the page all the same)."""
    return 400 if form.errors else 200


def _safe_next(target: str | None) -> str:
    # Only local paths: never an open redirect to another site.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("products.index")


@bp.route("/signup", methods=["GET", "POST"])
@require_session_store
def signup() -> tuple[str, int] | Response:
    form = SignupForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = User(email=email)
        user.set_password(form.password.data)
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            form.email.errors.append("An account with this email already exists.")
        else:
            start_user_session(user.id)
            flash("Welcome! Your account is ready.", "success")
            return redirect(url_for("products.index"))
    return render_template("signup.html", form=form), form_status(form)


@bp.route("/login", methods=["GET", "POST"])
@require_session_store
def login() -> tuple[str, int] | Response:
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db.session.scalars(select(User).where(func.lower(User.email) == email)).first()
        if (user or _DUMMY).check_password(form.password.data) and user is not None:
            start_user_session(user.id)
            flash("You are logged in.", "success")
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("Wrong email or password.")
    return render_template("login.html", form=form), form_status(form)


@bp.route("/logout", methods=["POST"])
@require_session_store
def logout() -> Response:
    end_user_session()
    flash("You are logged out.", "info")
    return redirect(url_for("products.index"))


@bp.route("/account", methods=["GET"])
@login_required
def account() -> str:
    return render_template("account.html", form=EmptyForm(), token=None)


@bp.route("/account/token", methods=["POST"])
@login_required
def new_token() -> str:
    user = current_user()
    assert user is not None
    token = user.issue_api_token()
    db.session.commit()
    # Shown once; only its digest is stored.
    return render_template("account.html", form=EmptyForm(), token=token)
