"""Compose rules: the services around the app and how they are wired."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.check.parsers.proxy import compose_proxies
from flaskprod.check.rules.docker import SECRET_NAME
from flaskprod.launch.compose import ComposeFile, LineDict, LineList

_DATA_IMAGES = (
    "postgres",
    "postgis",
    "mysql",
    "mariadb",
    "redis",
    "valkey",
    "keydb",
    "mongo",
    "memcached",
)
_LOOPBACK = ("127.0.0.1:", "localhost:", "[::1]:", "::1:")
_INTERPOLATED = re.compile(r"^\$\{?[A-Za-z_]\w*(:?[-?][^}]*)?\}?$")
_URL_PASSWORD = re.compile(r"^[a-z][\w+.-]*://[^:/@\s]+:([^@\s]+)@")


def _files(ctx: Context) -> list[ComposeFile]:
    return [c for c in parse_compose_files(ctx) if c.error is None]


def _is_data(name: str, service: LineDict) -> str | None:
    label = f"{service.get('image') or ''} {name}".lower()
    return next((kind for kind in _DATA_IMAGES if kind in label), None)


def _published_ports(service: LineDict) -> list[str]:
    """Ports published on a non-loopback host address (short or long syntax)."""
    out = []
    ports = service.get("ports")
    for port in ports if isinstance(ports, list) else []:
        if isinstance(port, dict):
            host_ip = str(port.get("host_ip") or "")
            if port.get("published") is not None and host_ip not in (
                "127.0.0.1",
                "::1",
                "localhost",
            ):
                out.append(f"{port.get('published')}:{port.get('target')}")
        elif not str(port).startswith(_LOOPBACK):
            out.append(str(port))
    return out


@rule(
    "CMP001",
    layer="compose",
    level=Level.ERROR,
    title="compose file cannot be parsed",
    help="Fix the YAML (check with 'docker compose config'); compose refuses to start "
    "anything from a broken file.",
    example="services:\n  web:\n    image: [unclosed",
)
def unreadable(ctx: Context) -> Iterator[Finding]:
    for compose in parse_compose_files(ctx):
        if compose.error is not None:
            where = ctx.relative(compose.path)
            yield unreadable.finding(
                f"{where}: {compose.error[1]}", file=where, line=compose.error[0] or 1
            )


@rule(
    "CMP002",
    layer="compose",
    level=Level.ERROR,
    title="database or Redis port published to the host",
    help="Remove 'ports:' from the database and Redis services (the app reaches them "
    "over the compose network by service name); if you need them from the host, publish "
    "on loopback only: '127.0.0.1:5432:5432'.",
    example='db:\n  image: postgres:16\n  ports: ["5432:5432"]',
)
def data_ports(ctx: Context) -> Iterator[Finding]:
    for compose in _files(ctx):
        for name, service in compose.services.items():
            kind = _is_data(name, service)
            published = _published_ports(service)
            if kind and published:
                yield data_ports.finding(
                    f"service {name!r} ({kind}) publishes {', '.join(published)} on every "
                    "interface of the host",
                    file=ctx.relative(compose.path),
                    line=compose.line(name, "ports"),
                )


def _depends(service: LineDict) -> dict[str, Any]:
    depends = service.get("depends_on")
    if isinstance(depends, list):
        return {str(d): None for d in depends}
    if isinstance(depends, dict):
        return {str(k): v for k, v in depends.items()}
    return {}


@rule(
    "CMP003",
    layer="compose",
    level=Level.WARNING,
    title="no health check, or depends_on a database without waiting for it to be healthy",
    help='Give the database a healthcheck (test: ["CMD-SHELL", "pg_isready -U $$POSTGRES_USER"]; '
    'redis: ["CMD", "redis-cli", "ping"]) and depend on it with \'depends_on: {db: '
    "{condition: service_healthy}}'.",
    example="web:\n  depends_on: [db]   # starts before PostgreSQL accepts connections",
)
def unhealthy_depends(ctx: Context) -> Iterator[Finding]:
    app_services = {(s.file, s.service) for s in gunicorn_setups(ctx) if s.service}
    for compose in _files(ctx):
        services = compose.services
        for name, service in services.items():
            # An app service from a ready-made image: no Dockerfile HEALTHCHECK that
            # DOC005 could judge, so the compose file is the only place for one.
            if (
                (compose.path, name) in app_services
                and "build" not in service
                and not isinstance(service.get("healthcheck"), dict)
            ):
                yield unhealthy_depends.finding(
                    f"service {name!r} runs the app without a healthcheck: a hung app "
                    "keeps receiving traffic",
                    file=ctx.relative(compose.path),
                    line=compose.line(name),
                    level=Level.INFO,
                )
        for name, service in services.items():
            for dependency, options in _depends(service).items():
                target = services.get(dependency)
                if target is None or not _is_data(dependency, target):
                    continue
                condition = options.get("condition") if isinstance(options, dict) else None
                has_check = isinstance(target.get("healthcheck"), dict) and not target[
                    "healthcheck"
                ].get("disable")
                if condition == "service_healthy" and has_check:
                    continue
                why = (
                    f"{dependency!r} has no healthcheck"
                    if condition == "service_healthy"
                    else f"it only waits for {dependency!r} to start, not to accept connections"
                )
                yield unhealthy_depends.finding(
                    f"service {name!r} depends on {dependency!r} but {why}",
                    file=ctx.relative(compose.path),
                    line=compose.line(name, "depends_on"),
                )


def env_line(service: LineDict) -> int:
    return service.line_of("environment")


def _environment(service: LineDict) -> list[tuple[str, str, int]]:
    env = service.get("environment")
    out: list[tuple[str, str, int]] = []
    if isinstance(env, LineDict):
        out = [(str(k), "" if v is None else str(v), env.line_of(str(k))) for k, v in env.items()]
    elif isinstance(env, list):
        for index, item in enumerate(env):
            key, sep, value = str(item).partition("=")
            line = env.line_at(index) if isinstance(env, LineList) else env_line(service)
            if sep:
                out.append((key, value, line))
    return out


def literal_secret(key: str, value: str) -> bool:
    value = value.strip()
    if not value or _INTERPOLATED.match(value) or key.upper().endswith("_FILE"):
        return False
    if SECRET_NAME.search(key):
        return True
    match = _URL_PASSWORD.match(value)
    return bool(match and not _INTERPOLATED.match(match.group(1)))


@rule(
    "CMP004",
    layer="compose",
    level=Level.ERROR,
    title="plaintext password or secret in the compose file",
    help="Write '${POSTGRES_PASSWORD}' (compose reads it from the environment or an "
    "untracked .env next to the file), or use env_file: / secrets: instead of a literal.",
    example="environment:\n  POSTGRES_PASSWORD: hunter2",
)
def plaintext_secret(ctx: Context) -> Iterator[Finding]:
    for compose in _files(ctx):
        for name, service in compose.services.items():
            for key, value, line in _environment(service):
                if literal_secret(key, value):
                    yield plaintext_secret.finding(
                        f"service {name!r} sets {key} to a literal value",
                        file=ctx.relative(compose.path),
                        line=line,
                    )


@rule(
    "CMP005",
    layer="compose",
    level=Level.WARNING,
    title="no restart policy",
    help="Add 'restart: unless-stopped' to every long-running service (or "
    "deploy.restart_policy in swarm), so a crash or a host reboot brings it back.",
    example="web:\n  build: .   # no restart: unless-stopped",
)
def no_restart(ctx: Context) -> Iterator[Finding]:
    for compose in _files(ctx):
        awaited = _awaited_jobs(compose.services)
        missing = [
            name
            for name, service in compose.services.items()
            if not service.get("restart")
            and service.get("restart") is not False  # YAML's unquoted 'no'
            and not (
                isinstance(service.get("deploy"), dict) and service["deploy"].get("restart_policy")
            )
            and name not in awaited
            and not _one_shot(service)
        ]
        if missing:
            yield no_restart.finding(
                f"{', '.join(repr(m) for m in missing)} "
                + ("is" if len(missing) == 1 else "are")
                + " not restarted after a crash or reboot",
                file=ctx.relative(compose.path),
                line=compose.line(missing[0]),
            )


#: Commands of jobs that run once and exit: migrations, schema and data set-up.
_JOB_COMMAND = re.compile(
    r"\b(db\s+(upgrade|migrate|init|stamp)|alembic\s+upgrade|migrate|init[-_]?db|create[-_]?db"
    r"|seed[-_]?db|collectstatic|flask\s+(translate|digest)\s+compile|backup)\b"
)


def _awaited_jobs(services: dict[str, LineDict]) -> set[str]:
    """Services another one waits for to finish (``depends_on: X: condition:
    service_completed_successfully``): jobs, by the project's own account."""
    awaited: set[str] = set()
    for service in services.values():
        depends = service.get("depends_on") if isinstance(service, dict) else None
        if isinstance(depends, dict):
            for name, how in depends.items():
                condition = how.get("condition") if isinstance(how, dict) else None
                if condition == "service_completed_successfully":
                    awaited.add(str(name))
    return awaited


