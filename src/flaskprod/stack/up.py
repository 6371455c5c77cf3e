"""``flaskprod up``: the production-shaped stack of a project, on this machine.

Order: local CA -> PostgreSQL or MariaDB -> Redis -> migrations (release step) -> the app server
(gunicorn with the rendered config, or granian with the kit's flags) -> nginx with the
rendered site -> readiness through nginx over HTTPS. Every service is started in its
own session with its output in a log file, so the same code serves the foreground mode
(which then follows the logs and stops the stack on Ctrl-C) and ``--detach`` (which
leaves the servers running and exits). ``state.json`` records each process (pid +
kernel start time) as soon as it runs, so ``down`` can stop exactly what ``up``
started — and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from flaskprod.errors import (
    EnvironmentProblem,
    ExitCode,
    ProjectError,
    Refused,
    ServiceFailed,
    SpecError,
)
from flaskprod.spec.interpreter import ProjectPython, require_supported, resolve_python
from flaskprod.spec.model import SPEC_FILENAME, Spec
from flaskprod.spec.servers import served_target
from flaskprod.spec.stackdeps import DRIVER_MODULES, PINNED
from flaskprod.stack import (
    app_settings,
    granian,
    gunicorn,
    process,
    project_env,
    source_path,
    workers,
)
from flaskprod.stack.ca import LocalCA, ensure_ca
from flaskprod.stack.nginx import (
    NginxFiles,
    Overlay,
    find_nginx,
    nginx_command,
    nginx_user,
    prepare_nginx,
)
from flaskprod.stack.ports import LOOPBACK
from flaskprod.stack.state import ServiceRecord, StackState, StateDir

if TYPE_CHECKING:
    from flaskprod.stack.mariadb import MariaDBServer
    from flaskprod.stack.postgres import PostgresCluster
    from flaskprod.stack.seaweedfs import S3Credentials
    from flaskprod.stack.server import LoopbackServer

DEFAULT_HTTPS_PORT = 8443
DEFAULT_HTTP_PORT = 8080
READY_TIMEOUT = 60.0

#: The app's environment kept in state.json, for commands run next to the stack
#: (``flask seed``, backups): where its data is. Not the secret key (its own 0600 file).
#: VIRTUAL_ENV: the project's venv up ran it with (--python), which reload imports with.
RECORDED_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "MEDIA_ROOT",
    "FLASKPROD_MEDIA_ROOT",
    "VIRTUAL_ENV",
    # PostgreSQL itself when the app goes through PgBouncer: backups and restores need
    # a session of their own (pg_dump's snapshot), which transaction pooling cannot give.
    "DIRECT_DATABASE_URL",
    "FLASKPROD_DATABASE_POOLER",
    # storage.kind = "s3": where the uploads are (flask seed stores its images there)
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MEDIA_BUCKET",
)

#: Start order; stopped in reverse. The app server is one of gunicorn and granian
#: (server.kind), recorded under its own name.
SERVICES = (
    "postgres",
    "pgbouncer",
    "mariadb",
    "redis",
    "seaweedfs",
    "gunicorn",
    "granian",
    "nginx",
)
APP_SERVERS = ("gunicorn", "granian")

Echo = Callable[[str], None]


class PortTaken(EnvironmentProblem):
    """A port ``up`` needs is held by another process."""

    exit_code = ExitCode.ENVIRONMENT


class AlreadyRunning(Refused):
    """The project's stack already runs (a second ``up``)."""


class NotRunning(ServiceFailed):
    """``status``/``reload``/``logs`` on a project whose stack does not run."""


class NoSpec(SpecError):
    """The project has no ``flaskprod.toml`` yet."""


@dataclass(frozen=True)
class StopHow:
    signum: int
    group: bool
    timeout: float


def stop_how(name: str, graceful: float = 30.0) -> StopHow:
    """How each service is stopped cleanly: nginx QUIT (finish requests), gunicorn
    TERM (graceful: workers finish in-flight requests), PostgreSQL INT (fast shutdown,
    the postmaster stops its backends itself), Redis TERM."""
    if name.startswith(workers.PREFIX):
        # TERM to its keeper, which passes it to the worker (warm shutdown) and kills
        # it after processes.<name>.stop_timeout itself.
        return StopHow(signal.SIGTERM, False, 3600.0 + 10.0)
    return {
        "nginx": StopHow(signal.SIGQUIT, True, 15.0),
        "gunicorn": StopHow(signal.SIGTERM, True, graceful + 5.0),
        "granian": StopHow(signal.SIGTERM, True, graceful + 5.0),
        "postgres": StopHow(signal.SIGINT, False, 30.0),
        # TERM: MariaDB's clean shutdown (flushes InnoDB); one process, no group
        "mariadb": StopHow(signal.SIGTERM, False, 60.0),
    }.get(name, StopHow(signal.SIGTERM, True, 10.0))


@dataclass
class UpOptions:
    project: Path
    https_port: int = DEFAULT_HTTPS_PORT
    http_port: int = DEFAULT_HTTP_PORT
    embedded: bool = False
    state_dir: Path | None = None
    ready_timeout: float = READY_TIMEOUT
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: Extra release commands run after the migrations (``flask seed``, ...).
    release: tuple[str, ...] = ()
    #: The project's interpreter (--python); None: resolve_python's order.
    python: ProjectPython | None = None


def spec_path(project: Path) -> Path:
    return project / SPEC_FILENAME


