"""The deployment spec: one typed description of a deployment (``flaskprod.toml``).

Everything else is derived from it (the kit, ``up``) or checked against it (``check``).
Defaults live here and nowhere else; ``flaskprod init`` writes them out visibly.
Field descriptions double as the reference documentation of the file.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flaskprod.spec.processes import (
    NAME,
    QUEUE_KINDS,
    ProcessKind,
    check_cron,
    classify,
    next_run,
    split,
)
from flaskprod.spec.settings_scan import IMAGE_SETTINGS
from flaskprod.spec.workers import default_pool
from flaskprod.spec.workers import default_workers as default_workers  # re-exported

SPEC_FILENAME = "flaskprod.toml"

_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]?)\s*$")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: str | int) -> int:
    """``"10M"`` -> bytes, in nginx's notation (k, m, g are powers of 1024)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"must be a size like 10M, 512k or 1048576 (got {value!r})")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def format_size(size: int) -> str:
    """Bytes -> the shortest exact nginx size (``10485760`` -> ``"10m"``)."""
    for suffix, unit in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


UrlPath = Annotated[str, Field(pattern=r"^/[^\s]*$")]


class AppSection(_Section):
    target: str = Field(
        description="What the app server imports: 'module:app' or 'module:create_app()'.",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*(\(.*\))?$",
    )
    name: str = Field(
        description="Short name: the system user, service, folder and socket names.",
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
    )
    domains: list[str] = Field(
        default_factory=lambda: ["localhost"],
        min_length=1,
        description="Host names nginx serves; the first is the canonical one.",
    )
    root: str = Field(
        default="/srv/{name}",
        description="Where the project is installed on the server ({name} is replaced).",
    )
    settings: dict[str, str] = Field(
        default_factory=dict,
        description="The app's own environment settings (name = placeholder or note), carried "
        "into the env file, compose and Kubernetes beside flaskprod's. The python image's own "
        "(PYTHON_VERSION = '{python}', LANG) are left to the image and set everywhere else "
        "({python}: the Python that runs the app there).",
    )
    build: list[str] = Field(
        default_factory=list,
        description="Build steps run in the project before it serves (assets, translations, "
        "digests), in the image and in every release.",
    )

    @property
    def install_dir(self) -> str:
        return self.root.replace("{name}", self.name)


WorkerClass = Literal["sync", "gthread", "gevent"]
ServerKind = Literal["gunicorn", "granian"]

#: The app server when the spec does not say; switching it is this one line.
DEFAULT_SERVER_KIND: ServerKind = "granian"

#: Settings only one server has, and what the other one does instead (the error text).
GUNICORN_ONLY: dict[str, str] = {
    "worker_class": "granian runs server.threads blocking threads per worker, like gthread",
    "keepalive": "granian keeps idle HTTP/1 connections open until nginx closes them",
    "max_requests": "granian cannot recycle a worker by request count: use "
    "server.workers_lifetime (seconds) or server.workers_max_rss (MiB)",
    "max_requests_jitter": "granian cannot recycle a worker by request count: use "
    "server.workers_lifetime (seconds) or server.workers_max_rss (MiB)",
    "preload_app": "granian imports the app in each worker (no preload)",
}
GRANIAN_ONLY: dict[str, str] = {
    "workers_lifetime": "gunicorn recycles workers by request count: use server.max_requests",
    "workers_max_rss": "gunicorn recycles workers by request count: use server.max_requests",
}