def _one_shot(service: LineDict) -> bool:
    """Jobs (migrations, backups) that are meant to exit."""
    profiles = service.get("profiles")
    if bool(profiles) or str(service.get("restart", "")) == "no":
        return True
    command = service.get("command")
    text = " ".join(str(w) for w in command) if isinstance(command, list) else str(command or "")
    return bool(_JOB_COMMAND.search(text))


@rule(
    "CMP006",
    layer="compose",
    level=Level.INFO,
    title="obsolete 'version:' key",
    help="Delete the top-level 'version:' line: Compose v2 ignores it and warns.",
    example='version: "3.8"',
)
def version_key(ctx: Context) -> Iterator[Finding]:
    for compose in _files(ctx):
        if "version" in compose.data:
            yield version_key.finding(
                f"{ctx.relative(compose.path)} still declares version: {compose.data['version']}",
                file=ctx.relative(compose.path),
                line=compose.data.line_of("version"),
            )


@rule(
    "CMP007",
    layer="compose",
    level=Level.CRITICAL,
    title="Docker socket mounted into a container",
    help="Do not mount /var/run/docker.sock: whoever controls the container controls the "
    "host as root. If a tool needs the Docker API, put a filtering proxy "
    "(tecnativa/docker-socket-proxy) in between.",
    example="volumes:\n  - /var/run/docker.sock:/var/run/docker.sock",
)
def docker_socket(ctx: Context) -> Iterator[Finding]:
    for compose in _files(ctx):
        for name, service in compose.services.items():
            volumes = service.get("volumes")
            for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
                text = str(volume.get("source", "")) if isinstance(volume, dict) else str(volume)
                if "docker.sock" in text:
                    line = (
                        volumes.line_at(index)
                        if isinstance(volumes, LineList)
                        else compose.line(name, "volumes")
                    )
                    yield docker_socket.finding(
                        f"service {name!r} mounts the Docker socket ({text.split(':')[0]})",
                        file=ctx.relative(compose.path),
                        line=line,
                    )
                    break