def load_project_spec(project: Path) -> Spec:
    from flaskprod.spec.load import load_spec

    path = spec_path(project)
    if not path.is_file():
        raise NoSpec(
            f"{path}: not found: this project has no deployment spec yet",
            hint=f"run 'flaskprod init {project}' first",
        )
    return load_spec(path)


# -- the kit ---------------------------------------------------------------------------


def rendered_paths(spec: Spec, project: Path) -> tuple[Path, Path]:
    """The rendered gunicorn config (unused, and not rendered, with granian) and the
    nginx site ``up`` runs."""
    deploy = project / "deploy"
    return deploy / "gunicorn.conf.py", deploy / "nginx" / f"{spec.app.name}.conf"


def ensure_kit(
    spec: Spec, project: Path, echo: Echo, dirs: StateDir, python: Path | None = None
) -> None:
    """Render the kit when it is missing or stale, so ``up`` runs what would ship.

    Files edited by hand are not overwritten: ``up`` runs them as they are and says so
    (``flaskprod render --force`` replaces them)."""
    from flaskprod.kit.commands import render_files
    from flaskprod.kit.write import plan_kit, write_plan
    from flaskprod.spec.detect import detect_project

    stamp = dirs.root / "kit.sha256"
    if stamp.is_file() and stamp.read_text().strip() == _kit_fingerprint(spec, project):
        return
    info = detect_project(project, spec.app.target, python=python)
    files, modes = render_files(spec, info)
    plan = plan_kit(project, files, modes)
    if plan.conflicts:
        for change in plan.conflicts:
            echo(f"kit: {change.path} {change.detail}: running it as it is")
    elif plan.drift:
        write_plan(plan)
        echo(f"kit: rendered {len(plan.drift)} stale file(s) from {SPEC_FILENAME}")
    conf, site = rendered_paths(spec, project)
    for path in (conf, site) if spec.server.kind == "gunicorn" else (site,):
        if not path.is_file():
            raise SpecError(
                f"{path}: the rendered kit is missing", hint="run 'flaskprod render' first"
            )
    if not plan.conflicts:
        from flaskprod.stack.state import write_atomic

        write_atomic(stamp, _kit_fingerprint(spec, project) + "\n")


def _kit_fingerprint(spec: Spec, project: Path) -> str:
    """What a render depends on and what up runs, hashed: the spec, flaskprod's version
    and templates, the render manifest and the two files up runs. Rendering imports the
    app (seconds); when this is unchanged since the last check, the kit is fresh."""
    import hashlib

    from flaskprod import __version__
    from flaskprod.spec.rendered import MANIFEST

    digest = hashlib.sha256(__version__.encode())
    templates = Path(__file__).resolve().parents[1] / "kit" / "templates"
    inputs = [spec_path(project), project / MANIFEST, *rendered_paths(spec, project)]
    inputs += sorted(t for t in templates.rglob("*") if t.is_file())
    for path in inputs:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<missing>")
    return digest.hexdigest()


# -- helpers -----------------------------------------------------------------------------


def ca_context(ca: Path) -> ssl.SSLContext:
    """A client TLS context trusting only our CA (what `curl --cacert` does)."""
    return ssl.create_default_context(cafile=str(ca))


def https_url(port: int, path: str = "/") -> str:
    return f"https://localhost{'' if port == 443 else f':{port}'}{path}"


def probe_https(url: str, ca: Path, timeout: float = 2.0) -> tuple[int | None, str]:
    """(status, detail) of a GET through nginx; status None when no HTTP answer."""
    import httpx

    try:
        response = httpx.get(url, verify=ca_context(ca), timeout=timeout)
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"
    return response.status_code, response.text[:200].replace("\n", " ")


def probe_socket(
    socket_path: Path, path: str, https_port: int, timeout: float = 2.0
) -> tuple[int | None, str]:
    """(status, detail) of a GET of ``path`` straight to the app server's unix socket,
    with the headers nginx sends (Host with the port, X-Forwarded-Proto https): the
    app answers as it would through nginx. Status None when no HTTP answer."""
    import httpx

    headers = {
        "Host": f"localhost:{https_port}",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-For": LOOPBACK,
        "X-Real-IP": LOOPBACK,
    }
    transport = httpx.HTTPTransport(uds=str(socket_path))
    try:
        with httpx.Client(transport=transport, timeout=timeout) as client:
            response = client.get(f"http://localhost{path}", headers=headers)
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"
    return response.status_code, response.text[:200].replace("\n", " ")


def tcp_accepts(port: int, host: str = LOOPBACK) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def project_lock(state_dir: StateDir) -> Iterator[None]:
    """Held while a stack starts or stops, so two commands never race on one project."""
    state_dir.root.mkdir(parents=True, exist_ok=True)
    with state_dir.lock_file.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                f"another flaskprod command is starting or stopping {state_dir.root.parent}",
                hint="wait for it, then see 'flaskprod status'",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def live_state(state_dir: StateDir, echo: Echo | None = None) -> StackState | None:
    """The recorded stack if any of its processes still runs; stale state (all gone,
    or pids recycled by other processes) is removed, saying so."""
    state = state_dir.read()
    if state is None:
        if state_dir.state_file.exists():
            state_dir.clear()
        return None
    if any(record.alive() for record in state.services):
        return state
    if echo is not None and state.services:
        pids = ", ".join(f"{r.name} {r.pid}" for r in state.services)
        echo(f"removed stale state of a previous run (its processes are gone: {pids})")
    state_dir.clear()
    return None


