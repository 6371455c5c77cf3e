"""The stacks under test, started one after another on shared PostgreSQL and Redis.

- ``limit``: Flask "hello" on bare gunicorn over TCP (no nginx, no TLS);
- ``usual``: the shop as deployment tutorials set it up (sync workers at 2 x cores
  + 1 on 127.0.0.1:port, nginx with certbot's TLS settings proxying without upstream
  keepalive, the app's default pool, no response cache);
- ``flaskprod``: the shop exactly as ``flaskprod up`` runs it (the rendered kit).

PostgreSQL and Redis are started once (flaskprod's own classes, the ones ``up``
uses) and given to every stack, so each stack's figures include the same backends.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from flaskprod.spec.model import Spec
from flaskprod.stack import gunicorn as stack_gunicorn
from flaskprod.stack import process
from flaskprod.stack.ca import ensure_ca
from flaskprod.stack.nginx import find_nginx, nginx_user
from flaskprod.stack.ports import free_port, free_ports
from flaskprod.stack.postgres import PostgresCluster
from flaskprod.stack.redis import RedisServer
from flaskprod.stack.state import StateDir

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
BIN = Path(sys.executable).parent
TOKEN = "bench-token-" + "7" * 32
# One client IP stands for many users here: nginx's per-IP API rate limit (20 r/s)
# would answer 429 to nearly every benchmark request. It stays configured (the
# limit_req module still runs on every request), only its rate and burst are raised.
BENCH_API_RATE = "100000r/s"
BENCH_API_BURST = 100000  # nginx counts per millisecond: bursts within one ms need room


@dataclass
class Running:
    """A stack while it runs: where to send requests and which pids are its own."""

    name: str
    url: str  # scheme://host:port
    host: str
    port: int
    tls: bool
    pids: dict[str, int]  # service -> root pid (CPU/memory: the whole tree)
    ca: Path | None = None  # the CA that signed its certificate (TLS stacks)
    workers_of: int | None = None  # the gunicorn master (per-worker memory)
    notes: dict[str, str] = field(default_factory=dict)
    project: Path | None = None  # the shop copy `up` runs (flaskprod stacks)


@dataclass
class Shared:
    base: Path
    project: Path
    postgres: PostgresCluster
    redis: RedisServer
    database_url: str
    product_ids: tuple[int, ...] = ()

    @property
    def backend_pids(self) -> dict[str, int]:
        pids = {"postgres": self.postgres.pid, "redis": self.redis.pid}
        return {name: pid for name, pid in pids.items() if pid is not None}

    def app_env(self, spec: Spec, **extra: str) -> dict[str, str]:
        env = stack_gunicorn.app_environment(
            spec,
            os.environ,
            secret_key="bench-secret-" + "k" * 40,
            database_url=self.database_url,
            redis_url=self.redis.url(),
            media_root=self.base / "media",
        )
        env.update(extra)
        return env


def copy_shop(
    base: Path, spec_edits: dict[str, str | None] | None = None, source: Path = SHOP
) -> Path:
    """A copy of examples/shop (or ``source``, e.g. the shop of an earlier commit);
    ``spec_edits``: ``key = value`` lines to replace (None: comment the key out, as a
    granian spec does with gunicorn's own settings)."""
    project = base / "shop"
    shutil.copytree(
        source,
        project,
        ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__", "*.pyc"),
    )
    spec_file = project / "flaskprod.toml"
    text = spec_file.read_text()
    text, count = re.subn(
        r'(\[http\.rate_limits\.api\]\s*\nrate = )"[^"]*"\s*\nburst = \d+',
        rf'\1"{BENCH_API_RATE}"\nburst = {BENCH_API_BURST}',
        text,
    )
    if count != 1:
        raise ValueError("flaskprod.toml: no [http.rate_limits.api] rate/burst to raise")
    for key, value in (spec_edits or {}).items():
        if not re.search(rf"(?m)^#?[ \t]*{key} = ", text):
            raise ValueError(f"flaskprod.toml has no {key!r} line to set")
        if value is None:  # comment it out; already a comment (today's shop): as it is
            text = re.sub(rf"(?m)^{key} = ", f"# {key} = ", text)
        else:
            text = re.sub(rf"(?m)^#?[ \t]*{key} = .*$", f"{key} = {value}", text, count=1)
    spec_file.write_text(text)
    return project


def load_spec(project: Path) -> Spec:
    from flaskprod.spec.load import load_spec as load

    return load(project / "flaskprod.toml")


@contextmanager
def shared_services() -> Iterator[Shared]:
    """PostgreSQL + Redis in a temp folder, the shop's schema migrated and seeded."""
    base = Path(tempfile.mkdtemp(prefix="flaskprod-perf-"))
    base.chmod(0o755)  # PostgreSQL runs as the postgres user under it
    postgres = PostgresCluster(base / "pg", die_with_parent=True)
    redis = RedisServer(base / "redis", persistence=True, die_with_parent=True)
    try:
        postgres.start()
        redis.start()
        with postgres.connect() as conn:
            conn.execute("CREATE ROLE shop LOGIN")
            conn.execute("CREATE DATABASE shop OWNER shop")
        shared = Shared(
            base=base,
            project=copy_shop(base),
            postgres=postgres,
            redis=redis,
            database_url=f"postgresql+psycopg://shop@127.0.0.1:{postgres.port}/shop",
        )
        env = shared.app_env(load_spec(shared.project), SHOP_DEMO_TOKEN=TOKEN)
        for args in (["db", "upgrade"], ["seed"]):
            subprocess.run(
                [str(BIN / "flask"), "--app", "wsgi:app", *args],
                cwd=shared.project,
                env=env,
                check=True,
                capture_output=True,
            )
        yield shared
    finally:
        redis.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


def _verify(ca: Path | None) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca)) if ca else True


