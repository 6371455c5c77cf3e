"""Provision a Debian/Ubuntu server for the app, idempotently, from the spec and the kit.

Every step is derived from ``flaskprod.toml`` and the kit rendered from it (the
project's ``deploy/``): packages, the app user and its folders, secrets generated on
the server, the PostgreSQL role and database, Redis, the env file, the systemd units,
the nginx site, the certificate, the firewall, log rotation, journald retention and
the backup timer. A second run with nothing to do changes nothing and says so.
"""

from __future__ import annotations

import io
import posixpath
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, server, systemd

from flaskprod.deploy import hostfiles
from flaskprod.deploy.engine import Engine, StepFailed, StepResult
from flaskprod.deploy.ops import ensure
from flaskprod.deploy.pgbouncer_host import PgBouncerHost, provision_pgbouncer
from flaskprod.errors import ProjectError
from flaskprod.kit.artifacts import sqlite_path
from flaskprod.kit.deploy_site import SLOTS, deploy_process_units, deploy_site, upstream_line
from flaskprod.spec.model import LETSENCRYPT_DIRECTORY, Spec

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
        self, engine: Engine, spec: Spec, kit: Kit, echo: Echo, tls_files: TlsFiles | None = None
    ) -> None:
        self.engine = engine
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

    # -- running ------------------------------------------------------------------
    def run(self) -> Provisioned:
        self.helper()
        self.preflight()
        self.packages()
        self.app_user()
        self.secrets_step()
        if self.postgres and self.spec.database.local:
            self.database()
            if self.spec.database.pgbouncer:  # the env file's DATABASE_URL names it
                self._done(provision_pgbouncer(self.engine, PgBouncerHost.from_spec(self.spec)))
        if self.redis:
            self.redis_step()
        self.env_step()
        self.units()
        self.first_backup()
        had_certificate = self._certificate_present()
        self.nginx(tls_ready=had_certificate)
        if self.tls() and not had_certificate:
            self.nginx(tls_ready=True)
        self.firewall()
        self.logs()
        return self.result

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
            if not self.engine.dry_run:
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
        wanted = ["nginx", "python3-venv", "ufw", "logrotate", "acl"]
        if self.postgres:
            wanted.append("postgresql" if self.spec.database.local else "postgresql-client")
        if self.redis:
            wanted.append("redis-server")
        if self.spec.tls.mode == "letsencrypt":
            wanted.append("certbot")
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
        with self.engine.step("Redis (password, loopback, memory policy)") as step:
            changed = self._render(
                step.op,
                hostfiles.redis_template(self.spec),
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
        with self.engine.step("env file") as step:
            self._render(
                step.op,
                hostfiles.env_template(self.spec),
                self.env_file,
                "600",
                "root",
                self.user,
                self.env_file,
            )
        self._done(step.result)

    def units(self) -> None:
        with self.engine.step("systemd units") as step:
            changed = False
            for unit, text in self.kit.units.items():
                dest = f"/etc/systemd/system/{unit}"
                changed |= step.op(files.put, dest, src=io.StringIO(text), dest=dest, mode="644")
            if changed:
                step.op(systemd.daemon_reload, "daemon-reload")
            for unit in self.kit.units:
                if unit.endswith(".timer"):
                    step.op(
                        systemd.service, f"{unit} enabled", service=unit, running=True, enabled=True
                    )
        self._done(step.result)

    def first_backup(self) -> None:
        """The kit's backup unit run once under the server's systemd: it works, and
        there is a backup from the first day (the timer takes over)."""
        unit = f"{self.name}-backup.service"
        if unit not in self.kit.units or (self.postgres and not self.spec.database.local):
            return  # a database elsewhere may not be reachable before the app's first release
        folder = self.spec.resolve(self.spec.backup.dir).rstrip("/")
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
        name = self.name
        available = f"/etc/nginx/sites-available/{name}.conf"
        title = "nginx site (HTTPS)" if tls_ready else "nginx site (HTTP until a certificate)"
        with self.engine.step(title) as step:
            site = self.kit.site if tls_ready else self.kit.site_http
            changed = step.op(
                files.put, available, src=io.StringIO(site), dest=available, mode="644"
            )
            changed |= step.op(
                files.link,
                f"sites-enabled/{name}.conf",
                path=f"/etc/nginx/sites-enabled/{name}.conf",
                target=available,
            )
            changed |= step.op(
                files.link,
                "default site removed",
                path="/etc/nginx/sites-enabled/default",
                present=False,
            )
            if self.kit.upstream is not None:
                # the release switches it; provisioning only makes the first one
                upstream = f"/etc/nginx/{name}-upstream.conf"
                if not self.engine.host.get_fact(File, path=upstream):
                    changed |= step.op(
                        files.put,
                        upstream,
                        src=io.StringIO(self.kit.upstream),
                        dest=upstream,
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
        rules = [f"{p}/tcp" for p in [*ssh_ports, "80", "443"]]
        status = "ufw status | grep -q '^Status: active'"
        checks = " && ".join([status] + [f"ufw status | grep -Eq '^{r} +ALLOW'" for r in rules])
        fixes = [_q("ufw", "allow", rule) for rule in rules] + ["ufw --force enable"]
        with self.engine.step(f"firewall (ufw: SSH {', '.join(ssh_ports)}, 80, 443)") as step:
            step.op(ensure, "ufw rules", check=f"{checks} && echo ok", fix=fixes)
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