# -- starting ----------------------------------------------------------------------------


class Stack:
    """Starts the services of one project, recording each in ``state.json``."""

    def __init__(self, spec: Spec, options: UpOptions, echo: Echo) -> None:
        self.spec = spec
        self.options = options
        self.project = options.project.resolve()
        self.echo = echo
        self.dirs = StateDir.for_project(self.project, options.state_dir)
        self.state = StackState(
            project=str(self.project),
            started_at=time.time(),
            supervisor_pid=None,
            url=https_url(options.https_port),
            http_port=options.http_port,
            https_port=options.https_port,
            ready_path=spec.http.ready_path,
        )
        self.ca: LocalCA | None = None
        self.nginx_files: NginxFiles | None = None
        self._python = options.python
        #: PostgreSQL's own URL when the app goes through PgBouncer.
        self._direct_url: str | None = None
        #: The S3 gateway of storage.kind = "s3".
        self._s3_endpoint: str | None = None
        #: The blue/green slot the app server runs on ("a" or "b": its socket and pid
        #: file); a reload starts the new code on the other one (flaskprod.release).
        self.slot = "a"

    @property
    def python(self) -> ProjectPython:
        """The project's interpreter: it runs the migrations, the release commands, the
        import check and the app server (flaskprod's own only supervises)."""
        if self._python is None:
            found = resolve_python(self.project, environ=self.options.environ)
            require_supported(found, self.project)
            self._python = found
        return self._python

    @functools.cached_property
    def source_folder(self) -> Path | None:
        """src/ when the app's package lives there and the project's venv does not have
        the project installed: put on PYTHONPATH of everything up runs of the project."""
        return source_path.needed(
            self.project, self.spec.app.target, self.python, self.options.environ
        )

    # -- what the stack would run --------------------------------------------------------
    def socket_path(self, slot: str | None = None) -> Path:
        """The app server's socket on ``slot`` (default: the stack's slot)."""
        return self.dirs.socket_path(f"{self.spec.server.kind}-{slot or self.slot}.sock")

    def pid_file(self, slot: str | None = None) -> Path:
        """gunicorn's pid file on ``slot``: one per slot, as two masters run side by
        side during a reload (gunicorn refuses a pid file naming a live process)."""
        return self.dirs.run / f"gunicorn-{slot or self.slot}.pid"

    def overlay(self, slot: str | None = None) -> Overlay:
        tls = self.dirs.tls
        folders = [(self.spec.static_dir, self.project / self.spec.paths.static_dir)]
        folders.append((self.spec.media_dir, self.media_folder()))
        return Overlay(
            https_port=self.options.https_port,
            http_port=self.options.http_port,
            certificate=tls / "server.pem",
            certificate_key=tls / "server-key.pem",
            socket_from=self.spec.socket_path,
            socket_to=self.socket_path(slot),
            upstream_include=self.dirs.nginx / "upstream.conf",
            folders=tuple(folders),
            logs=self.dirs.logs,
            prefix=self.dirs.nginx,
            canonical_domain=self.spec.app.domains[0],
            endpoints=self._endpoints(),
        )

    def _endpoints(self) -> tuple[tuple[str, str], ...]:
        endpoint = self.s3_endpoint()
        if self.spec.storage.kind != "s3" or endpoint is None:
            return ()
        return ((self.spec.storage.endpoint, endpoint),)

    def media_folder(self) -> Path:
        return app_settings.media_folder(self.spec, self.project, self.dirs)

    def app_environment(self, database_url: str, redis_url: str | None) -> dict[str, str]:
        """The app's environment under up, built here once (start and reload's import
        check): flaskprod's variables, the app's own settings, the project's Python."""
        settings = app_settings.local_settings(
            self.spec, self.project, self.dirs, self.options.environ
        )
        env = gunicorn.app_environment(
            self.spec,
            self.options.environ,
            secret_key=self.dirs.secret_key(),
            database_url=database_url,
            redis_url=redis_url,
            media_root=self.media_folder(),
            settings=settings.env,
        )
        env.update(self.storage_environment())
        env = source_path.with_source(env, self.source_folder)
        return project_env.with_python(env, self.python, self.spec)

    def s3_credentials(self) -> S3Credentials:
        from flaskprod.stack.seaweedfs import S3Credentials

        # generated once, kept in the state folder (0600): uploads stay readable
        return S3Credentials(
            self.dirs.generated_secret("s3-access-key")[:20].upper().replace("-", "A"),
            self.dirs.generated_secret("s3-secret-key"),
        )

    def s3_endpoint(self) -> str | None:
        """The stack's SeaweedFS S3 gateway, once started (or recorded by ``up``)."""
        if self._s3_endpoint is None:
            state = self.dirs.read()
            record = state.service("seaweedfs") if state else None
            if record is not None and record.address:
                self._s3_endpoint = f"http://{record.address}"
        return self._s3_endpoint

    def storage_environment(self) -> dict[str, str]:
        """storage.kind = "s3": the S3 variables the app (boto3) reads."""
        from flaskprod.runtime.storage import BUCKET_VARIABLE, ENDPOINT_VARIABLE

        endpoint = self.s3_endpoint()
        if self.spec.storage.kind != "s3" or endpoint is None:
            return {}
        keys = self.s3_credentials()
        return {
            ENDPOINT_VARIABLE: endpoint,
            "AWS_ACCESS_KEY_ID": keys.access_key,
            "AWS_SECRET_ACCESS_KEY": keys.secret_key,
            "AWS_DEFAULT_REGION": self.spec.storage.region,
            BUCKET_VARIABLE: self.spec.media_bucket,
        }

    def server_executable(self) -> list[str]:
        """The project's own gunicorn or granian (exit 3 with the line to add if absent)."""
        from flaskprod.spec.detect import detect_project

        kind = self.spec.server.kind
        try:
            return project_env.server_executable(self.python, kind, None)
        except EnvironmentProblem:
            # the message names the project's requirements file (static detection)
            try:
                found = detect_project(self.project, self.spec.app.target, introspect=False)
                requirements = found.requirements_file
            except ProjectError:
                requirements = None
            return project_env.server_executable(self.python, kind, requirements)

    def server_command(self, slot: str | None = None) -> list[str]:
        """The app server's command on ``slot``: the project's gunicorn or granian."""
        executable = self.server_executable()
        if self.spec.server.kind == "granian":
            return granian.command(
                self.spec,
                socket_path=self.socket_path(slot),
                proxy_group=_proxy_group(),
                executable=executable,
                environ=self.options.environ,
            )
        conf, _ = rendered_paths(self.spec, self.project)
        return gunicorn.command(
            self.spec,
            conf=conf,
            socket_path=self.socket_path(slot),
            project=self.project,
            pid_file=self.pid_file(slot),
            proxy_group=_proxy_group(),
            executable=executable,
            version=project_env.package_version(self.python, "gunicorn"),
        )

    def print_config(self) -> str:
        """The overlay: gunicorn's overriding flags and nginx's effective config."""
        _, site = rendered_paths(self.spec, self.project)
        files = prepare_nginx(site, self.overlay(), write=False)
        conf, _ = rendered_paths(self.spec, self.project)
        rel_site = site.relative_to(self.project).as_posix()
        rel_conf = conf.relative_to(self.project).as_posix()
        if self.spec.server.kind == "granian":
            flags = granian.overlay_flags(
                self.spec, socket_path=self.socket_path(), proxy_group=_proxy_group()
            )
            heading = "# granian: runs the systemd unit's command, with these changes:"
        else:
            flags = gunicorn.overlay_flags(
                self.spec,
                socket_path=self.socket_path(),
                project=self.project,
                pid_file=self.pid_file(),
                proxy_group=_proxy_group(),
                version=project_env.package_version(self.python, "gunicorn"),
            )
            heading = f"# gunicorn: runs {rel_conf} as rendered, with these flags on top:"
        pairs: list[str] = []
        for flag in flags:  # "--name value" on one line, a lone "--switch" on its own
            if pairs and not flag.startswith(("--", "(")) and " " not in pairs[-1]:
                pairs[-1] += f" {flag}"
            else:
                pairs.append(flag)
        return "\n".join(
            [
                heading,
                *[f"#   {pair}" for pair in pairs],
                "",
                f"# nginx: {files.conf} (process settings for this machine)",
                files.wrapper.rstrip(),
                "",
                f"# nginx: the site, changed against {rel_site}:",
                files.diff(rel_site).rstrip(),
                "",
                *(
                    [
                        f"# nginx: {files.upstream_path} (the live slot's app server)",
                        files.upstream.rstrip(),
                        "",
                    ]
                    if files.upstream_path
                    else []
                ),
            ]
        )

    # -- start ---------------------------------------------------------------------------
    def preflight(self) -> str:
        """What must hold before anything starts; returns the nginx binary."""
        if live_state(self.dirs, self.echo) is not None:
            state = self.dirs.read()
            assert state is not None
            running = ", ".join(f"{r.name} (pid {r.pid})" for r in state.services if r.alive())
            raise AlreadyRunning(
                f"the stack of {self.project} already runs: {running}",
                hint="see 'flaskprod status', or stop it with 'flaskprod down'",
            )
        nginx = find_nginx()
        self.server_executable()  # the project's app server, before anything starts
        self.note_driver()
        if self.source_folder is not None:
            self.echo(source_path.message(self.source_folder, self.project))
        for port, what in (
            (self.options.https_port, "--https-port"),
            (self.options.http_port, "--http-port"),
        ):
            if not _can_listen(port):
                raise PortTaken(
                    f"port {port} is already in use on {LOOPBACK}",
                    hint=f"stop what holds it (ss -ltnp 'sport = :{port}') or pass {what}",
                )
        return nginx

    def start(self) -> StackState:
        """Start everything and wait until ready through nginx; on failure stop what
        was started and raise with the failing service's log tail."""
        with project_lock(self.dirs):
            nginx = self.preflight()
            self.dirs.prepare()
            self.prepare_settings()
            self.ca = ensure_ca(self.dirs.tls)
            self.echo(f"local CA: {self.ca.ca_cert}  (curl --cacert {self.ca.ca_cert} ...)")
            try:
                database_url = self._database()
                redis_url = self._redis()
                self._storage()
                env = self.app_environment(database_url, redis_url)
                if self._direct_url:
                    env["DIRECT_DATABASE_URL"] = self._direct_url
                self.state.env = {k: v for k, v in env.items() if k in RECORDED_ENV}
                process_commands = workers.check_processes(
                    self.spec, self.python, workers.process_env(self.spec, env), self.project
                )
                self._migrate(env)
                for command in self.options.release:
                    self._release_step(shlex.split(command), env)
                self._app_server(env)
                self._nginx(nginx)
                self._wait_ready()
                self._processes(process_commands, env)
            except BaseException:
                self.stop()
                raise
            return self.state

    def prepare_settings(self) -> None:
        """The uploads folder exists, and what up does with the app's own settings is
        said once: generated secrets, required settings nobody gave."""
        self.media_folder().mkdir(parents=True, exist_ok=True)
        found = app_settings.local_settings(
            self.spec, self.project, self.dirs, self.options.environ
        )
        given = sorted(found.env)
        if given:
            self.echo(f"app settings: {', '.join(given)} (app.settings; {{root}} = this folder)")
        if found.generated:
            self.echo(
                f"app settings: generated {', '.join(found.generated)} (kept in "
                f"{self.dirs.root / 'secrets'}; set them in the environment to choose)"
            )
        for name in found.missing:
            self.echo(
                f"note: the app requires {name} (app.settings = CHANGE-ME): set it in the "
                f"environment 'flaskprod up' runs with, e.g. {name}=... flaskprod up"
            )

    def note_driver(self) -> None:
        """The app reaches the stack's PostgreSQL with the driver it ships: say so when
        the project's environment lacks it (a note: an app may use no database at all)."""
        spec, environ = self.spec, self.options.environ
        if not spec.database.server_engine or self.options.embedded:
            return
        if environ.get("DATABASE_URL"):
            return
        driver = spec.database.driver
        if not self.python.has_module(DRIVER_MODULES[driver]):
            self.echo(
                f"note: {driver} (database.driver) is not installed in "
                f"{project_env.owner(self.python)}: the app cannot reach "
                f"{spec.database.label} with {spec.database.scheme}://; add "
                f"'{PINNED[driver]}' to its requirements"
            )

    def _record(self, name: str, proc: process.Process | None, pid: int | None, **kw: str) -> None:
        pid = pid if pid is not None else (proc.pid if proc else None)
        assert pid is not None
        record = ServiceRecord(
            name=name,
            pid=pid,
            started=process.start_time(pid),
            address=kw.get("address", ""),
            log=kw.get("log", ""),
            command=[],
            data=kw.get("data"),
            slot=kw.get("slot"),
        )
        self.state.services = [s for s in self.state.services if s.name != name] + [record]
        self.dirs.write(self.state)

    def _database(self) -> str:
        given = self.options.environ.get("DATABASE_URL")
        if given:
            self.echo(
                f"database: DATABASE_URL is set: using it (no {self.spec.database.label} started)"
            )
            return given
        if self.options.embedded or self.spec.database.engine == "sqlite":
            why = "--embedded" if self.options.embedded else 'database.engine = "sqlite"'
            self.echo(f"database: SQLite in {self.dirs.sqlite} ({why})")
            return f"sqlite:///{self.dirs.sqlite}"
        if self.spec.database.is_mysql:
            return self._mariadb()
        from flaskprod.stack.postgres import PostgresCluster

        cluster = PostgresCluster(
            self.dirs.postgres,
            log_path=self.dirs.log("postgres"),
            max_connections=self.spec.database.max_connections,
            ready_timeout=30.0,
        )
        self._database_server("postgres", cluster, self.dirs.postgres, "cluster")
        database = self.spec.resolve(self.spec.database.name)
        role = self.spec.resolve(self.spec.database.user)
        _ensure_database(cluster, database, role)  # flaskprod's own psycopg: admin work
        # The app connects with the driver it ships (database.driver).
        driver = self.spec.database.driver
        direct = f"postgresql+{driver}://{role}@{LOOPBACK}:{cluster.port}/{database}"
        if not self.spec.database.pgbouncer:
            return direct
        self._direct_url = direct
        return self._pgbouncer(cluster, database, role)

    def _pgbouncer(self, cluster: PostgresCluster, database: str, role: str) -> str:
        """PgBouncer in front of the cluster (database.pgbouncer): the app's URL."""
        from flaskprod.spec.pgbouncer import STATEMENT_TIMEOUT
        from flaskprod.stack.pgbouncer import PgBouncer

        _role_statement_timeout(cluster, role, STATEMENT_TIMEOUT)
        database_spec = self.spec.database
        bouncer = PgBouncer(
            self.dirs.root / "pgbouncer",
            server_port=cluster.port,
            database=database,
            user=role,
            password=self.dirs.generated_secret("pgbouncer-password"),
            pool_size=database_spec.pgbouncer_pool_size,
            max_clients=database_spec.pgbouncer_max_clients,
            log_path=self.dirs.log("pgbouncer"),
        )
        _start_or_stop(bouncer)
        _outlive_this_process(bouncer)
        self.echo(
            f"pgbouncer: {LOOPBACK}:{bouncer.port} -> postgres :{cluster.port} (transaction "
            f"pooling, {database_spec.pgbouncer_pool_size} server connections, SCRAM)"
        )
        self._record(
            "pgbouncer",
            None,
            bouncer.pid,
            address=f"{LOOPBACK}:{bouncer.port}",
            log=str(bouncer.log_path),
        )
        return bouncer.url(database_spec.driver)

    def _database_server(
        self, name: str, server: PostgresCluster | MariaDBServer, data: Path, kind: str
    ) -> None:
        """Start (or create, the first time) the stack's database server and record it."""
        what = f"creating a new {kind} in" if not server.initialized else "starting"
        self.echo(f"{name}: {what} {data}")
        _start_or_stop(server)
        _outlive_this_process(server)
        self._record(
            name,
            None,
            server.pid,
            address=f"{LOOPBACK}:{server.port}",
            log=str(server.log_path),
            data=str(data),
        )

    def _mariadb(self) -> str:
        """The project's own MariaDB in the state folder (for engine mariadb and mysql:
        the same protocol and SQL the app uses), its database and least-privilege user
        with a generated password (kept in the state folder, 0600)."""
        from flaskprod.spec.mariadb import server_settings
        from flaskprod.stack.mariadb import MariaDBServer

        server = MariaDBServer(
            self.dirs.mariadb,
            settings=server_settings(self.spec),
            log_path=self.dirs.log("mariadb"),
            ready_timeout=60.0,
        )
        self._database_server("mariadb", server, self.dirs.mariadb, "server")
        database = self.spec.resolve(self.spec.database.name)
        user = self.spec.resolve(self.spec.database.user)
        password = self.dirs.generated_secret("mariadb-password")
        server.ensure_database(database, user, password)
        self.echo(
            f"mariadb: database {database}, user {user} (granted on it only; utf8mb4, "
            f"strict SQL mode, wait_timeout {self.spec.database.wait_timeout}s)"
        )
        return self.spec.database.url(user, password, LOOPBACK, server.port, database)

    def _redis(self) -> str | None:
        given = self.options.environ.get("REDIS_URL")
        if given:
            self.echo("redis: REDIS_URL is set: using it (no Redis started)")
            return given
        if self.options.embedded or not self.spec.redis.enabled:
            why = "--embedded" if self.options.embedded else "redis.enabled = false"
            self.echo(f"redis: not started ({why})")
            return None
        from flaskprod.stack.redis import RedisServer

        redis = self.spec.redis
        server = RedisServer(
            self.dirs.redis,
            persistence=True,
            maxmemory=redis.maxmemory,
            maxmemory_policy=redis.maxmemory_policy,  # as compose runs it
        )
        _start_or_stop(server)
        _outlive_this_process(server)
        self.echo(f"redis: {server.url()}")
        self._record(
            "redis",
            None,
            server.pid,
            address=f"{LOOPBACK}:{server.port}",
            log=str(server.log_path),
            data=str(self.dirs.redis),
        )
        return server.url()

    def _storage(self) -> None:
        """storage.kind = "s3": SeaweedFS with its S3 gateway, and the media bucket."""
        if self.spec.storage.kind != "s3":
            return
        if self.options.environ.get("AWS_ENDPOINT_URL_S3"):
            self._s3_endpoint = self.options.environ["AWS_ENDPOINT_URL_S3"]
            self.echo("seaweedfs: AWS_ENDPOINT_URL_S3 is set: using it (no SeaweedFS started)")
            return
        from flaskprod.runtime.storage import ensure_bucket, s3_client
        from flaskprod.stack.seaweedfs import SeaweedFS

        bucket = self.spec.media_bucket
        server = SeaweedFS(
            self.dirs.root / "seaweedfs",
            credentials=self.s3_credentials(),
            bucket=bucket,
            log_path=self.dirs.log("seaweedfs"),
        )
        _start_or_stop(server)
        _outlive_this_process(server)
        self._s3_endpoint = server.endpoint
        self._record(
            "seaweedfs",
            None,
            server.pid,
            address=f"{LOOPBACK}:{server.port}",
            log=str(server.log_path),
            data=str(server.dir),
        )
        created = ensure_bucket(s3_client(self.storage_environment()), bucket)
        self.echo(
            f"seaweedfs: S3 on {server.endpoint}, bucket {bucket} "
            f"({'created' if created else 'kept'}; anonymous read of its objects only)"
        )

    def _migrate(self, env: Mapping[str, str]) -> None:
        """The release step: ``flask db upgrade``; its error stops ``up``."""
        if not (self.project / "migrations" / "env.py").is_file():
            self.echo("migrations: none (no migrations/env.py): release step skipped")
            return
        self._release_step(["flask", "db", "upgrade"], env, label="migrations")

    def _release_step(
        self, argv: list[str], env: Mapping[str, str], label: str = "release"
    ) -> None:
        """Run one release command in the app's environment, from the project folder;
        ``flask ...`` runs the project's Flask against the spec's app, ``python ...`` its
        interpreter. A failure stops ``up`` with the command's log tail."""
        shown = " ".join(argv)
        argv, run_env = project_env.release_command(argv, self.python, self.spec.app.target, env)
        log = self.dirs.log("release")
        self.echo(f"{label}: {shown}")
        with log.open("ab") as out:
            try:
                result = subprocess.run(
                    argv,
                    cwd=self.project,
                    env=run_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                    timeout=300,
                )
            except FileNotFoundError:
                raise process.ServiceStartFailed(
                    f"{label} failed: '{argv[0]}' not found", log_path=log, log_tail=""
                ) from None
        if result.returncode != 0:
            raise process.ServiceStartFailed(
                f"{label} failed: '{shown}' exited with {result.returncode} (log: {log})",
                log_path=log,
                log_tail=process.log_tail(log, 15),
            )

    def _app_server(self, env: Mapping[str, str]) -> None:
        """gunicorn or granian (server.kind): one lifecycle, the command differs."""
        kind = self.spec.server.kind
        sock = self.socket_path()
        sock.unlink(missing_ok=True)  # left by a killed master; ours to replace (preflight)
        proc = process.start(
            self.server_command(),
            name=kind,
            log_path=self.dirs.log(kind),
            cwd=self.project,
            env=env,
        )
        self.state.slot = self.slot
        self._record(
            kind, proc, None, address=f"unix:{sock}", log=str(proc.log_path), slot=self.slot
        )
        self.echo(f"{kind}: {served_target(self.spec)} on unix:{sock} (pid {proc.pid})")
        proc.wait_ready(lambda: gunicorn.socket_accepts(sock), timeout=self.options.ready_timeout)

    def _processes(self, commands: Mapping[str, list[str]], env: Mapping[str, str]) -> None:
        """The spec's processes, each under a keeper, once the app server is healthy:
        long-running ones kept running, scheduled ones run on their schedule."""
        run_env = workers.process_env(self.spec, env)
        for name, argv in commands.items():
            process_spec = self.spec.processes[name]
            record = workers.record_name(name)
            log = self.dirs.log(record)
            proc = process.start(
                workers.keeper_command(name, process_spec, argv, log),
                name=record,
                log_path=log,
                cwd=self.project,
                env=run_env,
            )
            address = workers.record_address(process_spec)
            self._record(record, proc, None, address=address, log=str(proc.log_path))
            how = (
                f"scheduled '{process_spec.schedule}', one run at a time"
                if process_spec.schedule
                else "restarted if it dies"
            )
            self.echo(f"{name}: {process_spec.command} (keeper pid {proc.pid}, {how})")

    def _nginx(self, binary: str) -> None:
        _, site = rendered_paths(self.spec, self.project)
        self.nginx_files = prepare_nginx(site, self.overlay())
        from flaskprod.stack.nginx import test_config

        test_config(binary, self.nginx_files)
        proc = process.start(
            nginx_command(binary, self.nginx_files),
            name="nginx",
            log_path=self.dirs.log("nginx"),
            cwd=self.dirs.nginx,
        )
        ports = f"{LOOPBACK}:{self.options.https_port} (https), :{self.options.http_port} (http)"
        error_log = str(self.dirs.logs / "nginx-error.log")
        self._record("nginx", proc, None, address=ports, log=error_log)
        self.echo(f"nginx: {ports} (pid {proc.pid})")
        proc.wait_ready(
            lambda: tcp_accepts(self.options.https_port), timeout=15.0, port=self.options.https_port
        )

    def _wait_ready(self) -> None:
        assert self.ca is not None
        url = https_url(self.options.https_port, self.spec.http.ready_path)
        deadline = time.monotonic() + self.options.ready_timeout
        status: int | None = None
        detail = ""
        delay = 0.05
        while time.monotonic() < deadline:
            for record in self.state.services:
                if not record.alive():
                    raise process.ServiceStartFailed(
                        f"{record.name} stopped while the stack was starting (log: {record.log})",
                        log_path=Path(record.log),
                        log_tail=process.log_tail(Path(record.log)),
                    )
            status, detail = probe_https(url, self.ca.ca_cert)
            if status == 200:
                status, _ = probe_https(
                    https_url(self.options.https_port, self.spec.http.health_path),
                    self.ca.ca_cert,
                )
                if status != 404:
                    return
                raise missing_route(self.spec, "health_path")
            if status == 404:  # the app answered: it has no such route, waiting won't help
                raise missing_route(self.spec, "ready_path")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        # Which layer failed: no HTTP answer is nginx's; an answer but not 200 is the app's.
        failed = "nginx" if status is None else self.spec.server.kind
        failing = self.state.service(failed)
        log = Path(failing.log) if failing else self.dirs.log(failed)
        raise process.ServiceStartFailed(
            f"{failed}: {url} not ready within {self.options.ready_timeout:g}s "
            f"(last: {status or detail}) (log: {log})",
            log_path=log,
            log_tail=process.log_tail(log),
        )

    # -- stop (a failed start) -----------------------------------------------------------
    def stop(self) -> None:
        stop_services(self.dirs, self.state, self.echo)