class ServerSection(_Section):
    kind: ServerKind = Field(
        default=DEFAULT_SERVER_KIND,
        description="The app server: gunicorn (worker_class decides the model) or granian "
        "(WSGI, server.threads blocking threads per worker). Some settings apply to one "
        "of them only: each says so.",
    )
    bind: str = Field(
        default="unix:/run/{name}/{server}.sock",
        description="'unix:/absolute/path.sock' (default, behind nginx; {server} is "
        "server.kind) or 'host:port'.",
    )
    worker_class: WorkerClass = Field(
        default="gthread",
        description="gunicorn only. sync: one request per process; gthread: threads per "
        "process (good for I/O-bound apps behind nginx); gevent: cooperative, needs gevent.",
    )
    workers: int | None = Field(
        default=None, ge=1, le=64, description="Processes; unset: computed from the machine."
    )
    threads: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Threads per gthread worker; granian: blocking threads per worker.",
    )
    timeout: int = Field(
        default=30,
        ge=1,
        le=600,
        description="Seconds a request may run: gunicorn kills a silent worker, and the "
        "app's request watchdog ends a threaded worker (gthread, granian) holding one longer.",
    )
    graceful_timeout: int = Field(
        default=30,
        ge=1,
        le=600,
        description="Seconds a worker may finish in-flight requests on reload/stop "
        "(granian: --workers-kill-timeout).",
    )
    keepalive: int = Field(
        default=5,
        ge=0,
        le=300,
        description="gunicorn only. Seconds to keep an idle upstream connection.",
    )
    max_requests: int = Field(
        default=2000,
        ge=0,
        description="gunicorn only. Recycle a worker after this many requests (0: never).",
    )
    max_requests_jitter: int = Field(
        default=200,
        ge=0,
        description="gunicorn only. Random spread so workers do not recycle together.",
    )
    preload_app: bool = Field(
        default=True, description="gunicorn only. Import the app once in the master, then fork."
    )
    workers_lifetime: int | None = Field(
        default=None,
        ge=60,
        description="granian only. Seconds before a worker is replaced (granian's recycle; "
        "it has no request count); unset: never.",
    )
    workers_max_rss: int | None = Field(
        default=None,
        ge=1,
        description="granian only. Replace a worker whose memory (RSS, MiB) exceeds this; "
        "unset: never.",
    )

    @model_validator(mode="after")
    def _one_server_settings(self) -> ServerSection:
        """A setting of the other server would be silently ignored: refuse it by name."""
        given = self.model_fields_set
        own, other, foreign = (
            ("gunicorn", "granian", GRANIAN_ONLY)
            if self.kind == "gunicorn"
            else ("granian", "gunicorn", GUNICORN_ONLY)
        )
        present = [key for key in foreign if key in given]
        if present:
            key, rest = present[0], present[1:]
            # Every such key in one message: a file switched by hand has several.
            also = f" (and {', '.join(rest)}, {other} only too)" if rest else ""
            raise ValueError(
                f"server.{key}: only applies to {other}, and server.kind is {own!r} "
                f"({foreign[key]}); remove it{also}, or set kind = {other!r}"
            )
        return self

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        if value.startswith("unix:"):
            if not value[5:].startswith("/"):
                raise ValueError(f"a unix socket path must be absolute (got {value!r})")
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be 'unix:/path.sock' or 'host:port' (got {value!r})")
        return value

    @property
    def concurrency(self) -> str:
        """The worker model that decides worker count and pool size: gunicorn's
        worker_class, or "granian" (threads per worker, like gthread)."""
        return self.worker_class if self.kind == "gunicorn" else "granian"

    @property
    def effective_workers(self) -> int:
        return self.workers or default_workers(self.concurrency)


