"""Provision a Debian/Ubuntu server for the app, idempotently, from the spec and the kit.

Every step is derived from ``flaskprod.toml`` and the kit rendered from it (the
project's ``deploy/``): packages, the app user and its folders, secrets generated on
the server, the PostgreSQL role and database (or MariaDB's: :mod:`mariadb_host`),
Redis, the env file, the systemd units, the nginx site, the certificate, the firewall,
log rotation, journald retention and the backup timer. A second run with nothing to
do changes nothing and says so.
"""

from __future__ import annotations

import io
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

from flaskprod.deploy import hostfiles, mariadb_host
from flaskprod.deploy.engine import Engine, StepFailed, StepResult
from flaskprod.deploy.ops import ensure
from flaskprod.deploy.pgbouncer_host import PgBouncerHost, provision_pgbouncer
from flaskprod.deploy.roles import APP, BALANCER, DATABASE, REDIS, STORAGE, HostPlan
from flaskprod.deploy.seaweedfs_host import (
    S3_PORT,
    SeaweedFSHost,
    config_template,
    provision_seaweedfs,
)
from flaskprod.errors import ProjectError
from flaskprod.kit.artifacts import sqlite_path
from flaskprod.kit.balancer_site import (
    app_host_site,
    app_hosts_path,
    app_hosts_upstream,
    balancer_site,
)
from flaskprod.kit.deploy_site import SLOTS, deploy_process_units, deploy_site, upstream_line
from flaskprod.spec.model import LETSENCRYPT_DIRECTORY, Spec
from flaskprod.spec.pgbouncer import PORT as PGBOUNCER_PORT

HELPER = "/usr/local/lib/flaskprod/hostside.py"
ACME_CA = "/etc/flaskprod/acme-ca.pem"
RENEW_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/flaskprod-reload-nginx"
CERTBOT_DROPIN = "/etc/systemd/system/certbot.service.d/flaskprod.conf"

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Kit:
    """The kit files a server gets, read from the project's rendered ``deploy/``."""

    project: Path
    units: dict[str, str]  # file name -> text, for /etc/systemd/system
    site: str  # the kit's nginx site (HTTPS)
    site_http: str  # the same before a certificate exists
    upstream: str | None  # the first upstream include (release slots), when there are slots
    scripts: dict[str, str]  # backup.sh, restore.sh -> text

    @classmethod
    def read(cls, spec: Spec, project: Path) -> Kit:
        name = spec.app.name
        deploy = project / "deploy"
        site_path = deploy / "nginx" / f"{name}.conf"
        if not site_path.is_file() or not (deploy / "systemd").is_dir():
            raise ProjectError(
                f"{project}: the kit is not rendered (no {site_path.relative_to(project)})",
                hint="run 'flaskprod render' first",
            )
        units = {p.name: p.read_text() for p in sorted((deploy / "systemd").iterdir())}
        if f"{name}@.service" in units:  # releases run in slots: the plain unit is unused
            units.pop(f"{name}.service", None)
        # the processes' units run the live release ({root}/current), not {root}
        units.update(deploy_process_units(spec))
        site, upstream = _slot_site(spec)
        try:
            site_http = hostfiles.http_only_site(hostfiles.parse_site_text(site))
        except ValueError as error:
            raise ProjectError(f"{site_path}: {error}", hint="run 'flaskprod render'") from None
        scripts = {
            p.name: p.read_text()
            for p in sorted((deploy / "scripts").glob("*.sh"))
            if p.name in ("backup.sh", "restore.sh")
        }
        return cls(
            project=project,
            units=units,
            site=site,
            site_http=site_http,
            upstream=upstream,
            scripts=scripts,
        )


def _slot_site(spec: Spec) -> tuple[str, str]:
    """The site a deploy host gets (its upstream is the include a release switches), and
    that include's first content (slot a, so that nginx -t passes before a release)."""
    return deploy_site(spec), upstream_line(spec, SLOTS[0])


@dataclass(frozen=True)
class TlsFiles:
    """``tls.mode = "own"``: local certificate files to upload."""

    certificate: Path | None = None
    certificate_key: Path | None = None


@dataclass
class Provisioned:
    steps: list[StepResult] = field(default_factory=list)

    @property
    def changed(self) -> list[StepResult]:
        return [step for step in self.steps if step.changed]