def missing_route(spec: Spec, key: str) -> SpecError:
    """The app answered 404 for a health path: the spec names a route it does not have."""
    path = getattr(spec.http, key)
    if spec.http.health_source == "kit":
        fix = "run 'flaskprod render': the kit's flaskprod_wsgi.py answers it"
    else:
        fix = (
            f'set http.{key} to a route the app has, or set http.health_source = "kit" '
            "and run 'flaskprod render' (the kit then answers the health paths in front of it)"
        )
    return SpecError(
        f"{SPEC_FILENAME}: http.{key} = {path!r}: the app has no such route (it answered "
        "404 through nginx; the stack is stopped)",
        hint=fix,
    )


def _can_listen(port: int) -> bool:
    """Whether nginx could listen on ``port``: bound as nginx binds (SO_REUSEADDR), so
    connections of a previous run still in TIME_WAIT do not count as a taken port."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def _start_or_stop(server: LoopbackServer) -> None:
    # Interrupted (Ctrl-C) while it starts, the server is not recorded yet: stop it
    # here, or it would outlive `up` unnoticed.
    try:
        server.start()
    except BaseException:
        server.stop()
        raise


def _proxy_group() -> str | None:
    user = nginx_user()
    return user[1] if user else None


def _outlive_this_process(server: object) -> None:
    # PostgresCluster/RedisServer stop themselves when the Python process exits (right
    # for tests); the stack's servers must outlive `up -d`, and `down` stops them by pid.
    import atexit

    hook = getattr(server, "_stop_at_exit", None)
    if hook is not None:
        atexit.unregister(hook)


def _role_statement_timeout(cluster: PostgresCluster, role: str, timeout: str) -> None:
    # Through PgBouncer the app cannot send its statement timeout as a startup option:
    # the role carries it, for every server connection PgBouncer opens.
    from psycopg import sql

    with cluster.connect() as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
                sql.Identifier(role), sql.Literal(timeout)
            )
        )


def _ensure_database(cluster: PostgresCluster, database: str, role: str) -> None:
    """The spec's role and database, made on the first run (trust auth on loopback)."""
    from psycopg import sql

    with cluster.connect() as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )


