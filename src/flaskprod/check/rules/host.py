"""Rules of the ``host`` layer: the server itself (``check --host``), read-only.

A look that needs a missing or forbidden command gives an info finding "could not
check: <why>" of the rule, so the report says what it did not see.
"""

from __future__ import annotations

import datetime
import difflib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from flaskprod.check.context import Context
from flaskprod.check.host import host_target, probes
from flaskprod.check.host.probes import CannotCheck
from flaskprod.check.host.roles import host_roles
from flaskprod.check.host.walk import walk
from flaskprod.check.model import Finding, Level, Rule, rule
from flaskprod.deploy.roles import APP, BALANCER, DATABASE, REDIS, STORAGE
from flaskprod.spec.model import S3_PORT
from flaskprod.spec.pgbouncer import PORT as PGBOUNCER_PORT

_HOST = "host"
#: Hosts that run nginx: the balancer, and each app host (its site for the balancer).
_WEB = (APP, BALANCER)


def _cannot(owner: Rule, why: object) -> Finding:
    return owner.finding(
        f"could not check: {why}",
        level=Level.INFO,
        hint="Run 'flaskprod check --host' on the server, as a user allowed to read it.",
    )


@rule(
    "HST001",
    layer=_HOST,
    roles=_WEB,
    level=Level.ERROR,
    title="nginx -t fails",
    help="Fix the config nginx reports before the next reload: a reload with a broken "
    "config is refused and a restart takes the site down.",
)
def nginx_test(ctx: Context) -> Iterator[Finding]:
    target = host_target(ctx)
    if not target.nginx_conf.is_file():
        yield _cannot(nginx_test, f"{target.nginx_conf} does not exist")
        return
    try:
        error = probes.nginx_test(target.nginx_conf, target.nginx_prefix)
    except CannotCheck as why:
        yield _cannot(nginx_test, why)
        return
    if error:
        yield nginx_test.finding(f"nginx -t: {error}", file=str(target.nginx_conf))