class PathsSection(_Section):
    static_url: UrlPath = Field(default="/static/", description="URL prefix of static files.")
    static_dir: str = Field(
        default="static",
        description="Static folder, relative to the project root (served by nginx with alias).",
    )
    static_max_age: int = Field(
        default=31536000,
        ge=0,
        description="Seconds browsers may cache static files, marked immutable: use "
        "fingerprinted file names (or set 0 to disable caching).",
    )
    media_url: UrlPath = Field(default="/media/", description="URL prefix of user uploads.")
    media_dir: str = Field(
        default="/var/lib/{name}/media",
        description="Absolute folder for uploads, outside the code ({name} is replaced).",
    )
    media_env: list[str] = Field(
        default_factory=lambda: ["MEDIA_ROOT"],
        description="Environment variables that tell the app where uploads go (the setting "
        "the app itself reads, e.g. UPLOAD_FOLDER); each is set to media_dir everywhere.",
    )
    static_fingerprinted: bool = Field(
        default=False,
        description="Static file names carry a content hash (Flask-Static-Digest, a bundler): "
        "only then are they cached as immutable for static_max_age; otherwise browsers "
        "revalidate them.",
    )

    @field_validator("static_url", "media_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.endswith("/"):
            raise ValueError(f"must end with '/' so nginx's alias maps it safely (got {value!r})")
        return value

    @field_validator("static_dir")
    @classmethod
    def _relative(cls, value: str) -> str:
        if PurePosixPath(value).is_absolute() or ".." in PurePosixPath(value).parts:
            raise ValueError(f"must be relative to the project root, without '..' (got {value!r})")
        return value


class RateLimit(_Section):
    rate: str = Field(pattern=r"^\d+r/[sm]$", description="nginx rate, e.g. '10r/s' or '5r/m'.")
    burst: int = Field(default=10, ge=0)


class HttpSection(_Section):
    max_body: str = Field(
        default="10M",
        description="Largest request body: nginx client_max_body_size and the app's "
        "MAX_CONTENT_LENGTH, always equal.",
    )
    trusted_proxies: int = Field(
        default=1, ge=0, le=5, description="Reverse proxies in front of the app (ProxyFix x_for)."
    )
    security_headers: Literal["nginx", "app"] = Field(
        default="nginx",
        description="Which layer sends HSTS, CSP and the other security headers (never both).",
    )
    hsts_max_age: int = Field(default=63072000, ge=0, description="HSTS max-age in seconds.")
    hsts_include_subdomains: bool = Field(
        default=False,
        description="HSTS for every subdomain too (only when all of them serve HTTPS).",
    )
    csp: str = Field(default="default-src 'self'", description="Content-Security-Policy.")
    csp_report_only: bool = Field(
        default=False,
        description="Send the CSP as Content-Security-Policy-Report-Only (reported, not "
        "enforced): for pages whose inline scripts a policy would break.",
    )
    permissions_policy: str = Field(
        default="camera=(), microphone=(), geolocation=()",
        description="Permissions-Policy: browser features the pages may use.",
    )
    health_path: UrlPath = Field(
        default="/health", description="Liveness: answers without dependencies."
    )
    ready_path: UrlPath = Field(
        default="/health/ready", description="Readiness: checks the database and Redis."
    )
    health_source: Literal["app", "kit"] = Field(
        default="app",
        description="Who answers health_path and ready_path: 'app' (its own routes, or "
        "flaskprod.Production) or 'kit' (the kit's entry module answers them in front of an "
        "app that has none, readiness checking its database and Redis).",
    )
    rate_limits: dict[str, RateLimit] = Field(
        default_factory=lambda: {
            "api": RateLimit(rate="20r/s", burst=40),
            "login": RateLimit(rate="10r/m", burst=5),
        },
        description="Named nginx rate limits; 'api' applies to /api/, 'login' to the login route.",
    )
    api_prefix: UrlPath = Field(default="/api/", description="URL prefix of the JSON API.")
    login_path: UrlPath = Field(
        default="/login", description="Route the 'login' rate limit guards."
    )

    @field_validator("max_body")
    @classmethod
    def _size(cls, value: str) -> str:
        parse_size(value)
        return value

    @property
    def max_body_bytes(self) -> int:
        return parse_size(self.max_body)


DatabaseEngine = Literal["postgresql", "mariadb", "mysql", "sqlite"]
DatabaseDriver = Literal["psycopg", "psycopg2", "pg8000", "pymysql", "mysqldb", "mysqlconnector"]
#: The engines spoken to with MySQL's protocol (``mysql+DRIVER://`` URLs).
MYSQL_ENGINES = ("mariadb", "mysql")
POSTGRESQL_DRIVERS = ("psycopg", "psycopg2", "pg8000")
MYSQL_DRIVERS = ("pymysql", "mysqldb", "mysqlconnector")


class DatabaseSection(_Section):
    engine: DatabaseEngine = Field(
        default="postgresql",
        description="postgresql or mariadb/mysql for production (mariadb: the server up "
        "runs and the kit ships; mysql: the same kit for a MySQL server); sqlite for a "
        "single small box.",
    )
    driver: DatabaseDriver = Field(
        default="psycopg",
        description="The driver the project ships (DATABASE_URL's scheme): psycopg, "
        "psycopg2 or pg8000 for PostgreSQL ('postgresql+DRIVER://'); pymysql, mysqldb "
        "(mysqlclient) or mysqlconnector for MariaDB/MySQL ('mysql+DRIVER://'; pymysql "
        "when the engine is one of them and no driver is given).",
    )
    name: str = Field(default="{name}", description="Database name ({name} is replaced).")
    user: str = Field(default="{name}", description="Database role ({name} is replaced).")
    pool_size: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="SQLAlchemy pool size per worker; unset: what the worker model uses at "
        "once (sync 1, gthread one per thread, gevent 10).",
    )
    max_overflow: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Extra connections per worker under load; unset: 1 (the readiness "
        "check), 5 for gevent.",
    )
    pool_recycle: int = Field(
        default=1800, ge=0, description="Seconds before a pooled connection is replaced."
    )
    pool_timeout: int = Field(
        default=10, ge=1, description="Seconds to wait for a pooled connection."
    )
    max_connections: int = Field(
        default=100, ge=1, description="The server's max_connections (PostgreSQL, MariaDB)."
    )
    wait_timeout: int = Field(
        default=3600,
        ge=60,
        description="MariaDB/MySQL: seconds the server keeps an idle connection (its "
        "wait_timeout, as up and compose run it); pool_recycle must stay below it, or "
        "pooled connections die with 'MySQL server has gone away'.",
    )
    local: bool = Field(
        default=True,
        description="The database server runs on the app's server (the service starts after it).",
    )
    pgbouncer: bool = Field(
        default=False,
        description="PostgreSQL: the app connects through PgBouncer (transaction pooling) "
        "instead of directly, so that many app hosts share a few server connections "
        "(database.pgbouncer_pool_size); prepared statements are turned off for it.",
    )
    pgbouncer_pool_size: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="PgBouncer's server connections to PostgreSQL (its default_pool_size): "
        "what PostgreSQL sees however many app connections are open.",
    )
    pgbouncer_max_clients: int = Field(
        default=1000,
        ge=1,
        le=100000,
        description="App connections PgBouncer accepts (its max_client_conn).",
    )

    @model_validator(mode="before")
    @classmethod
    def _mysql_driver(cls, data: object) -> object:
        # A MariaDB/MySQL engine without a driver gets pymysql, not PostgreSQL's default.
        engine = data.get("engine") if isinstance(data, dict) else None
        if isinstance(data, dict) and engine in MYSQL_ENGINES and "driver" not in data:
            return {**data, "driver": "pymysql"}
        return data

    @model_validator(mode="after")
    def _driver_fits_engine(self) -> DatabaseSection:
        if self.engine == "sqlite":
            return self
        fitting = MYSQL_DRIVERS if self.is_mysql else POSTGRESQL_DRIVERS
        if self.driver not in fitting:
            raise ValueError(
                f"database.driver: {self.driver!r} is not a driver for {self.engine}; "
                f"use one of {', '.join(fitting)}"
            )
        if self.pgbouncer and self.engine != "postgresql":
            raise ValueError(
                f"database.pgbouncer: PgBouncer pools PostgreSQL connections, not "
                f"{self.label}'s; remove it or set engine = 'postgresql'"
            )
        if self.pgbouncer and self.driver != "psycopg":
            raise ValueError(
                f"database.pgbouncer: transaction pooling needs prepared statements off, "
                f"which flaskprod sets for psycopg (3) only; got driver = {self.driver!r}"
            )
        if self.is_mysql and self.pool_recycle >= self.wait_timeout:
            raise ValueError(
                f"database.pool_recycle ({self.pool_recycle}) must be below "
                f"database.wait_timeout ({self.wait_timeout}): the server closes idle "
                "connections first ('MySQL server has gone away')"
            )
        return self

    @property
    def is_mysql(self) -> bool:
        """MariaDB or MySQL: the MySQL protocol, ``mysql+DRIVER://`` URLs."""
        return self.engine in MYSQL_ENGINES

    @property
    def server_engine(self) -> bool:
        """A database server the stack runs (PostgreSQL, MariaDB/MySQL), not SQLite."""
        return self.engine != "sqlite"

    @property
    def scheme(self) -> str:
        """The SQLAlchemy URL scheme: ``postgresql+psycopg``, ``mysql+pymysql``..."""
        return f"{'mysql' if self.is_mysql else 'postgresql'}+{self.driver}"

    @property
    def label(self) -> str:
        """How messages name the server: PostgreSQL, MariaDB, MySQL, SQLite."""
        return {"postgresql": "PostgreSQL", "mariadb": "MariaDB", "mysql": "MySQL"}.get(
            self.engine, "SQLite"
        )

    def url(self, user: str, password: str, host: str, port: int, name: str) -> str:
        """The app's DATABASE_URL on a server (MySQL's: utf8mb4 named in the URL)."""
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}" if password else quote(user)
        url = f"{self.scheme}://{auth}@{host}:{port}/{name}"
        return f"{url}?charset=utf8mb4" if self.is_mysql else url


