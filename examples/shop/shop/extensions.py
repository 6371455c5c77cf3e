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

db = SQLAlchemy(metadata=MetaData(naming_convention=_NAMING))
csrf = CSRFProtect()
