"""What ``check --host`` looks at: the deployment's files and processes on this server.

Two shapes: the project's local stack when ``flaskprod up`` runs it (state.json names
every pid, socket and file), else the server layout the kit installs (from the spec:
/etc/nginx, the unix socket, /etc/<name>/<name>.env, the backup folder, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from flaskprod.check.context import Context
from flaskprod.check.host.roles import HostRoles, host_roles
from flaskprod.deploy.roles import APP, BALANCER, DATABASE, REDIS, STORAGE
from flaskprod.spec.model import Spec


def etc(ctx: Context) -> Path:
    """The /etc the host rules read: ``options["host_root"]`` lets them read a mounted
    image or a test's stand-in tree instead of this machine's."""
    return Path(str(ctx.options.get("host_root") or "/")) / "etc"


@dataclass
class HostTarget:
    kind: str  # "local stack" or "server"
    nginx_conf: Path
    #: nginx's -p prefix (the local stack runs nginx outside /etc).
    nginx_prefix: Path | None = None
    nginx_pid: int | None = None
    gunicorn_pid: int | None = None
    #: What the app server is (server.kind; the local stack's record): for messages.
    server: str = "gunicorn"
    #: The upstream the app listens on: "unix:/path" or "host:port"; None when unknown.
    bind: str | None = None
    #: The site as nginx has it enabled, and the kit's rendering of it on disk.
    enabled_site: Path | None = None
    kit_site: Path | None = None
    #: A 'flaskprod deploy' host's site as deploy renders it (its upstream an include
    #: naming the live release slot), compared instead of the plain kit's.
    deploy_site: str | None = None
    env_files: list[Path] = field(default_factory=list)
    certificates: list[Path] = field(default_factory=list)
    log_dirs: list[Path] = field(default_factory=list)
    data_dirs: list[Path] = field(default_factory=list)
    backup_dir: Path | None = None
    app_name: str | None = None
    #: The site's https URL, for the 502 walk.
    url: str | None = None
    ca: Path | None = None
    services: list[str] = field(default_factory=list)
    #: Where system configuration is read (nginx, logrotate, certbot's timer).
    etc: Path = Path("/etc")
    #: Why the site deploy installs cannot be known here (a host of several whose
    #: peers' addresses were not given).
    site_unknown: str | None = None

    @property
    def socket(self) -> Path | None:
        return Path(self.bind[5:]) if self.bind and self.bind.startswith("unix:") else None


def _alive(pid: int | None, started: int | None) -> bool:
    from flaskprod.stack.process import is_alive, start_time

    return pid is not None and is_alive(pid) and (started is None or start_time(pid) == started)


def resolve(ctx: Context) -> HostTarget:
    target = _local_stack(ctx)
    target = target if target is not None else _server(ctx)
    target.etc = etc(ctx)
    return target


def _local_stack(ctx: Context) -> HostTarget | None:
    from flaskprod.stack.state import StateDir  # the process machinery: only for --host

    dirs = StateDir(ctx.root / ".flaskprod")
    state = dirs.read()
    if state is None:
        return None
    nginx = state.service("nginx")
    # The app server, whichever server.kind runs it (gunicorn_pid: the app server's).
    gunicorn = state.service("gunicorn") or state.service("granian")
    if nginx is None:
        return None
    spec = ctx.spec
    kit_site = None
    if spec is not None:
        candidate = ctx.root / "deploy" / "nginx" / f"{spec.app.name}.conf"
        kit_site = candidate if candidate.is_file() else None
    return HostTarget(
        kind="local stack",
        nginx_conf=dirs.nginx / "nginx.conf",
        nginx_prefix=dirs.nginx,
        nginx_pid=nginx.pid if _alive(nginx.pid, nginx.started) else None,
        gunicorn_pid=(
            gunicorn.pid if gunicorn and _alive(gunicorn.pid, gunicorn.started) else None
        ),
        bind=gunicorn.address if gunicorn else None,
        enabled_site=dirs.nginx / "site.conf",
        kit_site=kit_site,
        env_files=[dirs.root / "secret_key"],
        certificates=[dirs.tls / "server.pem"],
        log_dirs=[dirs.logs],
        data_dirs=[dirs.logs, dirs.media],
        backup_dir=dirs.root / "backups",  # where 'flaskprod backup' writes for the stack
        app_name=spec.app.name if spec is not None else None,
        url=f"https://localhost:{state.https_port}/",
        ca=dirs.tls / "ca.pem",
        services=[s.name for s in state.services],
        server=gunicorn.name if gunicorn else "gunicorn",
    )


def _server(ctx: Context) -> HostTarget:
    spec = ctx.spec
    nginx_root = etc(ctx) / "nginx"
    target = HostTarget(kind="server", nginx_conf=nginx_root / "nginx.conf")
    if spec is None:
        target.log_dirs = [Path("/var/log/nginx")]
        return target
    name = spec.app.name
    target.app_name = name
    target.bind = spec.bind
    target.server = spec.server.kind
    for folder in ("sites-enabled", "conf.d"):
        for candidate in (nginx_root / folder / n for n in (name, f"{name}.conf")):
            if candidate.exists():
                target.enabled_site = candidate
    kit = ctx.root / "deploy" / "nginx" / f"{name}.conf"
    target.kit_site = kit if kit.is_file() else None
    held = host_roles(ctx)  # one server: every role
    env_file = Path(spec.resolve(spec.deploy.env_file))
    # the database host of several keeps the shared secrets (the app hosts' env files)
    target.env_files = [env_file] if held.has(APP) else [env_file.parent / "secrets.env"]
    domain = spec.app.domains[0] if spec.app.domains else None
    if domain and held.has(BALANCER):
        target.certificates = [Path(spec.resolve(spec.tls.certificate))]
        target.url = f"https://{domain}/"
    target.log_dirs = [Path("/var/log/nginx"), Path(f"/var/log/{name}")]
    target.data_dirs = [Path("/var/log")] + ([Path(spec.media_dir)] if held.has(APP) else [])
    if held.has(DATABASE):
        target.backup_dir = Path(spec.resolve(spec.backup.dir))
        target.data_dirs.append(target.backup_dir)
    if held.topology is None:
        target.services = [name, "nginx"]
    else:  # what provisioning starts for each role the host holds
        wanted: dict[str, list[str]] = {APP: [name, "nginx"], BALANCER: ["nginx"]}
        if spec.database.engine == "postgresql":
            wanted[DATABASE] = ["postgresql"]
        if spec.redis.enabled:
            wanted[REDIS] = ["redis-server"]
        if spec.storage.kind == "s3":
            wanted[STORAGE] = ["seaweedfs"]
        units = [unit for role in sorted(held.roles) for unit in wanted.get(role, [])]
        target.services = list(dict.fromkeys(units))
    live = live_slot(etc(ctx) / "nginx" / f"{name}-upstream.conf", name)
    if live is not None and held.has(APP):  # 'flaskprod deploy': the live release slot
        slot, socket = live
        target.bind = f"unix:{socket}"
        target.services = [f"{name}@{slot}" if s == name else s for s in target.services]
        from flaskprod.kit.deploy_site import deploy_site  # the kit's templates

        target.deploy_site = deploy_site(spec)
    if held.topology is not None:
        _several_hosts_site(target, held, spec)
    return target


def _several_hosts_site(target: HostTarget, held: HostRoles, spec: Spec) -> None:
    """The site a host of several serves, as deploy renders it for its role: the
    balancer's public site, else an app host's site for the balancer."""
    from flaskprod.kit.balancer_site import app_host_site, balancer_site  # kit templates

    nginx = target.nginx_conf.parent / "sites-enabled"
    name = spec.app.name
    spec = held.placed_spec(spec)  # uploads at the storage host, as deploy renders them
    if held.has(BALANCER):
        target.enabled_site = nginx / f"{name}-balancer.conf"
        target.deploy_site = balancer_site(spec)
        return
    if not held.has(APP):
        target.enabled_site = target.kit_site = None  # no nginx on this host
        return
    target.enabled_site = nginx / f"{name}.conf"
    own = held.addresses.get(held.name or "")
    if own is None or held.balancer_address is None:
        target.site_unknown = "the private addresses of this host and the balancer are unknown"
        return
    target.deploy_site = app_host_site(spec, own, held.balancer_address)


_SLOT_SERVER = re.compile(r"^\s*server\s+unix:(/\S+?)[\s;]", re.MULTILINE)


def live_slot(include: Path, name: str) -> tuple[str, str] | None:
    """(slot, socket) of the release slot nginx sends requests to, from the upstream
    include 'flaskprod deploy' switches (``server unix:/run/{name}-{slot}/...sock``)."""
    try:
        match = _SLOT_SERVER.search(include.read_text())
    except OSError:
        return None
    if match is None:
        return None
    socket = match.group(1)
    folder = Path(socket).parent.name
    if not folder.startswith(f"{name}-"):
        return None
    return folder.removeprefix(f"{name}-"), socket