class RedisSection(_Section):
    enabled: bool = Field(default=True, description="Redis for sessions, cache and rate data.")
    maxmemory: str = Field(default="256mb", description="Redis memory limit.")
    maxmemory_policy: str = Field(default="allkeys-lru", description="What Redis evicts when full.")
    local: bool = Field(
        default=True, description="Redis runs on the app's server (the service starts after it)."
    )


#: SeaweedFS's own S3 gateway port: a host's (``up`` picks a free one instead).
S3_PORT = 8333


class StorageSection(_Section):
    """Where uploads live: a folder of the app's host, or an S3 bucket every app host
    reaches (what lets several app hosts serve the same uploads)."""

    kind: Literal["local", "s3"] = Field(
        default="local",
        description="local: paths.media_dir on the app's host (nginx serves it); s3: a "
        "bucket on an S3 API (SeaweedFS, which 'flaskprod up' runs and a deploy can "
        "provision), nginx proxying paths.media_url to it.",
    )
    bucket: str = Field(
        default="{name}-media",
        pattern=r"^[a-z0-9{}][a-z0-9.{}-]{1,61}[a-z0-9}]$",
        description="s3: the uploads' bucket ({name} is replaced); anonymous clients may "
        "read its objects (public images), never list or write them.",
    )
    endpoint: str = Field(
        default=f"http://127.0.0.1:{S3_PORT}",
        pattern=r"^https?://[^/\s]+$",
        description="s3: the S3 API's URL as the app hosts and nginx reach it (up: its "
        "own SeaweedFS; a host: SeaweedFS on the storage host's private address).",
    )
    region: str = Field(default="us-east-1", description="s3: the region requests are signed for.")

    @property
    def on_loopback(self) -> bool:
        """The endpoint is this host's own (SeaweedFS beside the app: ``up``, one server)."""
        host = urlsplit(self.endpoint).hostname or ""
        return host == "localhost" or host.startswith("127.") or host == "::1"


