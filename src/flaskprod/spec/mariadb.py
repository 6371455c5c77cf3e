"""The MariaDB server settings flaskprod runs everywhere: ``up``'s server, compose's
``db`` service and the host's config file say the same, from one list.

utf8mb4 (MySQL's "utf8" is a 3-byte subset that cannot store emoji), a strict SQL mode
(a value too long or of the wrong type is an error, not silently truncated), and a
``wait_timeout`` the app's ``pool_recycle`` stays below (spec-validated).
"""

from __future__ import annotations

from flaskprod.spec.model import Spec

CHARSET = "utf8mb4"
COLLATION = "utf8mb4_unicode_ci"
#: MariaDB 10.11's default minus nothing, STRICT_ALL_TABLES added (non-transactional too).
SQL_MODE = (
    "STRICT_TRANS_TABLES,STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"
)
PORT = 3306
#: mariadb-dump's options, the same for ``flaskprod backup``, the kit's backup.sh and
#: the comparison after a restore: one consistent snapshot without table locks, one
#: row per INSERT line, binary values in hex, each table's rows in one transaction.
DUMP_OPTIONS = (
    "--single-transaction",
    "--quick",
    "--skip-lock-tables",
    "--no-tablespaces",  # the app's user has no PROCESS privilege, nor needs it
    "--hex-blob",
    "--skip-extended-insert",
    "--order-by-primary",
    "--skip-dump-date",
    "--default-character-set=utf8mb4",
    "--triggers",
    "--no-autocommit",
)


def server_settings(spec: Spec) -> dict[str, str]:
    """mariadbd's settings (option name -> value), as ``--name=value`` or my.cnf lines."""
    database = spec.database
    return {
        "character-set-server": CHARSET,
        "collation-server": COLLATION,
        "sql-mode": SQL_MODE,
        "wait-timeout": str(database.wait_timeout),
        "max-connections": str(database.max_connections),
        "skip-name-resolve": "ON",
    }


def server_flags(spec: Spec) -> list[str]:
    """The settings as mariadbd command-line flags."""
    return [f"--{name}={value}" for name, value in server_settings(spec).items()]