def _wait_http(url: str, path: str = "/", ca: Path | None = None, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + path, verify=_verify(ca), timeout=2.0)
            if response.status_code < 500:
                return
            last = str(response.status_code)
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.1)
    raise RuntimeError(f"{url}{path} not answering within {timeout:g}s ({last})")


def product_ids(stack: Running) -> tuple[int, ...]:
    response = httpx.get(stack.url + "/api/products", verify=_verify(stack.ca), timeout=5.0)
    response.raise_for_status()
    body = response.json()
    items = body["products"] if isinstance(body, dict) else body
    return tuple(int(item["id"]) for item in items)


# -- the limit -----------------------------------------------------------------------------


@contextmanager
def limit_stack(logs: Path, workers: int, *, production: bool = False) -> Iterator[Running]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if production:
        env |= {"BENCH_PRODUCTION": "1", "FLASKPROD_ENV": "production", "LOG_LEVEL": "INFO"}
    target = "bench.perf.hello:production" if production else "bench.perf.hello:app"
    proc = process.start(
        [
            *stack_gunicorn.gunicorn_executable(),
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            target,
        ],
        name="gunicorn",
        log_path=logs / f"limit-{'production' if production else 'bare'}.log",
        cwd=REPO,
        env=env,
        die_with_parent=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url)
        yield Running(
            name="limit+Production" if production else "limit",
            url=url,
            host="127.0.0.1",
            port=port,
            tls=False,
            pids={"gunicorn": proc.pid},
            workers_of=proc.pid,
            notes={"server": f"gunicorn sync x{workers}, bare, HTTP"},
        )
    finally:
        proc.stop()


# -- the usual configuration ------------------------------------------------------------------