#: Let's Encrypt's production ACME directory (tls.acme_directory's default).
LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"


class TlsSection(_Section):
    mode: Literal["letsencrypt", "own", "local-ca"] = Field(
        default="letsencrypt",
        description="letsencrypt: certbot webroot; own: certificate files you provide; "
        "local-ca: flaskprod's own CA (development, 'flaskprod up').",
    )
    certificate: str = Field(
        default="/etc/letsencrypt/live/{domain}/fullchain.pem",
        description="Certificate chain path ({domain} is the first domain).",
    )
    certificate_key: str = Field(
        default="/etc/letsencrypt/live/{domain}/privkey.pem", description="Private key path."
    )
    acme_webroot: str = Field(
        default="/var/www/letsencrypt",
        description="Folder nginx serves /.well-known/acme-challenge/ from (certbot --webroot).",
    )
    acme_directory: str = Field(
        default=LETSENCRYPT_DIRECTORY,
        pattern=r"^https://\S+$",
        description="letsencrypt: the ACME server's directory URL certbot asks for the "
        "certificate (Let's Encrypt's by default; its staging server or a private one).",
    )
    acme_ca: str | None = Field(
        default=None,
        min_length=1,
        description="letsencrypt: a CA file on this machine (relative to the project) that "
        "certbot on the server trusts for a private ACME server; unset: the system's CAs.",
    )
    acme_email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="letsencrypt: the address the ACME account is registered with (expiry "
        "notices); unset: registered without one.",
    )


class BackupSection(_Section):
    schedule: str = Field(default="daily", description="systemd OnCalendar= expression.")
    keep: int = Field(default=14, ge=1, description="Backups kept at least (newest first).")
    max_age_days: int = Field(default=30, ge=1, description="Older backups are removed.")
    dir: str = Field(default="/var/backups/{name}", description="Where backups are written.")


class RoleHost(_Section):
    """A host holding one role of a deploy over several hosts."""

    host: str = Field(
        min_length=1,
        pattern=r"^[^\s]+$",
        description="OpenSSH destination ([user@]host[:port] or a Host of your ssh_config).",
    )