# -- stopping, status ----------------------------------------------------------------------


def stop_services(
    dirs: StateDir, state: StackState, echo: Echo, graceful: float = 30.0
) -> list[str]:
    """Stop the recorded services in reverse start order, each only if it is still the
    process we started. Clears ``state.json``. Returns the names stopped."""
    stopped: list[str] = []
    # the processes first (they use the database and Redis), then the reverse start order
    order = sorted(
        state.services,
        key=lambda r: (
            -SERVICES.index(r.name)
            if r.name in SERVICES
            else -len(SERVICES) - (1 if r.name.startswith(workers.PREFIX) else 0)
        ),
    )
    for record in order:
        how = stop_how(record.name, graceful)
        if record.stop(how.timeout, how.signum, group=how.group):
            stopped.append(record.name)
            echo(f"{record.name}: stopped (pid {record.pid})")
        state.services = [s for s in state.services if s is not record]
        if state.services:
            dirs.write(state)
    dirs.clear()
    return stopped


def remove_data(dirs: StateDir) -> list[Path]:
    """The data ``down --volumes`` deletes: database, Redis, uploads, SQLite."""
    removed: list[Path] = []
    for path in (
        dirs.postgres,
        dirs.mariadb,
        dirs.redis,
        dirs.media,
        dirs.sqlite,
        dirs.root / "seaweedfs",
    ):
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(path)
        elif path.exists():
            path.unlink()
            removed.append(path)
    return removed


