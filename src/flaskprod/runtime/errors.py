"""Error responses: JSON for the API and JSON clients, small HTML pages otherwise.

Never a stack trace or the Werkzeug debugger. 5xx pages show a generic message and
the request id (the traceback is in the log, under the same id). An app overrides
the HTML with ``templates/errors/<code>.html`` (given ``status``, ``code``,
``message`` and ``request_id``), and any handler it registers itself wins.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from jinja2 import TemplateNotFound
from markupsafe import escape
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES

from flaskprod.runtime.request_id import current_request_id

_PAGE = (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>{status} {title}</title></head>\n"
    '<body style="font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;'
    'padding:0 1rem">'
    "<h1>{title}</h1><p>{message}</p>"
    '<p style="color:#666"><small>Request id: <code>{request_id}</code></small></p>'
    "</body></html>\n"
)


def error_code(error: HTTPException) -> str:
    """A stable machine name: ``not_found``, ``csrf_failed``, ..."""
    csrf = sys.modules.get("flask_wtf.csrf")
    if csrf is not None and isinstance(error, csrf.CSRFError):
        return "csrf_failed"
    title = HTTP_STATUS_CODES.get(error.code or 500, "error")
    return title.lower().replace(" ", "_").replace("-", "_").replace("'", "")


def _is_invalid_json(error: HTTPException) -> bool:
    """Flask hides why ``get_json()`` failed outside debug; the cause still says."""
    cause = error.__cause__
    return (
        error.code == 400
        and isinstance(cause, HTTPException)
        and "Failed to decode JSON" in str(cause.description)
    )


def wants_json() -> bool:
    """API paths and clients that prefer JSON to HTML get JSON."""
    prefix = str(current_app.config.get("API_PREFIX") or "")
    path = request.path
    if prefix and (path.startswith(prefix) or path == prefix.rstrip("/")):
        return True
    accept = request.accept_mimetypes
    return accept.best_match(["text/html", "application/json"]) == "application/json" and (
        accept["application/json"] > accept["text/html"]
    )


def handle_http_error(error: HTTPException) -> Any:
    """The app's handler for every HTTP error (including 500 for unhandled exceptions)."""
    if error.response is not None:
        return error.response
    status = error.code or 500
    title = HTTP_STATUS_CODES.get(status, "Error")
    # 5xx descriptions can carry internals (abort(500, str(exc))): never show them.
    message = title if status >= 500 else (error.description or title)
    if _is_invalid_json(error):
        message = "The request body is not valid JSON."
    rid = current_request_id() or ""
    code = "invalid_json" if _is_invalid_json(error) else error_code(error)
    if wants_json():
        response = jsonify(
            error={
                "status": status,
                "code": code,
                "message": message,
                "request_id": rid,
            }
        )
    else:
        response = Response(_html(status, title, message, rid, code), mimetype="text/html")
    response.status_code = status
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _html(status: int, title: str, message: str, rid: str, code: str) -> str:
    try:
        return render_template(
            f"errors/{status}.html", status=status, code=code, message=message, request_id=rid
        )
    except TemplateNotFound:
        pass
    return _PAGE.format(
        status=status, title=escape(title), message=escape(message), request_id=escape(rid)
    )


def too_large_response(app: Flask, environ: dict[str, Any]) -> Response:
    """The app's own 413 answer (JSON or HTML, its handlers), without running the view:
    used by the middleware for a body over ``MAX_CONTENT_LENGTH`` that the view might
    never read (Werkzeug only refuses a body when it is read)."""
    with app.request_context(environ):
        return app.make_response(app.handle_user_exception(RequestEntityTooLarge()))


def register_error_handlers(app: Flask) -> None:
    """Handle every HTTP error unless the app already handles them all itself."""
    if HTTPException not in app.error_handler_spec.get(None, {}).get(None, {}):
        app.register_error_handler(HTTPException, handle_http_error)