class DeploySection(_Section):
    user: str = Field(default="{name}", description="System user the app runs as (never root).")
    env_file: str = Field(default="/etc/{name}/{name}.env", description="systemd EnvironmentFile.")
    venv: str = Field(default="{root}/.venv", description="Virtual environment on the server.")
    python_version: str = Field(
        default="3.11", pattern=r"^3\.\d+$", description="Python of the image."
    )
    log_dir: str = Field(default="/var/log/{name}", description="Log folder on the server.")
    keep_releases: int = Field(
        default=5,
        ge=2,
        le=50,
        description="Releases 'flaskprod deploy' keeps on each host (the live one and "
        "those a rollback can return to); older ones are pruned.",
    )
    hosts: list[str] = Field(
        default_factory=list,
        description="Servers 'flaskprod deploy' deploys to when no --host is given: OpenSSH "
        "destinations ([user@]host[:port] or a Host of your ssh_config). With "
        "[deploy.balancer] and [deploy.database]: the app hosts behind the balancer.",
    )
    balancer: RoleHost | None = Field(
        default=None,
        description="[deploy.balancer] host: nginx with TLS in front of the app hosts, the only "
        "public entry (may be one of the app hosts). Goes with [deploy.database].",
    )
    database: RoleHost | None = Field(
        default=None,
        description="[deploy.database] host: PostgreSQL and the backups on a host of their own "
        "(not an app host), reached by the app hosts over the private network.",
    )
    redis: RoleHost | None = Field(
        default=None,
        description="[deploy.redis] host: Redis on its own host (default: the database host).",
    )
    storage: RoleHost | None = Field(
        default=None,
        description="[deploy.storage] host: SeaweedFS, the S3 bucket of the uploads (storage.kind "
        '= "s3") and of the backups copied off the database host; an app host or the '
        "balancer, never the database host (the backups must survive it).",
    )
    private: dict[str, str] = Field(
        default_factory=dict,
        description='[deploy.private] <host> = "<address>": each host\'s address on the '
        "private network between the hosts; a host not listed here has its one RFC 1918 / "
        "ULA address discovered on it.",
    )

    @model_validator(mode="after")
    def _roles_fit(self) -> DeploySection:
        # Several hosts by role: one line naming the key that does not fit.
        if (self.balancer is None) != (self.database is None):
            given = "deploy.balancer" if self.balancer else "deploy.database"
            raise ValueError(
                f"{given}: [deploy.balancer] and [deploy.database] go together (several app "
                "hosts need one entry and one shared database); set both, or neither for "
                "one server"
            )
        if self.redis is not None and self.database is None:
            raise ValueError("deploy.redis: needs [deploy.database] (several hosts)")
        if self.storage is not None and self.database is None:
            raise ValueError("deploy.storage: needs [deploy.database] (several hosts)")
        if self.storage is not None and self.database and self.storage.host == self.database.host:
            raise ValueError(
                f"deploy.storage.host: {self.storage.host} is the database host; the backups "
                "are copied to the storage host to survive the database host: name an app "
                "host, the balancer or a host of its own"
            )
        if len(set(self.hosts)) != len(self.hosts):
            raise ValueError("deploy.hosts: a host is listed twice")
        if self.database is not None:
            if not self.hosts:
                raise ValueError("deploy.hosts: name the app hosts behind deploy.balancer")
            for key, role in (("deploy.database.host", self.database),
                              ("deploy.redis.host", self.redis)):  # fmt: skip
                if role is None:
                    continue
                if role.host in self.hosts:
                    raise ValueError(
                        f"{key}: {role.host} is also an app host (deploy.hosts); the "
                        "database and Redis get hosts of their own"
                    )
                if self.balancer is not None and role.host == self.balancer.host:
                    raise ValueError(
                        f"{key}: {role.host} is also the balancer, the public entry; the "
                        "database and Redis stay on the private network"
                    )
        named = set(self.hosts) | {
            role.host for role in (self.balancer, self.database, self.redis, self.storage) if role
        }
        for host, address in self.private.items():
            if self.database is None or host not in named:
                raise ValueError(
                    f"deploy.private.{host}: not a host of [deploy] hosts, balancer, "
                    "database, redis or storage"
                )
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(
                    f"deploy.private.{host}: {address!r} is not an IP address"
                ) from None
        return self


class ContainerSection(_Section):
    """Images and sizes for Docker, Compose and Kubernetes."""

    python_image: str = Field(
        default="python:3.11.11-slim-bookworm",
        pattern=r"^python:3\.\d+\.\d+-slim-[a-z]+$",
        description="Base image, pinned to a patch release (same minor as deploy.python_version).",
    )
    image: str = Field(
        default="ghcr.io/your-org/{name}",
        description="Image repository the app is pushed to and pulled from (no tag).",
    )
    tag: str = Field(
        default="latest",
        description="Image tag Compose and Kubernetes run. init writes the commit it ran "
        "at (CI pushes each commit's image under its sha); deploys name the commit they "
        "deploy. 'latest' moves: Kubernetes cannot roll back to it (check's K8S008).",
    )
    port: int = Field(
        default=8000, ge=1, le=65535, description="Port the app server binds in a container."
    )
    uid: int = Field(default=10001, ge=1000, description="Numeric non-root user of the image.")
    nginx_image: str = Field(
        default="nginx:1.22.1-alpine",
        description="nginx image of compose (same major as the nginx the site is tested with).",
    )
    postgres_image: str = Field(default="postgres:15.10-bookworm", description="PostgreSQL image.")
    mariadb_image: str = Field(
        default="mariadb:10.11.10-jammy",
        description="MariaDB image (database.engine = mariadb/mysql; the LTS series the "
        "kit is tested with).",
    )
    redis_image: str = Field(default="redis:7.0.15-bookworm", description="Redis image.")
    replicas: int = Field(
        default=2, ge=1, description="Kubernetes pods (the autoscaler's minimum)."
    )
    max_replicas: int = Field(default=6, ge=1, description="Most pods the autoscaler may run.")
    cpu_target: int = Field(
        default=70, ge=10, le=100, description="Average CPU % the autoscaler aims for."
    )
    cpu_request: str = Field(default="250m", description="CPU reserved per pod.")
    cpu_limit: str = Field(default="1", description="CPU limit per pod.")
    memory_request: str = Field(default="256Mi", description="Memory reserved per pod.")
    memory_limit: str = Field(default="512Mi", description="Memory limit per pod (OOM-kill above).")
    pre_stop_seconds: int = Field(
        default=5,
        ge=0,
        le=60,
        description="Pause before SIGTERM so load balancers stop sending traffic first.",
    )
    ingress_class: str = Field(default="nginx", description="Kubernetes IngressClass.")


