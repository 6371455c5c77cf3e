"""PgBouncer's settings, the same for ``up``, the kit (pgbouncer.ini, compose) and the
host a deploy provisions: transaction pooling with SCRAM authentication.

Transaction pooling gives a server connection to a client for one transaction only,
so hundreds of app connections share ``database.pgbouncer_pool_size`` server ones.
Its price: nothing may outlive a transaction on the server — no session ``SET``, no
session advisory lock, no prepared statement (PgBouncer 1.18, Debian 12's, cannot
track them): the app turns psycopg's automatic preparation off
(``prepare_threshold=None``, runtime/database.py) when ``DATABASE_POOLER=pgbouncer``,
and sends no ``options`` startup parameter (the statement timeout is the role's).

Standard library only: the host's provisioning imports nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

#: The environment variable (a FLASKPROD_ setting) that tells the app it talks to PgBouncer.
POOLER_VARIABLE = "FLASKPROD_DATABASE_POOLER"
POOLER = "pgbouncer"
#: PgBouncer's port on a host (Debian's default) and in compose.
PORT = 6432
#: What a statement may take, set on the role (PgBouncer refuses the per-connection
#: ``options`` parameter the app sends to PostgreSQL directly).
STATEMENT_TIMEOUT = "30s"
SCRAM_ITERATIONS = 4096


def scram_secret(
    password: str, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of ``password`` (RFC 5802/7677), as
    ``pg_authid.rolpassword`` stores it: PgBouncer's auth_file takes it, and a role
    given this very secret lets PgBouncer log in to PostgreSQL with the client's proof
    (no plain password on disk anywhere)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def userlist(user: str, secret: str) -> str:
    """auth_file's line for ``user`` (quotes doubled, as PgBouncer reads them)."""
    return f'"{user.replace(chr(34), chr(34) * 2)}" "{secret}"\n'


@dataclass(frozen=True)
class PgBouncerConfig:
    database: str
    #: Where PostgreSQL listens, as PgBouncer reaches it.
    server_host: str
    server_port: int
    listen_addr: str
    listen_port: int
    auth_file: str
    pool_size: int
    max_clients: int
    #: Empty: log to stderr (up, compose); a path on a host.
    logfile: str = ""
    pidfile: str = ""
    #: Empty: no unix socket (up); Debian's /var/run/postgresql on a host.
    unix_socket_dir: str = ""

    def ini(self) -> str:
        lines = [
            "; Written by flaskprod (spec/pgbouncer.py): transaction pooling, SCRAM.",
            "[databases]",
            f"{self.database} = host={self.server_host} port={self.server_port} "
            f"dbname={self.database}",
            "",
            "[pgbouncer]",
            f"listen_addr = {self.listen_addr}",
            f"listen_port = {self.listen_port}",
            f"unix_socket_dir = {self.unix_socket_dir}",
            "auth_type = scram-sha-256",
            f"auth_file = {self.auth_file}",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            f"max_client_conn = {self.max_clients}",
            f"max_db_connections = {self.pool_size}",
            # psycopg sends none of them, other drivers extra_float_digits
            "ignore_startup_parameters = extra_float_digits",
            "server_reset_query =",
            "server_check_delay = 10",
            # a client waiting longer than the app's pool timeout has given up anyway
            "query_wait_timeout = 30",
            "server_lifetime = 1800",
            "server_idle_timeout = 300",
            f"logfile = {self.logfile}",
            f"pidfile = {self.pidfile}",
            "log_connections = 0",
            "log_disconnections = 0",
            "admin_users =",
            "",
        ]
        return "\n".join(lines)