def restart_processes(state: StackState, echo: Echo) -> None:
    """After the app server answers healthy on the new code: each worker finishes its
    job and restarts on it (HUP to its keeper)."""
    for record in state.services:
        if record.name.startswith(workers.PREFIX) and record.send(signal.SIGHUP):
            name = record.name.removeprefix(workers.PREFIX)
            if workers.is_scheduled(record.address):
                echo(f"{name}: its next run starts the new code")
            else:
                echo(f"{name}: restarting on the new code (its current job finishes first)")


def wait_forever(dirs: StateDir, state: StackState, on_tick: Callable[[], None], echo: Echo) -> int:
    """Foreground mode: call ``on_tick`` (log following) until SIGINT/SIGTERM or a
    service dies; then stop the stack. Returns the exit code."""
    stop = {"signal": 0}

    def handler(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        while not stop["signal"]:
            on_tick()
            # `reload` replaces the app server (another slot): state.json has the live one.
            fresh = dirs.read()
            if fresh is not None:
                state.services, state.slot = fresh.services, fresh.slot
            # A slot a reload starts or retires comes and goes: only the live ones count.
            dead = [r for r in state.services if state.live(r) and not r.alive()]
            if dead:
                names = ", ".join(r.name for r in dead)
                echo(f"{names} stopped unexpectedly: stopping the stack (logs: {dirs.logs})")
                code = int(ExitCode.SERVICE)
                break
            time.sleep(0.2)
        on_tick()
    finally:
        # A second Ctrl-C while stopping must not leave half the stack running.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        echo("stopping (data is kept)...")
        stop_services(dirs, state, echo)
        for s, h in previous.items():
            signal.signal(s, h)
    return code


def log_files(dirs: StateDir, state: StackState | None) -> dict[str, list[Path]]:
    """Each service's log files (nginx has its own error and access logs)."""
    files: dict[str, list[Path]] = {}
    for name in SERVICES:
        record = state.service(name) if state else None
        paths = [Path(record.log)] if record and record.log else [dirs.log(name)]
        if name == "nginx":
            paths = [dirs.log("nginx"), dirs.logs / "nginx-error.log"]
            paths.append(dirs.logs / "nginx-access.log")
        if name == "redis" and not record:
            paths = [dirs.redis / "redis.log"]
        files[name] = [p for p in paths if p.exists()]
    for record in state.services if state else []:
        if record.name.startswith(workers.PREFIX) and Path(record.log).exists():
            files[record.name.removeprefix(workers.PREFIX)] = [Path(record.log)]
    release = dirs.log("release")
    if release.exists():
        files["release"] = [release]
    return {k: v for k, v in files.items() if v}


def tail_lines(path: Path, count: int) -> list[str]:
    return process.log_tail(path, count).splitlines() if count else []


def open_follow(path: Path, from_end: bool) -> IO[bytes]:
    handle = path.open("rb")
    if from_end:
        handle.seek(0, os.SEEK_END)
    return handle