class ProcessSection(_Section):
    """A process of the app beside its web server: a queue worker, a scheduler, or a
    command run on a schedule. Every target runs it from here (systemd unit and timer,
    compose service, Kubernetes Deployment or CronJob, Procfile line, ``flaskprod up``)."""

    command: str = Field(
        description="What it runs, from the project's root in its virtualenv, as the project "
        "wrote it (e.g. 'rq worker microblog-tasks', 'celery -A app.celery worker', "
        "'flask send-digest'). An RQ worker gets the app's REDIS_URL (--url) unless it names one.",
        min_length=1,
    )
    kind: ProcessKind = Field(
        default="command",
        description="rq, rq-scheduler, celery, celery-beat (read from the command) or "
        "command: how it stops gracefully, whether its Redis must never evict, check's rules.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Jobs it runs at once: celery --concurrency; rq: 'rq worker-pool' with "
        "that many workers when above 1; unset: the tool's default (rq 1, celery one per core).",
    )
    schedule: str | None = Field(
        default=None,
        description="Cron schedule (minute hour day month weekday, e.g. '0 3 * * *'): a "
        "command run then (systemd timer, Kubernetes CronJob with concurrencyPolicy Forbid) "
        "instead of a long-running process; unset: it runs all the time.",
    )
    stop_timeout: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="Seconds it may take to finish its current job when stopped (TERM: "
        "RQ's and Celery's warm shutdown) before it is killed; at least the longest job.",
    )

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not split(value):
            raise ValueError("is empty")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_cron(value)
        try:  # valid fields can still name no real day: every target would wait for ever
            next_run(value, datetime(2000, 1, 1))
        except ValueError:
            raise ValueError(
                f"{value!r} names no day that exists (cron's day and month fields), so it "
                "would never run; e.g. '0 0 28 2 *'"
            ) from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _kind_from_command(cls, data: object) -> object:
        """An unset kind is the one the command runs (rq worker -> rq)."""
        if isinstance(data, dict) and "kind" not in data and isinstance(data.get("command"), str):
            try:
                found = classify(split(data["command"]))
            except ValueError:
                return data  # the command's own validator says why
            if found is not None:
                return {**data, "kind": found}
        return data

    @model_validator(mode="after")
    def _kind_matches(self) -> ProcessSection:
        found = classify(split(self.command))
        if found is not None and found != self.kind:
            raise ValueError(f"kind = {self.kind!r}, but the command runs {found}: set {found!r}")
        if self.schedule and self.kind != "command":
            raise ValueError(
                f"schedule: a {self.kind} process runs all the time; a schedule is for a "
                "command run at fixed times (its own scheduler has the job schedule)"
            )
        return self

    @property
    def uses_queue(self) -> bool:
        """It keeps jobs in Redis (RQ, Celery on a Redis broker)."""
        return self.kind in QUEUE_KINDS

    @property
    def argv(self) -> list[str]:
        return split(self.command)


