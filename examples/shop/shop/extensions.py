"""The shop's Flask extensions, created unbound and attached in ``create_app``.

Flask-Migrate is attached by ``shop.lazy_migrate.init_migrate``: imported here, it
would bring Alembic into every serving worker.
"""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

# Named constraints so that migrations can alter them (SQLite batch mode needs names).
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# expire_on_commit=False: a view that commits and then answers with what it wrote (an
# order's JSON, a new product's id) uses the values it holds. With the default, every
# object is expired at commit and the answer re-reads it: an order cost 2 more queries
# (the order, its items), another pool checkout and a rollback. Each request has its
# own session (removed at teardown), so nothing stale outlives the request.
db = SQLAlchemy(
    metadata=MetaData(naming_convention=_NAMING),
    session_options={"expire_on_commit": False},
)
csrf = CSRFProtect()