@rule(
    "CMP008",
    layer="compose",
    level=Level.CRITICAL,
    title="privileged container",
    help="Remove 'privileged: true'; grant the one capability needed with cap_add: instead.",
    example="privileged: true",
)
def privileged(ctx: Context) -> Iterator[Finding]:
    for compose in _files(ctx):
        for name, service in compose.services.items():
            if service.get("privileged") is True:
                yield privileged.finding(
                    f"service {name!r} runs privileged: root on the host",
                    file=ctx.relative(compose.path),
                    line=compose.line(name, "privileged"),
                )


@rule(
    "CMP009",
    layer="compose",
    level=Level.WARNING,
    title="app published directly, bypassing the proxy",
    help="Remove the app service's 'ports:' (use 'expose: [\"8000\"]') and reach it only "
    "through the proxy service (proxy_pass http://web:8000); publish on 127.0.0.1 if you "
    "need it from the host.",
    example='web:\n  ports: ["8000:8000"]   # next to an nginx service',
)
def app_published(ctx: Context) -> Iterator[Finding]:
    proxies = {(c.path, name) for c, name in compose_proxies(ctx)}
    if not proxies:
        return
    app_services = {(s.file, s.service) for s in gunicorn_setups(ctx) if s.service}
    for compose in _files(ctx):
        if not any(path == compose.path for path, _ in proxies):
            continue
        for name, service in compose.services.items():
            if (compose.path, name) in proxies or _is_data(name, service):
                continue
            is_app = (compose.path, name) in app_services or "build" in service
            published = _published_ports(service)
            if is_app and published:
                yield app_published.finding(
                    f"service {name!r} publishes {', '.join(published)} next to the proxy: "
                    "clients can skip its TLS, limits and buffering",
                    file=ctx.relative(compose.path),
                    line=compose.line(name, "ports"),
                )