_USUAL_SITE = """\
# The usual configuration: what the deployment tutorials write (seeds), with the TLS
# lines certbot --nginx adds (options-ssl-nginx.conf). Process settings like up's.
{user}daemon off;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log {prefix}/access.log;
    gzip on;
    client_body_temp_path {prefix}/temp/client_body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache shared:le_nginx_SSL:10m;
        ssl_session_timeout 1440m;
        ssl_session_tickets off;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_prefer_server_ciphers off;

        location /static/ {{
            alias {static}/;
        }}

        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@contextmanager
def usual_stack(shared: Shared) -> Iterator[Running]:
    cores = os.cpu_count() or 1
    workers = 2 * cores + 1
    app_port, https_port = free_ports(2)
    spec = load_spec(shared.project)
    env = shared.app_env(spec, FLASKPROD_PRODUCTS_CACHE_SECONDS="0")
    for tuned in ("FLASKPROD_SQLALCHEMY_POOL_SIZE", "FLASKPROD_SQLALCHEMY_MAX_OVERFLOW"):
        env.pop(tuned)  # the app's default pool, as the tutorials leave it
    logs = shared.base / "logs"
    app = process.start(
        [
            *stack_gunicorn.gunicorn_executable(),
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{app_port}",
            "--no-control-socket",
            "wsgi:app",
        ],
        name="gunicorn",
        log_path=logs / "usual-gunicorn.log",
        cwd=shared.project,
        env=env,
        die_with_parent=True,
    )
    prefix = shared.base / "usual-nginx"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "temp" / kind).mkdir(parents=True, exist_ok=True)
    ca = ensure_ca(shared.base / "tls")
    user = nginx_user()
    conf = prefix / "nginx.conf"
    conf.write_text(
        _USUAL_SITE.format(
            user=f"user {user[0]} {user[1]};\n" if user else "",
            prefix=prefix,
            port=https_port,
            cert=ca.server_cert,
            key=ca.server_key,
            static=shared.project / spec.paths.static_dir,
            app_port=app_port,
        )
    )
    nginx = process.start(
        [find_nginx(), "-p", str(prefix), "-c", str(conf)],
        name="nginx",
        log_path=logs / "usual-nginx.log",
        cwd=prefix,
        die_with_parent=True,
    )
    try:
        url = f"https://localhost:{https_port}"
        _wait_http(url, "/health", ca.ca_cert)
        yield Running(
            name="usual",
            url=url,
            host="localhost",
            port=https_port,
            tls=True,
            pids={"gunicorn": app.pid, "nginx": nginx.pid, **shared.backend_pids},
            ca=ca.ca_cert,
            workers_of=app.pid,
            notes={
                "server": f"gunicorn sync x{workers} on 127.0.0.1:{app_port}",
                "nginx": "TLS (certbot settings), proxy_pass over TCP, no upstream keepalive",
                "cache": "product list cache off (FLASKPROD_PRODUCTS_CACHE_SECONDS=0)",
            },
        )
    finally:
        nginx.stop()
        app.stop()


# -- flaskprod ------------------------------------------------------------------------------


@contextmanager
def flaskprod_stack(
    shared: Shared,
    *,
    name: str = "flaskprod",
    spec_edits: dict[str, str | None] | None = None,
    source: Path = SHOP,
) -> Iterator[Running]:
    """``flaskprod up -d`` on a copy of the shop (``source``: another shop tree), with
    the shared database and Redis (DATABASE_URL/REDIS_URL given: up uses them instead
    of starting its own)."""
    base = Path(tempfile.mkdtemp(prefix=f"{name.replace('/', '-')}-", dir=shared.base))
    base.chmod(0o755)  # nginx's workers (nobody) reach the socket below it
    project = copy_shop(base, spec_edits, source)
    spec = load_spec(project)
    https_port, http_port = free_ports(2)
    env = dict(os.environ, DATABASE_URL=shared.database_url, REDIS_URL=shared.redis.url())
    flaskprod = str(BIN / "flaskprod")
    result = subprocess.run(
        [
            *(flaskprod, "up", str(project), "-d"),
            *("--https-port", str(https_port), "--http-port", str(http_port)),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        if result.returncode != 0:
            raise RuntimeError(f"flaskprod up failed:\n{result.stdout}\n{result.stderr}")
        state = StateDir(project / ".flaskprod").read()
        assert state is not None
        pids = {record.name: record.pid for record in state.services}
        yield Running(
            name=name,
            url=f"https://localhost:{https_port}",
            host="localhost",
            port=https_port,
            tls=True,
            pids={**pids, **shared.backend_pids},
            ca=project / ".flaskprod" / "tls" / "ca.pem",
            workers_of=pids.get(spec.server.kind),
            notes={
                "server": _server_note(spec),
                "nginx": "the rendered site (TLS, HTTP/2, unix socket, upstream keepalive)",
                "cache": "product list cached in Redis",
            },
            project=project,
        )
    finally:
        subprocess.run([flaskprod, "down", str(project)], capture_output=True, check=False)


# -- granian --------------------------------------------------------------------------------

#: flaskprod.toml with server.kind = "granian" (the shop's own since granian became the
#: default; an older shop tree, ``source``, may still say gunicorn): gunicorn's own
#: settings commented out (a granian spec refuses them), the shared ones kept.
GRANIAN_EDITS: dict[str, str | None] = {
    "kind": '"granian"',
    **dict.fromkeys(
        ("worker_class", "keepalive", "max_requests", "max_requests_jitter", "preload_app")
    ),
}


def gunicorn_edits(worker_class: str) -> dict[str, str | None]:
    """flaskprod.toml with server.kind = "gunicorn" and this worker class; gunicorn's
    other settings keep the values the shop's comments show (gunicorn's defaults)."""
    return {"kind": '"gunicorn"', "worker_class": f'"{worker_class}"'}


def granian_stack(shared: Shared, *, name: str = "granian") -> AbstractContextManager[Running]:
    """flaskprod's stack with ``server.kind = "granian"``: ``flaskprod up`` on a copy of
    the shop whose spec says so, so the bench measures exactly what users get (the
    kit's granian flags: one worker per core, ``threads`` blocking threads each, the
    pool sized from them, behind the same nginx)."""
    return flaskprod_stack(shared, name=name, spec_edits=GRANIAN_EDITS)


def _server_note(spec: Spec) -> str:
    server = spec.server
    if server.kind == "granian":
        return (
            f"granian {_granian_version()} WSGI x{server.effective_workers} "
            f"({server.threads} blocking threads)"
        )
    threads = f" ({server.threads} threads)" if server.worker_class == "gthread" else ""
    return f"gunicorn {server.worker_class} x{server.effective_workers}{threads}"


def _granian_version() -> str:
    from importlib.metadata import version

    return version("granian")