class Spec(BaseModel):
    """The whole ``flaskprod.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app: AppSection
    server: ServerSection = Field(default_factory=ServerSection)
    paths: PathsSection = Field(default_factory=PathsSection)
    http: HttpSection = Field(default_factory=HttpSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    redis: RedisSection = Field(default_factory=RedisSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    tls: TlsSection = Field(default_factory=TlsSection)
    backup: BackupSection = Field(default_factory=BackupSection)
    deploy: DeploySection = Field(default_factory=DeploySection)
    container: ContainerSection = Field(default_factory=ContainerSection)
    processes: dict[str, ProcessSection] = Field(
        default_factory=dict,
        description="Processes beside the web server, by name ([processes.worker]): queue "
        "workers, schedulers, scheduled commands.",
    )
    ignore: dict[str, str] = Field(
        default_factory=dict, description="Silenced check ids and the reason: {NGX004 = 'why'}."
    )

    @model_validator(mode="after")
    def _several_hosts_need_postgresql(self) -> Spec:
        if self.deploy.database is not None and self.database.engine != "postgresql":
            raise ValueError(
                f"deploy.database: a database host is provisioned for PostgreSQL only "
                f"(database.engine = {self.database.engine!r})"
            )
        return self

    @model_validator(mode="after")
    def _storage_host_fits(self) -> Spec:
        # Several app hosts share one bucket: SeaweedFS on [deploy.storage], or an S3
        # API elsewhere that storage.endpoint names (not loopback: each host's own).
        deploy, storage = self.deploy, self.storage
        if deploy.storage is not None and storage.kind != "s3":
            raise ValueError(
                "deploy.storage: the storage host serves an S3 bucket; set storage.kind = "
                '"s3" (uploads shared by every app host), or remove [deploy.storage]'
            )
        several = deploy.database is not None
        if several and storage.kind == "s3" and deploy.storage is None and storage.on_loopback:
            raise ValueError(
                f"storage.endpoint: {storage.endpoint} is each app host's own loopback; name "
                'the host that runs the bucket ([deploy.storage] host = "...") or an S3 API '
                "every app host reaches"
            )
        return self

    @model_validator(mode="after")
    def _image_matches_python(self) -> Spec:
        minor = self.deploy.python_version
        if not self.container.python_image.startswith(f"python:{minor}."):
            raise ValueError(
                f"container.python_image must be a Python {minor} image, like deploy.python_version"
                f" (got {self.container.python_image!r})"
            )
        return self

    @model_validator(mode="after")
    def _granian_target(self) -> Spec:
        # granian calls a factory without arguments (--factory); gunicorn evaluates them.
        # The kit's entry module (http.health_source = "kit") calls it with them instead.
        target = self.app.target
        called = "(" in target and not target.endswith("()")
        if self.server.kind == "granian" and called and self.http.health_source != "kit":
            raise ValueError(
                f"app.target: granian calls a factory without arguments (got {target!r}); "
                "use 'module:create_app()' or 'module:app', or set server.kind = 'gunicorn'"
            )
        return self

    @model_validator(mode="after")
    def _queue_never_evicted(self) -> Spec:
        queues = self.queue_processes
        policy = self.redis.maxmemory_policy
        if queues and self.redis.enabled and policy != "noeviction":
            raise ValueError(
                f"redis.maxmemory_policy = {policy!r} evicts keys when Redis is full, and "
                f"processes.{queues[0]} keeps its jobs in Redis (they would be dropped "
                "silently): set maxmemory_policy = 'noeviction'"
            )
        return self

    @field_validator("processes")
    @classmethod
    def _process_names(cls, value: dict[str, ProcessSection]) -> dict[str, ProcessSection]:
        for name in value:
            if not NAME.match(name) or name in {"web", "release", "backup", "migrate"}:
                raise ValueError(
                    f"processes.{name}: a name of lowercase letters, digits and '-' (at most "
                    "21), not web, release, backup or migrate (the kit's own)"
                )
        return value

    @property
    def queue_processes(self) -> list[str]:
        """Names of the processes that keep jobs in Redis."""
        return [name for name, process in self.processes.items() if process.uses_queue]

    # -- placeholders resolved once, here, so every consumer agrees -----------------
    def resolve(self, text: str) -> str:
        """Replace {name}, {root}, {domain}, {server}, {python} in a setting."""
        return (
            text.replace("{root}", self.app.install_dir)
            .replace("{name}", self.app.name)
            .replace("{domain}", self.app.domains[0])
            .replace("{server}", self.server.kind)
            .replace("{python}", self.python_release)
        )

    @property
    def python_release(self) -> str:
        """The deploy Python's full version, as the image names it (3.11.11): the same
        minor as deploy.python_version (validated), the patch the image pins."""
        return self.container.python_image.removeprefix("python:").split("-", 1)[0]

    def image_settings(self, python: str | None = None) -> dict[str, str]:
        """The app's settings that the ``python:*`` image defines itself (PYTHON_VERSION,
        LANG): the kit's image has them, every other target must set them. ``python``:
        the version of the interpreter that runs the app there (``up``: the project's
        own), else the deploy Python."""
        version = python or self.python_release
        return {
            name: self.resolve(value.replace("{python}", version))
            for name, value in self.app.settings.items()
            if name in IMAGE_SETTINGS
        }

    @property
    def socket_path(self) -> str | None:
        bind = self.resolve(self.server.bind)
        return bind[5:] if bind.startswith("unix:") else None

    @property
    def bind(self) -> str:
        return self.resolve(self.server.bind)

    @property
    def media_dir(self) -> str:
        return self.resolve(self.paths.media_dir)

    @property
    def media_bucket(self) -> str:
        return self.resolve(self.storage.bucket)

    @property
    def static_dir(self) -> str:
        """Absolute static folder on the server."""
        return f"{self.app.install_dir}/{self.paths.static_dir}".rstrip("/")

    @property
    def pool(self) -> tuple[int, int]:
        """(pool_size, max_overflow) per worker: the spec's, or derived from the worker
        model (:func:`flaskprod.spec.workers.default_pool`)."""
        size, overflow = default_pool(self.server.concurrency, self.server.threads)
        database = self.database
        return (
            size if database.pool_size is None else database.pool_size,
            overflow if database.max_overflow is None else database.max_overflow,
        )

    @property
    def pool_connections(self) -> int:
        """Most connections the app can open: workers x (pool + overflow)."""
        return self.server.effective_workers * sum(self.pool)