def _normalized(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@rule(
    "HST002",
    layer=_HOST,
    roles=_WEB,
    level=Level.WARNING,
    title="The enabled nginx site differs from the kit",
    help="Install the rendered site (deploy/nginx/<name>.conf) unchanged, or change the "
    "spec and re-render: hand edits on the server are lost at the next deploy.",
    requires=("spec",),
)
def site_drift(ctx: Context) -> Iterator[Finding]:
    target = host_target(ctx)
    if target.site_unknown is not None:
        yield _cannot(site_drift, target.site_unknown)
        return
    if target.kit_site is None and target.deploy_site is None:
        yield _cannot(site_drift, "the project has no rendered nginx site (flaskprod render)")
        return
    if target.enabled_site is None or not target.enabled_site.is_file():
        yield site_drift.finding(
            f"no enabled nginx site for {target.app_name} (looked in {target.etc / 'nginx'})",
            level=Level.ERROR,
        )
        return
    if target.kind == "local stack":
        yield _cannot(
            site_drift,
            "the local stack runs an overlay of the kit (its ports and paths), "
            "not the site as installed on a server",
        )
        return
    enabled = _normalized(target.enabled_site.read_text(errors="replace"))
    if target.deploy_site is not None:  # 'flaskprod deploy' installs the slot variant
        kit = _normalized(target.deploy_site)
        source = (
            f"the site 'flaskprod deploy' renders from {ctx.relative(ctx.root / 'flaskprod.toml')}"
        )
    else:
        assert target.kit_site is not None
        kit = _normalized(target.kit_site.read_text(errors="replace"))
        source = str(ctx.relative(target.kit_site))
    if enabled != kit:
        diff = list(difflib.unified_diff(kit, enabled, lineterm="", n=0))[2:6]
        yield site_drift.finding(
            f"{target.enabled_site} differs from {source}: " + " | ".join(diff),
            file=str(target.enabled_site),
        )


@rule(
    "HST003",
    layer=_HOST,
    level=Level.ERROR,
    title="A service is not active, not enabled, or restarting in a loop",
    help="'systemctl enable --now <unit>'; a unit restarting in a loop: "
    "'journalctl -u <unit> -n 50' shows why it exits.",
)
def services(ctx: Context) -> Iterator[Finding]:
    target = host_target(ctx)
    if target.kind == "local stack":
        for name in ("nginx", "gunicorn"):
            pid = target.nginx_pid if name == "nginx" else target.gunicorn_pid
            if pid is None and name in target.services:
                yield services.finding(f"{name} of the local stack is not running (state.json)")
        return
    if not probes.systemd_running():
        yield _cannot(services, "systemd is not running here (no /run/systemd/system)")
        return
    for unit in target.services or ["nginx"]:
        try:
            shown = probes.run(
                ["systemctl", "show", unit, "-p", "ActiveState,UnitFileState,NRestarts"]
            )
        except CannotCheck as why:
            yield _cannot(services, why)
            return
        fields = dict(ln.split("=", 1) for ln in shown.stdout.splitlines() if "=" in ln)
        if fields.get("ActiveState") != "active":
            yield services.finding(f"{unit}: {fields.get('ActiveState', 'unknown')}")
        if fields.get("UnitFileState") not in ("enabled", "static", "alias"):
            yield services.finding(
                f"{unit}: not enabled at boot ({fields.get('UnitFileState')})",
                level=Level.WARNING,
            )
        if int(fields.get("NRestarts") or 0) >= 3:
            yield services.finding(f"{unit}: restarted {fields['NRestarts']} times")


def _nginx_workers(target_pid: int | None) -> list[probes.Proc]:
    if target_pid is None:
        return []
    return [p for p in map(probes.proc, probes.children(target_pid)) if p is not None]


@rule(
    "HST004",
    layer=_HOST,
    roles=(APP,),
    level=Level.ERROR,
    title="The gunicorn socket is missing or out of nginx's reach",
    help="gunicorn must run and bind the socket nginx proxies to; its folder must be "
    "searchable and the socket writable by nginx's worker user (www-data): "
    "RuntimeDirectory= plus 'umask 007' and a shared group.",
)
def socket_reach(ctx: Context) -> Iterator[Finding]:
    target = host_target(ctx)
    path = target.socket
    if path is None:
        return
    if not path.exists():
        yield socket_reach.finding(
            f"{path} does not exist (gunicorn not running or bound elsewhere)"
        )
        return
    if not path.is_socket():
        yield socket_reach.finding(f"{path} is not a socket")
        return
    workers = _nginx_workers(target.nginx_pid)
    if not workers:
        yield _cannot(socket_reach, "no running nginx worker to read the user of")
        return
    problem = probes.can_reach(path, workers[0], write=True)
    if problem:
        yield socket_reach.finding(
            f"nginx's workers (uid {workers[0].uid}) cannot connect: {problem}"
        )


@rule(
    "HST005",
    layer=_HOST,
    roles=(APP,),
    level=Level.ERROR,
    title="The app listens on a public interface",
    help="Bind gunicorn to a unix socket or 127.0.0.1 behind nginx: on 0.0.0.0 it is "
    "reachable without TLS, headers and limits.",
)
def public_port(ctx: Context) -> Iterator[Finding]:
    target = host_target(ctx)
    if target.gunicorn_pid is None:
        if target.bind and not target.bind.startswith("unix:"):
            port = target.bind.rsplit(":", 1)[-1]
            for address in probes.tcp_listeners().values():
                if address.endswith(f":{port}") and not probes.is_loopback(address):
                    yield public_port.finding(f"something listens on {address} (the app's port)")
        return
    try:
        inodes = probes.socket_inodes(target.gunicorn_pid)
    except CannotCheck as why:
        yield _cannot(public_port, why)
        return
    for inode, address in probes.tcp_listeners().items():
        if inode in inodes and not probes.is_loopback(address):
            yield public_port.finding(f"gunicorn (pid {target.gunicorn_pid}) listens on {address}")


@rule(
    "HST006",
    layer=_HOST,
    roles=_WEB,
    level=Level.WARNING,
    title="The app or nginx workers run as root",
    help="Run gunicorn as the app's own user (systemd User=) and nginx's workers as "
    "www-data: a bug in the app should not own the server.",
)
def runs_as_root(ctx: Context) -> Iterator[Finding]:
    target = host_target(ctx)
    checked = []
    if target.gunicorn_pid is not None:
        checked += [
            (f"{target.server} pid {p.pid}", p)
            for p in map(probes.proc, [target.gunicorn_pid, *probes.children(target.gunicorn_pid)])
            if p is not None
        ]
    checked += [(f"nginx worker pid {p.pid}", p) for p in _nginx_workers(target.nginx_pid)]
    if not checked:
        yield _cannot(runs_as_root, "no running gunicorn or nginx of this deployment found")
        return
    root = [label for label, p in checked if p.uid == 0]
    if root:
        yield runs_as_root.finding(f"running as root: {', '.join(root[:4])}")


@rule(
    "HST007",
    layer=_HOST,
    roles=(APP, DATABASE),
    level=Level.ERROR,
    title="The env file is readable by others",
    help="It holds the secrets: 'chmod 640' (owner root, group the app's) or 600.",
)
def env_file_mode(ctx: Context) -> Iterator[Finding]:
    for path in host_target(ctx).env_files:
        if not path.exists():
            continue
        mode = path.stat().st_mode
        if mode & 0o004:
            yield env_file_mode.finding(f"{path} is mode {oct(mode & 0o777)}", file=str(path))


_ALLOWED_PORTS = {"22", "80", "443"}


def _allowed_ports(ctx: Context) -> set[str]:
    """22, 80 and 443 on one server; on a host of several, what its roles need (HST013
    checks who each private port is open to)."""
    held = host_roles(ctx)
    if held.topology is None:
        return _ALLOWED_PORTS
    ports = {"22"}
    ports |= {"80", "443"} if held.has(BALANCER) else set()
    ports |= {"80"} if held.has(APP) else set()
    ports |= {"5432"} if held.has(DATABASE) else set()
    spec = ctx.spec
    if held.has(DATABASE) and spec is not None and spec.database.pgbouncer:
        ports.add(str(PGBOUNCER_PORT))
    ports |= {"6379"} if held.has(REDIS) else set()
    ports |= {str(S3_PORT)} if held.has(STORAGE) else set()
    return ports


def _open_ports(text: str, tool: str) -> set[str]:
    if tool == "ufw":
        ports = set()
        for line in text.splitlines():
            if "ALLOW" in line:
                head = line.split("ALLOW")[0].strip().split()[0]
                ports.add(head.split("/")[0])
        return ports
    ports = set()
    for match in re.finditer(r"dport\s+(\{[^}]*\}|\S+)[^\n]*accept", text):
        ports |= {p.strip() for p in match.group(1).strip("{}").split(",") if p.strip()}
    return ports


@rule(
    "HST008",
    layer=_HOST,
    level=Level.WARNING,
    title="The firewall allows more than 22, 80 and 443 (or than the host's roles need)",
    help="Allow only ssh and the web: 'ufw default deny incoming; ufw allow 22,80,443/tcp'. "
    "Databases and app servers listen on loopback or a private network. A host of several: "
    "22, plus 80/443 on the balancer, 80 on an app host, 5432 on the database host, 6379 "
    "on the Redis host, 8333 (SeaweedFS's S3 gateway) on the storage host.",
)
def firewall(ctx: Context) -> Iterator[Finding]:
    for tool, argv in (("ufw", ["ufw", "status"]), ("nft", ["nft", "list", "ruleset"])):
        if shutil.which(tool) is None:
            continue
        try:
            result = probes.run(argv)
        except CannotCheck as why:
            yield _cannot(firewall, why)
            return
        if result.returncode != 0:
            yield _cannot(firewall, f"{' '.join(argv)}: {result.stderr.strip()[:120]}")
            return
        if tool == "ufw" and "inactive" in result.stdout:
            yield firewall.finding("ufw is installed but inactive")
            return
        extra = sorted(_open_ports(result.stdout, tool) - _allowed_ports(ctx))
        if extra:
            yield firewall.finding(f"{tool} allows ports {', '.join(extra)}")
        return
    yield _cannot(firewall, "neither ufw nor nft is installed here")


@rule(
    "HST009",
    layer=_HOST,
    roles=(BALANCER,),
    level=Level.WARNING,
    title="The certificate on disk expires soon or is never renewed",
    help="Renew automatically: certbot's timer (certbot.timer) or cron, with a deploy "
    "hook reloading nginx. Warning within 30 days, error within 7.",
)
def certificate_on_disk(ctx: Context) -> Iterator[Finding]:
    from cryptography import x509  # only when --host runs

    target = host_target(ctx)
    now = datetime.datetime.now(datetime.UTC)
    for path in target.certificates:
        if not path.is_file():
            yield _cannot(certificate_on_disk, f"{path} does not exist or is not readable")
            continue
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (ValueError, OSError) as error:
            yield certificate_on_disk.finding(f"{path}: not a PEM certificate ({error})")
            continue
        days = (cert.not_valid_after_utc - now).total_seconds() / 86400
        if days < 30:
            yield certificate_on_disk.finding(
                f"{path} expires in {days:.1f} days",
                level=Level.ERROR if days < 7 else Level.WARNING,
                file=str(path),
            )
    if target.kind == "local stack" or not target.certificates:
        return  # the local CA re-issues at every 'flaskprod up'
    timers = [
        target.etc / "systemd/system/timers.target.wants/certbot.timer",
        target.etc / "cron.d/certbot",
        *(target.etc.parent / "lib/systemd/system").glob("certbot*.timer"),
    ]
    if not any(p.exists() for p in timers):
        yield certificate_on_disk.finding("no certbot timer or cron job renews the certificate")


def _rotated_patterns(etc: Path) -> list[str]:
    patterns: list[str] = []
    for conf in [etc / "logrotate.conf", *sorted((etc / "logrotate.d").glob("*"))]:
        try:
            text = conf.read_text(errors="replace")
        except OSError:
            continue
        for match in re.finditer(r"^\s*(/[^{\n]*?)\s*\{", text, re.MULTILINE):
            patterns += match.group(1).split()
    return patterns


@rule(
    "HST010",
    layer=_HOST,
    level=Level.WARNING,
    title="Log files without rotation",
    help="Rotate them: a logrotate entry (/etc/logrotate.d/<name>) with 'daily', "
    "'rotate 14', 'compress' and a postrotate that reopens the files (nginx -s reopen, "
    "gunicorn USR1), or log to journald.",
)
def log_rotation(ctx: Context) -> Iterator[Finding]:
    import fnmatch

    target = host_target(ctx)
    patterns = _rotated_patterns(target.etc)
    unrotated = []
    for folder in target.log_dirs:
        for path in sorted(folder.glob("*.log")) if folder.is_dir() else []:
            if not any(fnmatch.fnmatch(str(path), p) for p in patterns):
                unrotated.append(path)
    if unrotated:
        names = ", ".join(str(p) for p in unrotated[:4])
        more = f" and {len(unrotated) - 4} more" if len(unrotated) > 4 else ""
        yield log_rotation.finding(f"no logrotate entry covers {names}{more}")


@rule(
    "HST011",
    layer=_HOST,
    level=Level.WARNING,
    title="The disk is almost full",
    help="Free space where logs, media and backups live (rotate logs, prune backups, "
    "grow the volume): a full disk stops PostgreSQL, uploads and logging. Warning above "
    "90 %, error above 97 %.",
)
def disk_space(ctx: Context) -> Iterator[Finding]:
    # options["disk_full_percent"]: the warning threshold (default 90).
    threshold = float(ctx.options.get("disk_full_percent") or 90)
    seen: set[int] = set()
    for folder in host_target(ctx).data_dirs:
        existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
        if existing is None:
            continue
        device = existing.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        usage = shutil.disk_usage(existing)
        used = 100 * (usage.total - usage.free) / usage.total
        if used > threshold:
            yield disk_space.finding(
                f"{existing}: {used:.0f}% used ({usage.free // 2**20} MiB free)",
                level=Level.ERROR if used > max(97, threshold) else Level.WARNING,
            )


_PERIODS = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 31}


