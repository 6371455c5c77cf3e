"""A database that does not answer is a 503 (try again), not a 500 (a bug).

``OperationalError`` is SQLAlchemy's "the database could not do it" (connection
refused or lost, statement timeout, SQLite locked). The response itself comes from
the runtime's error handler, so it has the same JSON/HTML shape as every other error.
"""

from __future__ import annotations

import logging

from flask import Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import ServiceUnavailable

from flaskprod.runtime.errors import handle_http_error
from shop.extensions import db

log = logging.getLogger(__name__)

RETRY_AFTER = 5


def init_errors(app: Flask) -> None:
    @app.errorhandler(OperationalError)
    def _database_unavailable(error: OperationalError) -> ResponseReturnValue:
        log.error("database unavailable: %s", error.orig or error)
        db.session.rollback()
        response: ResponseReturnValue = handle_http_error(
            ServiceUnavailable(retry_after=RETRY_AFTER)
        )
        return response