def _q(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _helper(*words: str) -> str:
    return _q("python3", HELPER, *words)


class Provisioner:
    """The steps, in order, for one host; ``echo`` gets one progress line per step."""

    def __init__(
        self,
        engine: Engine,
        spec: Spec,
        kit: Kit,
        echo: Echo,
        tls_files: TlsFiles | None = None,
        plan: HostPlan | None = None,
    ) -> None:
        self.engine = engine
        #: One host of several (its roles); None: one server holding every role.
        self.plan = plan
        self.spec = spec
        self.kit = kit
        self.echo = echo
        self.tls_files = tls_files or TlsFiles()
        self.result = Provisioned()
        self.name = spec.app.name
        self.user = spec.resolve(spec.deploy.user)
        self.root = spec.app.install_dir.rstrip("/")
        self.env_file = spec.resolve(spec.deploy.env_file)
        self.conf_dir = posixpath.dirname(self.env_file)
        self.secrets = f"{self.conf_dir}/secrets.env"
        self.certificate = spec.resolve(spec.tls.certificate)
        self.certificate_key = spec.resolve(spec.tls.certificate_key)
        self.webroot = spec.resolve(spec.tls.acme_webroot).rstrip("/")
        self.postgres = spec.database.engine == "postgresql"
        self.redis = spec.redis.enabled and spec.redis.local
        #: SeaweedFS is this deploy's to run (on this host if it holds the storage role).
        self.object_storage = hostfiles.provisions_storage(spec)

    # -- running ------------------------------------------------------------------
    def has(self, role: str) -> bool:
        """Whether this host holds ``role`` (one server holds them all)."""
        return self.plan is None or self.plan.has(role)

    def run(self) -> Provisioned:
        """Every step of the host's roles, in order; one server (no plan) holds them all."""
        several = self.plan is not None
        serves = self.has(APP) or self.has(DATABASE)
        self.helper()
        self.preflight()
        self.packages()
        stores = self.object_storage and self.has(STORAGE)
        if serves:
            self.app_user()
        else:
            self.role_folders()
        if several and (serves or self.has(REDIS) or stores):
            self.nonlocal_bind()
        if self.has(DATABASE) or self.has(REDIS):
            self.secrets_step()
            if self.plan is not None and self.plan.secrets_made is not None:
                self.plan.secrets_made()
        elif self.has(APP) or stores:
            self.shared_secrets_step()
        if stores:
            self.object_store()
        if self.postgres and self.has(DATABASE) and (several or self.spec.database.local):
            self.database()
            if several:
                self.database_network()
            if self.spec.database.pgbouncer:  # the env file's DATABASE_URL names it
                self.pgbouncer()
        if not several and mariadb_host.wanted(self.spec):
            self._done(
                mariadb_host.provision(
                    self.engine, self.spec, self.kit.project, self.secrets, _helper
                )
            )
        if self.spec.redis.enabled and self.has(REDIS) and (several or self.spec.redis.local):
            self.redis_step()
        if serves:
            self.env_step()
            self.units()
        if self.has(DATABASE):
            self.first_backup()
        if several and self.has(APP):
            self.app_site()
        if self.has(BALANCER):
            self.public_site()
        self.firewall()
        self.logs()
        return self.result

    def public_site(self) -> None:
        """The public site: plain HTTP until the certificate exists, then HTTPS."""
        had_certificate = self._certificate_present()
        self.nginx(tls_ready=had_certificate)
        if self.tls() and not had_certificate:
            self.nginx(tls_ready=True)

    def _done(self, result: StepResult) -> None:
        self.result.steps.append(result)
        verb = "would change" if self.engine.dry_run else "changed"
        if result.changed:
            what = "; ".join(dict.fromkeys(result.details))
            self.echo(f"  {result.name}: {verb} ({what})")
        else:
            self.echo(f"  {result.name}: ok")

    def _fact(self, command: str) -> str:
        found = self.engine.host.get_fact(Command, command=f"{{ {command} ; }} 2>&1 || true")
        return (found or "").strip()

    def _certificate_present(self) -> bool:
        # test -s follows symlinks (Let's Encrypt's live/ files link into archive/)
        return self._fact(f"test -s {_q(self.certificate)} && echo ok") == "ok"

    # -- steps --------------------------------------------------------------------
    def helper(self) -> None:
        source = resources.files("flaskprod.deploy").joinpath("hostside.py").read_text()
        with self.engine.step("flaskprod's host helper") as step:
            step.op(files.put, HELPER, src=io.StringIO(source), dest=HELPER, mode="755")
        self._done(step.result)

    def preflight(self) -> None:
        """What the host must offer before anything is installed."""
        with self.engine.step("preflight") as step:
            minor = self.spec.deploy.python_version
            found = self._fact(f"python{minor} -c 'print(1)'")
            if found != "1":
                default = self._fact("python3 -c 'import sys; print(sys.version.split()[0])'")
                raise StepFailed(
                    step.name,
                    [
                        f"the spec asks for Python {minor} (deploy.python_version) and "
                        f"the host has {default or 'no python3'}: set deploy.python_version "
                        "to the host's, or use a host that has it"
                    ],
                )
            held = []
            if not self.engine.dry_run and (self.has(APP) or self.has(BALANCER)):
                for line in self._fact(_helper("listeners", "80", "443")).splitlines():
                    port, _, program = line.partition(" ")
                    program = program.split(" ")[0]
                    if port.isdigit() and program != "nginx":
                        held.append(f"port {port} is held by {program}")
            if held:
                raise StepFailed(
                    step.name,
                    [
                        ", ".join(dict.fromkeys(held)) + ": stop and disable it "
                        "(systemctl disable --now ...) so nginx can serve the site"
                    ],
                )
        self._done(step.result)

    def package_list(self) -> list[str]:
        if self.plan is not None:
            return self._role_packages()
        wanted = ["nginx", "python3-venv", "ufw", "logrotate", "acl"]
        if self.postgres:
            wanted.append("postgresql" if self.spec.database.local else "postgresql-client")
        wanted += mariadb_host.packages(self.spec)
        if self.redis:
            wanted.append("redis-server")
        if self.spec.tls.mode == "letsencrypt":
            wanted.append("certbot")
        if self.spec.storage.kind == "s3":
            wanted.append("curl")  # backup.sh copies the backup to the bucket
        return wanted

    def _role_packages(self) -> list[str]:
        """Only what the host's roles use: no PostgreSQL or Redis on an app host, no
        Python environment on the balancer."""
        wanted = []
        if self.has(APP) or self.has(BALANCER):
            wanted.append("nginx")
        if self.has(APP):
            wanted.append("python3-venv")
        wanted += ["ufw", "logrotate", "acl"]
        if self.postgres and self.has(DATABASE):
            wanted.append("postgresql")
        if self.spec.redis.enabled and self.has(REDIS):
            wanted.append("redis-server")
        if self.has(BALANCER) and self.spec.tls.mode == "letsencrypt":
            wanted.append("certbot")
        if self.has(DATABASE) and self.spec.storage.kind == "s3":
            wanted.append("curl")  # backup.sh copies the backup to the bucket
        return wanted

    def packages(self) -> None:
        with self.engine.step("packages") as step:
            # A deploy interrupted during apt leaves dpkg half-configured: finish that first.
            step.op(
                ensure,
                "dpkg --configure -a",
                check='test -z "$(dpkg --audit)" && echo ok',
                fix="DEBIAN_FRONTEND=noninteractive dpkg --configure -a",
            )
            step.op(
                apt.packages,
                "packages: " + " ".join(self.package_list()),
                packages=self.package_list(),
                update=True,
                cache_time=3600,
                no_recommends=True,
            )
        self._done(step.result)

    def app_user(self) -> None:
        spec, user = self.spec, self.user
        log_dir = spec.resolve(spec.deploy.log_dir).rstrip("/")
        backup_dir = spec.resolve(spec.backup.dir).rstrip("/")
        folders = [
            # code: written by deploys only; readable (the release ships it 0755: nginx
            # serves static files from it, and the code holds no secret)
            (self.root, "root", user, "755"),
            (f"{self.root}/releases", "root", user, "755"),
            (f"{self.root}/slots", "root", user, "750"),
            (f"{self.root}/deploy/scripts", "root", user, "750"),
            (spec.media_dir.rstrip("/"), user, user, "750"),
            (log_dir, user, user, "750"),
            (backup_dir, user, user, "700"),
            (self.conf_dir, "root", user, "750"),
            (self.webroot, "root", "root", "755"),
        ]
        if spec.database.engine == "sqlite":  # the file and its journal, beside each other
            folders.append((posixpath.dirname(sqlite_path(spec)), user, user, "750"))
        with self.engine.step("app user and folders") as step:
            step.op(server.group, f"group {user}", group=user, system=True)
            step.op(  # noqa: S604 - 'shell' is the user's login shell (nologin)
                server.user,
                f"user {user}",
                user=user,
                group=user,
                system=True,
                home=self.root,
                shell="/usr/sbin/nologin",
                ensure_home=False,
            )
            for path, owner, group, mode in folders:
                step.op(files.directory, path, path=path, user=owner, group=group, mode=mode)
            # nginx reads static files and media, and reaches the app's socket
            step.op(
                ensure,
                f"www-data in group {user}",
                check=f"id -nG www-data | tr ' ' '\\n' | grep -qx {_q(user)} && echo ok",
                fix=_q("usermod", "-aG", user, "www-data"),
            )
            for script, text in self.kit.scripts.items():
                dest = f"{self.root}/deploy/scripts/{script}"
                step.op(files.put, dest, src=io.StringIO(text), dest=dest, mode="755")
        self._done(step.result)

    def role_folders(self) -> None:
        """A balancer or storage host without the app: no app user; the balancer's logs
        and ACME webroot, the storage host's folder for the keys it is given."""
        folders = []
        if self.has(BALANCER):
            log_dir = self.spec.resolve(self.spec.deploy.log_dir).rstrip("/")
            folders += [(log_dir, "755"), (self.webroot, "755")]
        if self.object_storage and self.has(STORAGE):
            folders.append((self.conf_dir, "700"))
        if not folders:
            return
        with self.engine.step("folders (" + ", ".join(p for p, _ in folders) + ")") as step:
            for path, mode in folders:
                step.op(files.directory, path, path=path, user="root", group="root", mode=mode)
        self._done(step.result)

    def _shared_secrets_text(self, text: str) -> str:
        """What this host keeps of the database host's secrets: all of them for an app
        host; the object store's key pair only for a storage host without the app."""
        if self.has(APP):
            return text
        keep = [line for line in text.splitlines(keepends=True) if line.startswith("#")]
        keep += [
            line
            for line in text.splitlines(keepends=True)
            if line.split("=", 1)[0] in hostfiles.S3_KEYS
        ]
        return "".join(keep)

    def shared_secrets_step(self) -> None:
        """An app host (or the storage host): the database host's secrets it needs, read
        there over SSH into memory and written here 0600 root (never printed, never on
        this machine's disk)."""
        assert self.plan is not None and self.plan.shared_secrets is not None
        database = self.plan.placement.topology.database
        with self.engine.step(f"secrets (from {database})") as step:
            text = self.plan.shared_secrets()
            if text is None:  # a dry run: the database host has none yet
                step.result.changed = True
                step.result.details.append(f"{self.secrets} copied from {database}")
            else:
                text = self._shared_secrets_text(text)
                step.op(
                    files.put,
                    f"{self.secrets} copied from {database}",
                    src=io.StringIO(text),
                    dest=self.secrets,
                    user="root",
                    group="root",
                    mode="600",
                )
        self._done(step.result)

    def object_store(self) -> None:
        """SeaweedFS with the uploads' bucket: on the storage host's private address (the
        app hosts, the balancer and the database host reach it), or beside the app of
        one server on its loopback; its key pair rendered from the host's secrets."""
        from urllib.parse import urlsplit

        from flaskprod.deploy.seaweedfs_host import CONFIG, USER

        if self.plan is not None:
            settings = SeaweedFSHost(self.spec.media_bucket, listen=self.plan.address)
        else:
            port = urlsplit(self.spec.storage.endpoint).port or 80
            settings = SeaweedFSHost(self.spec.media_bucket, port=port)
        template = config_template(settings.bucket, lambda name: f"{{{{secret:{name}}}}}")

        def write_config(step_op: Callable[..., bool]) -> bool:
            return self._render(step_op, template, CONFIG, "640", "root", USER, CONFIG)

        self._done(provision_seaweedfs(self.engine, settings, write_config))
        if self.plan is not None and self.plan.storage_made is not None:
            self.plan.storage_made()

    def secrets_step(self) -> None:
        names = hostfiles.secret_names(self.spec)
        with self.engine.step("secrets (generated on the host)") as step:
            step.op(
                ensure,
                "generated " + ", ".join(names),
                check=_helper("secrets", self.secrets, *names, "--check"),
                fix=_helper("secrets", self.secrets, *names),
            )
        self._done(step.result)

    def database(self) -> None:
        spec = self.spec
        role, name = spec.resolve(spec.database.user), spec.resolve(spec.database.name)
        args = (self.secrets, role, name, hostfiles.DB_PASSWORD)
        with self.engine.step("PostgreSQL role and database") as step:
            step.op(systemd.service, "postgresql running", service="postgresql", enabled=True)
            step.op(
                ensure,
                f"role {role}, database {name}",
                check=_helper("postgres", *args, "--check"),
                fix=_helper("postgres", *args),
            )
        self._done(step.result)

    def database_network(self) -> None:
        """A database host: PostgreSQL on loopback and the private address, pg_hba
        admitting each app host (its address, the app's role and database, scram)."""
        assert self.plan is not None
        placement = self.plan.placement
        version = self._fact("ls /etc/postgresql 2>/dev/null | sort -V | tail -1") or "15"
        main = f"/etc/postgresql/{version}/main"
        with self.engine.step("PostgreSQL on the private network (pg_hba: the app hosts)") as step:
            conf = f"{main}/conf.d/flaskprod-{self.name}.conf"
            restart = step.op(
                files.put,
                conf,
                src=io.StringIO(hostfiles.postgres_listen_conf(self.spec, self.plan.address)),
                dest=conf,
                mode="644",
            )
            reload = step.op(
                files.block,
                f"{main}/pg_hba.conf: the app hosts",
                path=f"{main}/pg_hba.conf",
                content=hostfiles.pg_hba_lines(self.spec, placement.app_addresses),
                marker=f"# {{mark}} flaskprod {self.name}: the app hosts",
            )
            if restart:  # listen_addresses needs a restart
                step.op(
                    systemd.service, "postgresql restarted", service="postgresql", restarted=True
                )
            elif reload:
                step.op(systemd.service, "postgresql reloaded", service="postgresql", reloaded=True)
        self._done(step.result)

    def _render(
        self,
        step_op: Callable[..., bool],
        template: str,
        dest: str,
        mode: str,
        owner: str,
        group: str,
        label: str,
    ) -> bool:
        source = f"{self.conf_dir}/{posixpath.basename(dest)}.in"
        step_op(
            files.put,
            f"{label} template",
            src=io.StringIO(template),
            dest=source,
            user="root",
            group="root",
            mode="600",
        )
        args = (self.secrets, source, dest, mode, owner, group)
        return step_op(
            ensure,
            label,
            check=_helper("render", *args, "--check"),
            fix=_helper("render", *args),
        )

    def redis_step(self) -> None:
        include = f"/etc/redis/flaskprod-{self.name}.conf"
        private = self.plan.address if self.plan is not None else None
        where = "private address" if private else "loopback"
        with self.engine.step(f"Redis (password, {where}, memory policy)") as step:
            changed = self._render(
                step.op,
                hostfiles.redis_template(self.spec, private),
                include,
                "640",
                "redis",
                "redis",
                include,
            )
            changed |= step.op(
                files.line,
                "redis.conf includes it",
                path="/etc/redis/redis.conf",
                line=f"include {include}",
            )
            if changed:
                step.op(systemd.service, "redis restarted", service="redis-server", restarted=True)
            step.op(
                systemd.service,
                "redis-server enabled",
                service="redis-server",
                running=True,
                enabled=True,
            )
        self._done(step.result)

    def env_step(self) -> None:
        database = redis = "localhost"
        if self.plan is not None and not self.has(DATABASE):  # an app host
            database = self.plan.placement.database_address
        if self.plan is not None and not self.has(REDIS):
            redis = self.plan.placement.redis_address
        with self.engine.step("env file") as step:
            self._render(
                step.op,
                hostfiles.env_template(self.spec, database, redis),
                self.env_file,
                "600",
                "root",
                self.user,
                self.env_file,
            )
        self._done(step.result)

    def _units(self) -> dict[str, str]:
        """The kit's units this host runs: the backups on the database host, the app's
        slots and processes on an app host."""
        if self.plan is None:
            return self.kit.units
        backup = (f"{self.name}-backup.service", f"{self.name}-backup.timer")
        return {
            unit: text
            for unit, text in self.kit.units.items()
            if (unit in backup and self.has(DATABASE)) or (unit not in backup and self.has(APP))
        }

    def units(self) -> None:
        units = self._units()
        with self.engine.step("systemd units") as step:
            changed = False
            for unit, text in units.items():
                dest = f"/etc/systemd/system/{unit}"
                changed |= step.op(files.put, dest, src=io.StringIO(text), dest=dest, mode="644")
            if changed:
                step.op(systemd.daemon_reload, "daemon-reload")
            for unit in units:
                if unit.endswith(".timer"):
                    step.op(
                        systemd.service, f"{unit} enabled", service=unit, running=True, enabled=True
                    )
        self._done(step.result)

    def first_backup(self) -> None:
        """The kit's backup unit run once under the server's systemd: it works, and
        there is a backup from the first day (the timer takes over)."""
        unit = f"{self.name}-backup.service"
        several = self.plan is not None and self.has(DATABASE)
        database = self.spec.database
        if unit not in self.kit.units or (
            database.server_engine and not database.local and not several
        ):
            return  # a database elsewhere may not be reachable before the app's first release
        folder = self.spec.resolve(self.spec.backup.dir).rstrip("/")
        if self.plan is not None and self.plan.storage_wait is not None:
            self.plan.storage_wait()  # the backup is copied to the storage host
        with self.engine.step("first backup") as step:
            step.op(
                ensure,
                f"{unit} ran",
                check=f"find {_q(folder)} -maxdepth 1 -name '*.sha256' | grep -q . && echo ok",
                fix=f"systemctl start {unit} || {{ journalctl -u {unit} -n 5 --no-pager -o cat; "
                "exit 1; }",
            )
        self._done(step.result)

    def nginx(self, *, tls_ready: bool) -> None:
        """The public site: one server's, or the balancer's (in front of the app hosts)."""
        upstream: str | None
        if self.plan is not None:  # the balancer
            site = balancer_site(self.spec)
            if not tls_ready:
                site = hostfiles.http_only_site(hostfiles.parse_site_text(site))
            upstream = app_hosts_upstream(self.plan.placement.app_addresses)
            file, include = f"{self.name}-balancer.conf", app_hosts_path(self.spec)
        else:
            site = self.kit.site if tls_ready else self.kit.site_http
            upstream, file = self.kit.upstream, f"{self.name}.conf"
            include = f"/etc/nginx/{self.name}-upstream.conf"
        title = "nginx site (HTTPS)" if tls_ready else "nginx site (HTTP until a certificate)"
        if self.plan is not None:
            title = title.replace("nginx site", "balancer site")
        self._site(title, file, site, include, upstream)

    def nonlocal_bind(self) -> None:
        """nginx, PostgreSQL and Redis bind the private address even before its interface
        is up at boot (else PostgreSQL would come up on loopback only, Redis not at all)."""
        sysctl = "/etc/sysctl.d/60-flaskprod-nonlocal-bind.conf"
        with self.engine.step("services may bind the private address at boot") as step:
            if step.op(
                files.put,
                sysctl,
                src=io.StringIO("net.ipv4.ip_nonlocal_bind = 1\nnet.ipv6.ip_nonlocal_bind = 1\n"),
                dest=sysctl,
                mode="644",
            ):
                step.op(server.shell, "sysctl applied", commands=[f"sysctl -q -p {sysctl}"])
        self._done(step.result)

    def app_site(self) -> None:
        """An app host's site: plain HTTP on its private address, for the balancer."""
        assert self.plan is not None
        placement = self.plan.placement
        site = app_host_site(self.spec, self.plan.address, placement.balancer_address)
        include = f"/etc/nginx/{self.name}-upstream.conf"
        self._site(
            f"app host site (HTTP on {self.plan.address}:80, for the balancer)",
            f"{self.name}.conf",
            site,
            include,
            self.kit.upstream,
        )
        if not self.has(BALANCER):
            # A reload keeps the sockets nginx has: its package's wildcard :80 would hold
            # the port and the private address never be bound; a restart rebinds (once).
            listen = f"{self.plan.address}:80"
            with self.engine.step("nginx listens on the private address only") as step:
                step.op(
                    ensure,
                    f"nginx on {listen}",
                    check=f"ss -Hltn 'sport = :80' | awk '{{print $4}}' | grep -qvxF {_q(listen)} "
                    "|| echo ok",
                    fix="systemctl restart nginx",
                )
            self._done(step.result)

    def _site(self, title: str, file: str, site: str, include: str, upstream: str | None) -> None:
        available = f"/etc/nginx/sites-available/{file}"
        with self.engine.step(title) as step:
            changed = step.op(
                files.put, available, src=io.StringIO(site), dest=available, mode="644"
            )
            changed |= step.op(
                files.link,
                f"sites-enabled/{file}",
                path=f"/etc/nginx/sites-enabled/{file}",
                target=available,
            )
            changed |= step.op(
                files.link,
                "default site removed",
                path="/etc/nginx/sites-enabled/default",
                present=False,
            )
            # the release (a rolling release) switches it; provisioning makes the first
            if upstream is not None and not self.engine.host.get_fact(File, path=include):
                changed |= step.op(
                    files.put,
                    include,
                    src=io.StringIO(upstream),
                    dest=include,
                    mode="644",
                )
            if changed:
                step.op(server.shell, "nginx -t", commands=["nginx -t -q"])
                step.op(systemd.service, "nginx reloaded", service="nginx", reloaded=True)
            step.op(systemd.service, "nginx enabled", service="nginx", running=True, enabled=True)
        self._done(step.result)

    def tls(self) -> bool:
        """The certificate: certbot (letsencrypt) or the given files (own). True when
        one is in place afterwards (a dry run: when one would be)."""
        mode = self.spec.tls.mode
        if mode == "letsencrypt":
            return self._certbot()
        if mode == "own":
            return self._own_certificate()
        raise StepFailed(
            "certificate",
            [
                "tls.mode = 'local-ca' is for 'flaskprod up' only: use 'letsencrypt' or "
                "'own' for a server"
            ],
        )

    def _certbot(self) -> bool:
        tls = self.spec.tls
        with self.engine.step("certificate (certbot, webroot)") as step:
            env = ""
            if tls.acme_ca:
                ca = self.kit.project / Path(tls.acme_ca).expanduser()
                if not ca.is_file():
                    raise StepFailed(
                        step.name, [f"tls.acme_ca: {ca} does not exist on this machine"]
                    )
                step.op(
                    files.put, ACME_CA, src=io.StringIO(ca.read_text()), dest=ACME_CA, mode="644"
                )
                dropin = f"[Service]\nEnvironment=REQUESTS_CA_BUNDLE={ACME_CA}\n"
                if step.op(
                    files.put,
                    "certbot trusts tls.acme_ca",
                    src=io.StringIO(dropin),
                    dest=CERTBOT_DROPIN,
                    mode="644",
                ):
                    step.op(systemd.daemon_reload, "daemon-reload")
                env = f"REQUESTS_CA_BUNDLE={ACME_CA} "
            step.op(ensure, "certbot's own server setting", **self._cli_ini())
            step.op(
                files.put,
                "renewal reloads nginx",
                src=io.StringIO(hostfiles.RELOAD_HOOK),
                dest=RENEW_HOOK,
                mode="755",
            )
            domains = [w for d in self.spec.app.domains for w in ("-d", d)]
            email = (
                ["--email", tls.acme_email]
                if tls.acme_email
                else ["--register-unsafely-without-email"]
            )
            certonly = env + _q(
                "certbot",
                "certonly",
                "--non-interactive",
                "--agree-tos",
                "--webroot",
                "-w",
                self.webroot,
                "--cert-name",
                self.spec.app.domains[0],
                "--server",
                tls.acme_directory,
                *email,
                *domains,
            )
            step.op(
                ensure,
                f"certificate for {', '.join(self.spec.app.domains)}",
                check=f"test -s {_q(self.certificate)} && echo ok",
                fix=certonly,
            )
            step.op(
                systemd.service,
                "certbot.timer enabled",
                service="certbot.timer",
                running=True,
                enabled=True,
            )
        self._done(step.result)
        return True

    def _cli_ini(self) -> dict[str, str]:
        """certbot's cli.ini names a private ACME server: ``certbot renew --dry-run``
        would otherwise ask Let's Encrypt's staging server (its choice for a dry run
        whenever the server is the default), which knows nothing of this certificate."""
        ini = "/etc/letsencrypt/cli.ini"
        directory = self.spec.tls.acme_directory
        others = f"grep -E '^server *=' {ini} 2>/dev/null | grep -vxF {_q('server = ' + directory)}"
        drop = f"touch {ini} && sed -i '/^server *=/d' {ini}"
        if directory == LETSENCRYPT_DIRECTORY:
            return {"check": f"grep -Eq '^server *=' {ini} || echo ok", "fix": drop}
        wanted = f"grep -qxF {_q('server = ' + directory)} {ini}"
        return {
            "check": f"{wanted} && ! {others} >/dev/null && echo ok",
            "fix": f"{drop} && echo {_q('server = ' + directory)} >> {ini}",
        }

    def _own_certificate(self) -> bool:
        given = self.tls_files
        with self.engine.step("certificate (own files)") as step:
            if given.certificate and given.certificate_key:
                for local, dest, mode in (
                    (given.certificate, self.certificate, "644"),
                    (given.certificate_key, self.certificate_key, "600"),
                ):
                    step.op(
                        files.put, dest, src=io.StringIO(local.read_text()), dest=dest, mode=mode
                    )
            elif not self._certificate_present():
                raise StepFailed(
                    step.name,
                    [
                        f"tls.mode = 'own' and {self.certificate} is not on the host: pass "
                        "--certificate FILE and --certificate-key FILE"
                    ],
                )
        self._done(step.result)
        return True

    def firewall(self) -> None:
        ports = self._fact("sshd -T 2>/dev/null | awk '$1 == \"port\" {print $2}'").split()
        ssh_ports = [p for p in ports if p.isdigit()] or ["22"]
        if self.plan is not None:
            return self._role_firewall(ssh_ports)
        rules = [f"{p}/tcp" for p in [*ssh_ports, "80", "443"]]
        status = "ufw status | grep -q '^Status: active'"
        checks = " && ".join([status] + [f"ufw status | grep -Eq '^{r} +ALLOW'" for r in rules])
        fixes = [_q("ufw", "allow", rule) for rule in rules] + ["ufw --force enable"]
        with self.engine.step(f"firewall (ufw: SSH {', '.join(ssh_ports)}, 80, 443)") as step:
            step.op(ensure, "ufw rules", check=f"{checks} && echo ok", fix=fixes)
        self._done(step.result)

    def pgbouncer(self) -> None:
        """PgBouncer beside PostgreSQL: on loopback for one server, also on the private
        address for the app hosts of several."""
        listen = "127.0.0.1" if self.plan is None else f"127.0.0.1,{self.plan.address}"
        self._done(provision_pgbouncer(self.engine, PgBouncerHost.from_spec(self.spec, listen)))

    def _role_firewall(self, ssh_ports: list[str]) -> None:
        """Only what the host's roles need, only from the hosts that need it: SSH
        everywhere; 80/443 public on the balancer; 80 on an app host from the balancer;
        5432 (and PgBouncer's 6432)/6379 on the database/Redis host from the app hosts;
        the S3 gateway on the storage host from the app hosts, the balancer and the
        database host."""
        assert self.plan is not None
        placement = self.plan.placement
        public = [*ssh_ports, *(["80", "443"] if self.has(BALANCER) else [])]
        sourced: list[tuple[str, str]] = []  # (port, from address)
        if self.has(APP) and not self.has(BALANCER):
            sourced.append(("80", placement.balancer_address))
        pgbouncer = self.postgres and self.spec.database.pgbouncer
        for role, port, used in (
            (DATABASE, "5432", self.postgres),  # migrations and ops connect directly
            (DATABASE, str(PGBOUNCER_PORT), pgbouncer),
            (REDIS, "6379", self.spec.redis.enabled),
        ):
            if self.has(role) and used:
                sourced += [(port, address) for address in placement.app_addresses]
        if self.object_storage and self.has(STORAGE):
            sourced += [(str(S3_PORT), address) for address in placement.clients_of_storage()]
        status = "ufw status | grep -q '^Status: active'"
        checks = [status] + [f"ufw status | grep -Eq '^{p}/tcp +ALLOW +Anywhere'" for p in public]
        checks += [
            f"ufw status | grep -Eq '^{p}/tcp +ALLOW +{re.escape(a)}( |$)'" for p, a in sourced
        ]
        fixes = [_q("ufw", "allow", f"{p}/tcp") for p in public]
        fixes += [
            _q("ufw", "allow", "from", a, "to", "any", "port", p, "proto", "tcp")
            for p, a in sourced
        ]
        fixes.append("ufw --force enable")
        opened = ", ".join([f"SSH {'/'.join(ssh_ports)}", *public[len(ssh_ports) :]])
        opened += "".join(f", {p} from {a}" for p, a in sourced)
        with self.engine.step(f"firewall (ufw: {opened})") as step:
            step.op(ensure, "ufw rules", check=" && ".join(checks) + " && echo ok", fix=fixes)
        self._done(step.result)

    def logs(self) -> None:
        with self.engine.step("logrotate and journald retention") as step:
            rotate = f"/etc/logrotate.d/{self.name}"
            step.op(
                files.put,
                rotate,
                src=io.StringIO(hostfiles.logrotate_conf(self.spec)),
                dest=rotate,
                mode="644",
            )
            journald = "/etc/systemd/journald.conf.d/flaskprod.conf"
            if step.op(
                files.put,
                journald,
                src=io.StringIO(hostfiles.JOURNALD_CONF),
                dest=journald,
                mode="644",
            ):
                step.op(
                    systemd.service,
                    "journald restarted",
                    service="systemd-journald",
                    restarted=True,
                )
        self._done(step.result)