@rule(
    "HST012",
    layer=_HOST,
    roles=(DATABASE,),
    level=Level.ERROR,
    title="No recent backup",
    help="Check the backup timer ('systemctl list-timers', 'journalctl -u <name>-backup') "
    "and run 'flaskprod backup' now; the spec's [backup] schedule says how old the newest "
    "may be.",
    requires=("spec",),
)
def backup_age(ctx: Context) -> Iterator[Finding]:
    from flaskprod.ops.manifest import list_backups

    spec = ctx.spec
    target = host_target(ctx)
    if spec is None or target.backup_dir is None or target.app_name is None:
        return
    schedule = spec.backup.schedule.strip().lower()
    period = _PERIODS.get(schedule)
    note = ""
    if period is None:
        period, note = 1.0, f" (schedule {schedule!r} read as daily)"
    allowed = datetime.timedelta(days=period) * 1.5  # one missed run is already a finding
    if not target.backup_dir.is_dir():
        yield backup_age.finding(f"no backup folder {target.backup_dir}{note}")
        return
    try:
        found = list_backups(target.backup_dir, target.app_name)
    except OSError as error:
        yield _cannot(backup_age, f"{target.backup_dir}: {error.strerror}")
        return
    if not found:
        yield backup_age.finding(f"no backup in {target.backup_dir}{note}")
        return
    age = datetime.datetime.now(datetime.UTC) - found[0].manifest.created
    if age > allowed:
        hours = age.total_seconds() / 3600
        yield backup_age.finding(
            f"the newest backup ({found[0].stem}) is {hours:.0f} h old; the {schedule} "
            f"schedule allows {allowed.total_seconds() / 3600:.0f} h{note}"
        )


@rule(
    "HST020",
    layer=_HOST,
    roles=(BALANCER,),
    level=Level.ERROR,
    title="502: the first broken link between nginx and the app",
    help="The site answers 502 (or nothing): the walk nginx -> upstream in its config -> "
    "socket -> gunicorn answering on it names the first broken link and its fix.",
)
def bad_gateway(ctx: Context) -> Iterator[Finding]:
    target = host_target(ctx)
    if target.url is None:
        return
    links = walk(target)
    broken = next((link for link in links if not link.ok), None)
    if broken is None:
        return
    passed = " -> ".join(f"{link.step} ok" for link in links if link.ok)
    yield bad_gateway.finding(
        f"{broken.step}: {broken.detail}" + (f" (after: {passed})" if passed else ""),
        hint=broken.fix or bad_gateway.help,
    )
