"""A database that does not answer is a 503 (try again), not a 500 (a bug).

``OperationalError`` is SQLAlchemy's "the database could not do it" (connection
refused or lost, statement timeout, SQLite locked); ``TimeoutError`` is its pool
running dry (every connection held by requests stuck on a stalled database). The
response itself comes from the runtime's error handler, so it has the same JSON/HTML
shape as every other error.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import ServiceUnavailable

from flaskprod.runtime.errors import handle_http_error
from shop.extensions import db

log = logging.getLogger(__name__)

RETRY_AFTER = 5


def init_errors(app: Flask) -> None:
    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(error: OperationalError | PoolTimeout) -> ResponseReturnValue:
        log.error("database unavailable: %s", getattr(error, "orig", None) or error)
        db.session.rollback()
        response: ResponseReturnValue = handle_http_error(
            ServiceUnavailable(retry_after=RETRY_AFTER)
        )
        return response