#: Docker's stop timeout when a service sets no stop_grace_period (compose spec).
DOCKER_STOP_GRACE = 10.0
#: gunicorn's own graceful_timeout default (seconds).
GUNICORN_GRACEFUL_TIMEOUT = 30
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def duration(value: object) -> float | None:
    """Seconds in a compose duration ("1m30s", "10s", "500ms", a bare number of seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", value.strip())
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        return None
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _graceful(ctx: Context, compose: ComposeFile, name: str) -> tuple[int, str, bool] | None:
    """How long the app server of service ``name`` lets requests finish on SIGTERM:
    gunicorn's graceful_timeout (30 s unless set), granian's --workers-kill-timeout
    (unbounded when unset: GRN003's finding, nothing to compare here)."""
    from flaskprod.check.parsers.granian import granian_setups

    for setup in gunicorn_setups(ctx):
        if setup.origin == "compose" and setup.service == name:
            value = setup.get("graceful_timeout", GUNICORN_GRACEFUL_TIMEOUT)
            if isinstance(value, int) and not isinstance(value, bool):
                written = "graceful_timeout" in setup.settings
                return value, "gunicorn's graceful_timeout", written
    found = compose.services.get(name)
    service: dict[str, Any] = found if isinstance(found, dict) else {}
    built = _built_dockerfile(compose, service)
    command_line = compose.line(name, "command")
    for granian in granian_setups(ctx):
        ours = (granian.origin == "compose" and granian.file == compose.path) and (
            granian.line == command_line
        )
        image = (
            granian.origin == "dockerfile"
            and built is not None
            and (granian.file.resolve() == built and not service.get("command"))
        )
        if ours or image:
            value = granian.setting("--workers-kill-timeout")
            if isinstance(value, str) and value.isdigit():
                return int(value), "granian's --workers-kill-timeout", True
    return None


def _built_dockerfile(compose: ComposeFile, service: dict[str, Any]) -> Any:
    build = service.get("build")
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    elif isinstance(build, dict):
        context = str(build.get("context", "."))
        dockerfile = str(build.get("dockerfile", "Dockerfile"))
    else:
        return None
    return None if "://" in context else (compose.path.parent / context / dockerfile).resolve()


@rule(
    "CMP010",
    layer="compose",
    level=Level.WARNING,
    title="Docker kills the app before its graceful shutdown can end",
    help="Give the app's service stop_grace_period longer than its server's graceful "
    "timeout (the kit: graceful_timeout + 10 s): 'docker compose stop', a redeploy or a "
    "host shutdown sends SIGTERM, then SIGKILL after stop_grace_period (10 s when "
    "unset), cutting the requests gunicorn or granian were still finishing.",
    example="web:\n  build: .\n  command: gunicorn --graceful-timeout 30 wsgi:app\n"
    "  # no stop_grace_period: killed after 10 s",
    level_reason="warning when a graceful window or a stop_grace_period is written (the "
    "shutdown someone chose is undone: requests in flight at each redeploy are cut); info "
    "when both are left to their defaults (gunicorn's 30 s, Docker's 10 s: only requests "
    "running longer than 10 s at a redeploy are cut).",
)
def stop_before_graceful(ctx: Context) -> Iterator[Finding]:
    for compose in _files(ctx):
        for name, service in compose.services.items():
            if not isinstance(service, dict):
                continue
            found = _graceful(ctx, compose, name)
            if found is None:
                continue
            graceful, said, chosen = found
            written = service.get("stop_grace_period")
            grace = DOCKER_STOP_GRACE if written is None else duration(written)
            if grace is None or grace > graceful:
                continue
            shown = f"{written}" if written is not None else "10 s (Docker's default; not set)"
            yield stop_before_graceful.finding(
                f"service '{name}' is killed {shown} after SIGTERM, but {said} lets "
                f"requests finish for {graceful} s",
                file=ctx.relative(compose.path),
                line=compose.line(name, "stop_grace_period")
                if written is not None
                else compose.line(name),
                level=Level.WARNING if chosen or written is not None else Level.INFO,
            )


def _volume_targets(service: dict[str, Any]) -> list[str]:
    """Where the service's volumes and bind mounts are mounted (tmpfs is not storage)."""
    targets: list[str] = []
    volumes = service.get("volumes")
    for item in volumes if isinstance(volumes, list) else []:
        if isinstance(item, str):
            parts = item.split(":")
            if len(parts) >= 2:
                targets.append(parts[1])
        elif isinstance(item, dict) and item.get("type") != "tmpfs":
            target = item.get("target")
            if isinstance(target, str):
                targets.append(target)
    return [t.rstrip("/") or "/" for t in targets]


@rule(
    "CMP011",
    layer="compose",
    level=Level.ERROR,
    title="Uploads are written inside the container, on no volume",
    help="Mount a named volume (or a bind mount) where the app writes its uploads: "
    "'volumes: [media:/var/lib/app/media]' for MEDIA_ROOT=/var/lib/app/media. Without "
    "it they live in the container's writable layer and go with it: every deploy "
    "recreates the container.",
    example="web:\n  environment:\n    UPLOAD_FOLDER: /srv/app/uploads\n  # no volumes:",
    level_reason="error: users' files are lost at the next deploy or container "
    "recreation, without any error at the time they are uploaded.",
)
def uploads_without_volume(ctx: Context) -> Iterator[Finding]:
    from flaskprod.launch.compose import service_env
    from flaskprod.spec.settings_scan import MEDIA_KEYS

    for compose in _files(ctx):
        for name, service in compose.services.items():
            if not isinstance(service, dict) or _one_shot(service):
                continue
            env = service_env(service)
            targets = _volume_targets(service)
            for key in sorted(MEDIA_KEYS & set(env)):
                folder = env[key].strip().rstrip("/")
                if not folder.startswith("/") or "$" in folder:
                    continue  # relative to the app, or from a variable: not known here
                if any(folder == t or folder.startswith(f"{t}/") or t == "/" for t in targets):
                    continue
                yield uploads_without_volume.finding(
                    f"service '{name}' writes uploads to {folder} ({key}), which no volume "
                    "holds: they are lost when the container is recreated",
                    file=ctx.relative(compose.path),
                    line=compose.line(name, "environment"),
                )
