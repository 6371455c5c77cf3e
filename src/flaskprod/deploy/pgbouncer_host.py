"""Provision PgBouncer next to PostgreSQL on a host (``database.pgbouncer``): a deploy
step the single-host provisioning and the database role of a multi-host deploy call.

Debian's package and its systemd unit (``pgbouncer.service``, as the postgres user,
Type=notify); flaskprod writes ``/etc/pgbouncer/pgbouncer.ini`` from the settings
every target shares (:mod:`flaskprod.spec.pgbouncer`: transaction pooling, SCRAM) and
the auth file from the role's own SCRAM verifier, read from ``pg_authid`` on the host:
no password is copied anywhere, and because the verifier is the very one PostgreSQL
holds, PgBouncer logs in to PostgreSQL with the client's proof (SCRAM pass-through).
The firewall (who may reach the listen address) is the role code's.
"""

from __future__ import annotations

import io
import shlex
from dataclasses import dataclass

from pyinfra.operations import apt, files, systemd

from flaskprod.deploy.engine import Engine, StepResult
from flaskprod.deploy.ops import ensure
from flaskprod.spec.model import Spec
from flaskprod.spec.pgbouncer import PORT, STATEMENT_TIMEOUT, PgBouncerConfig

INI = "/etc/pgbouncer/pgbouncer.ini"
USERLIST = "/etc/pgbouncer/userlist.txt"


@dataclass(frozen=True)
class PgBouncerHost:
    database: str
    user: str
    pool_size: int
    max_clients: int
    #: Where PgBouncer listens: 127.0.0.1 beside the app, the private address for
    #: app hosts elsewhere.
    listen_addr: str = "127.0.0.1"
    listen_port: int = PORT
    server_port: int = 5432

    @classmethod
    def from_spec(cls, spec: Spec, listen_addr: str = "127.0.0.1") -> PgBouncerHost:
        database = spec.database
        return cls(
            database=spec.resolve(database.name),
            user=spec.resolve(database.user),
            pool_size=database.pgbouncer_pool_size,
            max_clients=database.pgbouncer_max_clients,
            listen_addr=listen_addr,
        )

    def ini(self) -> str:
        return PgBouncerConfig(
            database=self.database,
            server_host="127.0.0.1",
            server_port=self.server_port,
            listen_addr=self.listen_addr,
            listen_port=self.listen_port,
            auth_file=USERLIST,
            pool_size=self.pool_size,
            max_clients=self.max_clients,
            logfile="/var/log/postgresql/pgbouncer.log",
            pidfile="/var/run/postgresql/pgbouncer.pid",
            unix_socket_dir="/var/run/postgresql",
        ).ini()


def _psql(sql: str) -> str:
    return "runuser -u postgres -- psql -XAtq -c " + shlex.quote(sql)


def provision_pgbouncer(engine: Engine, settings: PgBouncerHost) -> StepResult:
    """PgBouncer in front of the host's PostgreSQL (which must run, with the role).
    Idempotent: a second run changes nothing."""
    # the role as an SQL literal and identifier (quotes doubled)
    role = settings.user.replace("'", "''")
    ident = settings.user.replace('"', '""')
    verifier = _psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'")  # noqa: S608
    # the auth file's one line, from the role's current SCRAM verifier
    line = f'printf \'"%s" "%s"\\n\' {shlex.quote(settings.user)} "$({verifier})"'
    timeout = _psql(f"SELECT rolconfig FROM pg_roles WHERE rolname = '{role}'")  # noqa: S608
    with engine.step("PgBouncer (transaction pooling, SCRAM)") as step:
        step.op(
            apt.packages,
            "package pgbouncer",
            packages=["pgbouncer"],
            update=True,
            cache_time=3600,
            no_recommends=True,
        )
        step.op(
            ensure,
            f"role {settings.user}: a SCRAM password, statement_timeout {STATEMENT_TIMEOUT}",
            check=f"{verifier} | grep -q '^SCRAM-SHA-256\\$' && {timeout} | "
            f"grep -q 'statement_timeout={STATEMENT_TIMEOUT}' && echo ok",
            fix=[
                f"{verifier} | grep -q '^SCRAM-SHA-256\\$' || "
                f"{{ echo 'the role {settings.user} has no SCRAM password' >&2; exit 1; }}",
                # through PgBouncer the app sends no startup options: the role carries it
                _psql(f"ALTER ROLE \"{ident}\" SET statement_timeout = '{STATEMENT_TIMEOUT}'"),
            ],
        )
        auth = step.op(
            ensure,
            f"{USERLIST} from the role's SCRAM verifier",
            check=f'[ "$(cat {USERLIST} 2>/dev/null)" = "$({line})" ] && echo ok',
            fix=[
                f"umask 027 && {line} > {USERLIST}.new",
                f"chown root:postgres {USERLIST}.new && mv {USERLIST}.new {USERLIST}",
            ],
        )
        ini = step.op(
            files.put,
            INI,
            src=io.StringIO(settings.ini()),
            dest=INI,
            user="root",
            group="postgres",
            mode="640",
        )
        step.op(
            systemd.service,
            "pgbouncer running",
            service="pgbouncer",
            running=True,
            enabled=True,
            restarted=ini,  # listen address or pool changed: a restart applies them
            reloaded=auth and not ini,  # a new verifier: SIGHUP rereads the auth file
        )
    return step.result
