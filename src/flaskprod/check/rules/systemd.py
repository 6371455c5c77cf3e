"""systemd rules: the units that run the app on a VM."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.check.parsers.proxy import proxy_targets
from flaskprod.check.parsers.systemd import parse_units
from flaskprod.check.rules._exposure import exposure
from flaskprod.launch.gunicorn import find_gunicorn
from flaskprod.launch.shell import split_command, tokens
from flaskprod.launch.systemd import Unit

#: From this exposure on, systemd-analyze (252) says UNSAFE: next to nothing is
#: sandboxed, an error.
EXPOSURE_ERROR = 9.0
#: Exposure above this is systemd-analyze's EXPOSED: a warning.
EXPOSURE_WARNING = 7.0
#: Above this (systemd's MEDIUM), an info with the settings to add.
EXPOSURE_INFO = 4.5
_DATABASES = ("postgresql", "mysql", "mariadb", "redis")
_URL_KEYS = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "REDIS_URL")
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "[::1]"}


def _services(ctx: Context) -> list[Unit]:
    return [u for u in parse_units(ctx) if u.path.suffix == ".service" and u.error is None]


def _is_app(unit: Unit) -> bool:
    start = unit.value("Service", "ExecStart")
    return find_gunicorn(split_command(start)) is not None


def _long_running(unit: Unit) -> bool:
    return unit.value("Service", "Type", "simple").lower() != "oneshot"


def _line(unit: Unit, key: str, section: str = "Service") -> int:
    found = unit.get(section, key)
    return found.line if found else unit.first_line(section)


@rule(
    "SYS001",
    layer="systemd",
    level=Level.ERROR,
    title="systemd unit cannot be parsed",
    help="Write the unit as [Section] headers with Key=value lines (check with "
    "'systemd-analyze verify FILE'); a .service needs a [Service] section.",
    example="ExecStart=/srv/shop/.venv/bin/gunicorn wsgi:app   # no [Service] header above",
)
def unit_unreadable(ctx: Context) -> Iterator[Finding]:
    for unit in parse_units(ctx):
        where = ctx.relative(unit.path)
        if unit.error is not None:
            yield unit_unreadable.finding(
                f"{where}: {unit.error[1]}", file=where, line=unit.error[0] or 1
            )
        elif unit.path.suffix == ".service" and not unit.has_section("Service"):
            yield unit_unreadable.finding(f"{where} has no [Service] section", file=where, line=1)


@rule(
    "SYS002",
    layer="systemd",
    level=Level.ERROR,
    title="service runs as root",
    help="Add 'User=APP' and 'Group=APP' (a system user that owns nothing but what the "
    "app writes: useradd --system --no-create-home APP), or DynamicUser=yes.",
    example="[Service]\nExecStart=/srv/shop/.venv/bin/gunicorn wsgi:app   # no User=",
)
def runs_as_root(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        user = unit.get("Service", "User")
        if unit.value("Service", "DynamicUser").lower() in ("yes", "true", "1", "on"):
            continue
        if user is None or user.value in ("root", "0"):
            where = ctx.relative(unit.path)
            yield runs_as_root.finding(
                f"{where} runs its process as root" + ("" if user else " (no User= line)"),
                file=where,
                line=user.line if user else unit.first_line("Service"),
            )


@rule(
    "SYS003",
    layer="systemd",
    level=Level.ERROR,
    title="ExecStart missing or not an absolute path",
    help="Give the full path of the program in the virtualenv: "
    "'ExecStart=/srv/APP/.venv/bin/gunicorn -c /srv/APP/gunicorn.conf.py wsgi:app'.",
    example="ExecStart=gunicorn wsgi:app",
)
def exec_start(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        where = ctx.relative(unit.path)
        start = unit.get("Service", "ExecStart")
        if start is None:
            yield exec_start.finding(
                f"{where} has no ExecStart=", file=where, line=unit.first_line("Service")
            )
            continue
        words = tokens(start.value.lstrip("-@:+!|"))
        program = words[0] if words else ""
        if not program.startswith(("/", "%", "$")):
            yield exec_start.finding(
                f"ExecStart runs {program!r}, not an absolute path: systemd will not find "
                "the virtualenv's programs",
                file=where,
                line=start.line,
            )


@rule(
    "SYS004",
    layer="systemd",
    level=Level.WARNING,
    title="no Restart= policy",
    help="Add 'Restart=on-failure' and 'RestartSec=2' to [Service], so a crash is not "
    "an outage until someone notices.",
    example="[Service]\nExecStart=...   # no Restart=on-failure",
)
def no_restart(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        if not _long_running(unit):
            continue
        restart = unit.get("Service", "Restart")
        if restart is None or restart.value == "no":
            where = ctx.relative(unit.path)
            yield no_restart.finding(
                f"{where} is not restarted when it crashes",
                file=where,
                line=restart.line if restart else _line(unit, "ExecStart"),
            )


def _bases(ctx: Context, unit: Unit) -> list[str]:
    bases = [ctx.spec.app.install_dir] if ctx.spec else []
    workdir = unit.value("Service", "WorkingDirectory").lstrip("-")
    if workdir.startswith("/"):
        bases.append(workdir)
    return bases


def _dotenv(path: Path) -> bool:
    return path.name == ".env" or path.name.startswith(".env.")


def in_project(ctx: Context, unit: Unit, server_path: str) -> Path | None:
    """A server path inside the installed project -> the same path in the checkout."""
    path = PurePosixPath(server_path)
    for base in sorted(_bases(ctx, unit), key=len, reverse=True):
        if path == PurePosixPath(base):
            return ctx.root
        if path.is_relative_to(base):
            return ctx.root / path.relative_to(base)
    return None


@rule(
    "SYS005",
    layer="systemd",
    level=Level.ERROR,
    title="WorkingDirectory or EnvironmentFile missing or unreadable",
    help="Use absolute paths that exist on the server: WorkingDirectory=/srv/APP and "
    "EnvironmentFile=/etc/APP/APP.env (prefix with '-' only if the file is optional); "
    "without WorkingDirectory gunicorn starts in / and cannot import the app.",
    example="EnvironmentFile=/srv/shop/deploy/production.env   # not in the project",
)
def paths_missing(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        where = ctx.relative(unit.path)
        workdir = unit.get("Service", "WorkingDirectory")
        if workdir is None:
            setup = next(
                (s for s in gunicorn_setups(ctx) if s.origin == "systemd" and s.file == unit.path),
                None,
            )
            if setup is not None and setup.get("chdir") is None:
                yield paths_missing.finding(
                    f"{where} sets no WorkingDirectory= and gunicorn no --chdir: it starts "
                    "in / and cannot import the app",
                    file=where,
                    line=_line(unit, "ExecStart"),
                )
        items = ([(workdir, True)] if workdir else []) + [
            (env, False) for env in unit.all("Service", "EnvironmentFile")
        ]
        for item, is_dir in items:
            key = "WorkingDirectory" if is_dir else "EnvironmentFile"
            optional = item.value.startswith("-")
            path = item.value.lstrip("-")
            if path == "~" or path.startswith("%"):
                continue
            if not path.startswith("/"):
                yield paths_missing.finding(
                    f"{key}={item.value} is relative: systemd needs an absolute path",
                    file=where,
                    line=item.line,
                )
                continue
            local = in_project(ctx, unit, path) if not is_dir else None
            if local is None or optional or _dotenv(local):
                # On the server only: cannot be checked from here. A dotenv file
                # (.env, .env.production) holds secrets and is kept out of the
                # repository on purpose, so its absence here says nothing.
                continue
            if not local.is_file():
                yield paths_missing.finding(
                    f"{key}={path} is {ctx.relative(local)} in the project, which does not "
                    "exist: the service will not start",
                    file=where,
                    line=item.line,
                )


@rule(
    "SYS006",
    layer="systemd",
    level=Level.WARNING,
    title="environment file is world-readable",
    help="chmod 600 the EnvironmentFile (owned by root or the service user): it holds "
    "SECRET_KEY and database passwords.",
    example="EnvironmentFile=/srv/shop/deploy/shop.env   # mode -rw-r--r--",
)
def env_world_readable(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        for item in unit.all("Service", "EnvironmentFile"):
            local = in_project(ctx, unit, item.value.lstrip("-"))
            if local is None or not local.is_file():
                continue
            mode = local.stat().st_mode
            if mode & stat.S_IROTH:
                yield env_world_readable.finding(
                    f"{ctx.relative(local)} (EnvironmentFile) is readable by every user "
                    f"(mode {stat.filemode(mode)})",
                    file=ctx.relative(unit.path),
                    line=item.line,
                )


@rule(
    "SYS007",
    layer="systemd",
    level=Level.ERROR,
    title="gunicorn's socket is not the one nginx proxies to",
    help="Use one socket path everywhere: the unit's --bind unix:/run/APP/gunicorn.sock "
    "(or the .socket unit's ListenStream=) and nginx's proxy_pass "
    "http://unix:/run/APP/gunicorn.sock.",
    example=(
        "ExecStart=... --bind unix:/run/shop/app.sock"
        "   # nginx: http://unix:/run/shop/gunicorn.sock"
    ),
)
def socket_mismatch(ctx: Context) -> Iterator[Finding]:
    nginx = {t.port: t for t in proxy_targets(ctx) if t.host == "unix"}
    if not nginx:
        return
    sockets: list[tuple[str, Path, int]] = []
    for setup in gunicorn_setups(ctx):
        if setup.origin == "systemd":
            file, line = setup.where("bind")
            sockets += [(b[5:], file, line) for b in setup.binds if b.startswith("unix:")]
    for unit in parse_units(ctx):
        if unit.path.suffix == ".socket":
            sockets += [
                (a.value, unit.path, a.line)
                for a in unit.all("Socket", "ListenStream")
                if a.value.startswith("/")
            ]
    if not sockets or any(path in nginx for path, _, _ in sockets):
        return
    path, file, line = sockets[0]
    target = next(iter(nginx.values()))
    yield socket_mismatch.finding(
        f"gunicorn listens on {path} but nginx proxies to {target.port} "
        f"({ctx.relative(target.directive.file)}:{target.directive.line}): every request "
        "is a 502",
        file=ctx.relative(file),
        line=line,
    )


def _database_host(url: str) -> tuple[str, str] | None:
    match = re.match(r"^([a-z0-9+]+)://(?:[^@/]*@)?(\[[^\]]*\]|[^:/?]*)", url)
    if not match:
        return None
    return match.group(1).split("+")[0], match.group(2)


def _spec_urls(ctx: Context) -> dict[str, str]:
    """Stand-in URLs for what the spec says runs on the app's own server."""
    urls: dict[str, str] = {}
    if ctx.spec is None:
        return urls
    database, redis = ctx.spec.database, ctx.spec.redis
    if getattr(database, "local", False) and database.engine == "postgresql":
        urls["flaskprod.toml [database] local"] = "postgresql://localhost/"
    if getattr(database, "local", False) and database.engine in ("mariadb", "mysql"):
        urls["flaskprod.toml [database] local"] = "mysql://localhost/"
    if getattr(redis, "local", False) and redis.enabled:
        urls["flaskprod.toml [redis] local"] = "redis://localhost/"
    return urls


def _unit_env(unit: Unit) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in unit.all("Service", "Environment"):
        for word in tokens(item.value):
            key, sep, value = word.partition("=")
            if sep:
                env[key] = value
    return env


@rule(
    "SYS008",
    layer="systemd",
    level=Level.WARNING,
    title="no ordering after a local database",
    help="Add 'After=postgresql.service' and 'Wants=postgresql.service' to [Unit] "
    "(redis-server.service for Redis) so that at boot the app starts once the database "
    "is up.",
    example=(
        "Environment=DATABASE_URL=postgresql://shop@localhost/shop   # no After=postgresql.service"
    ),
)
def no_after_database(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        if not _is_app(unit):
            continue
        # The production environment only counts when it is really known (not a
        # stand-in such as .env.example); the unit's own Environment= always does.
        env = {**(ctx.env if ctx.env_known else {}), **_unit_env(unit), **_spec_urls(ctx)}
        order = " ".join(
            a.value
            for key in ("After", "Requires", "Wants", "BindsTo")
            for a in unit.all("Unit", key)
        ).lower()
        missing: dict[str, str] = {}
        for key, url in env.items():
            if key not in _URL_KEYS and not key.startswith("flaskprod.toml"):
                continue
            parsed = _database_host(url)
            if parsed is None:
                continue
            scheme, host = parsed
            kind = next((d for d in _DATABASES if scheme.startswith(d[:5])), None)
            if kind is None or host not in _LOCAL_HOSTS:
                continue
            if kind[:5] in order:
                continue
            # MariaDB answers mysql:// URLs; Debian's unit is mariadb.service (alias mysql)
            if kind in ("mysql", "mariadb") and ("mysql" in order or "mariadb" in order):
                continue
            missing.setdefault(kind, key)
        if missing:
            where = ctx.relative(unit.path)
            said = "; ".join(f"{kind} ({key})" for kind, key in missing.items())
            yield no_after_database.finding(
                f"{where} is not ordered after the local {said}: at boot the app may start "
                "before it accepts connections",
                file=where,
                line=_line(unit, "After", "Unit") if unit.get("Unit", "After") else 1,
            )


@rule(
    "SYS009",
    layer="systemd",
    level=Level.WARNING,
    title="no ExecReload for a graceful reload",
    help="Add 'ExecReload=/bin/kill -s HUP $MAINPID': 'systemctl reload APP' then "
    "replaces gunicorn's workers without dropping a request.",
    example="# no ExecReload=/bin/kill -s HUP $MAINPID",
    level_reason="warning: a graceful reload is a deployment checklist item; without it "
    "every deploy restarts the service and the requests in flight get a 502.",
)
def no_reload(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        if _is_app(unit) and unit.get("Service", "ExecReload") is None:
            where = ctx.relative(unit.path)
            yield no_reload.finding(
                f"{where} has no ExecReload=: deploys must restart, dropping requests",
                file=where,
                line=_line(unit, "ExecStart"),
            )


@rule(
    "SYS010",
    layer="systemd",
    level=Level.WARNING,
    title="weak sandboxing (high exposure score)",
    help="Add systemd's hardening to [Service]: NoNewPrivileges=yes, ProtectSystem=strict "
    "(with ReadWritePaths= for what the app writes), ProtectHome=yes, PrivateTmp=yes, "
    "PrivateDevices=yes, ProtectKernelTunables=yes, ProtectKernelModules=yes, "
    "ProtectControlGroups=yes, RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6, "
    "RestrictNamespaces=yes, LockPersonality=yes, SystemCallFilter=@system-service, "
    "CapabilityBoundingSet=; check with 'systemd-analyze security UNIT'.",
    example="[Service]\nUser=shop\nExecStart=...   # nothing else: exposure 9.2/10",
    level_reason=f"rises with the exposure score, in systemd-analyze's (252) bands: "
    f"error from {EXPOSURE_ERROR} (UNSAFE: an unhardened unit, a compromised app can read "
    f"and write all its user can), warning above {EXPOSURE_WARNING} (EXPOSED: weakly "
    f"hardened), info above {EXPOSURE_INFO} (MEDIUM: the settings still to add).",
)
def weak_hardening(ctx: Context) -> Iterator[Finding]:
    for unit in _services(ctx):
        if not _long_running(unit):
            continue
        score, missing = exposure(unit)
        if score <= EXPOSURE_INFO:
            continue
        where = ctx.relative(unit.path)
        yield weak_hardening.finding(
            f"{where} has an exposure score of {score}/10 (systemd-analyze security "
            f"style); most open: {', '.join(missing[:5])}",
            file=where,
            line=unit.first_line("Service"),
            level=Level.ERROR
            if score >= EXPOSURE_ERROR
            else Level.WARNING
            if score > EXPOSURE_WARNING
            else Level.INFO,
        )


@rule(
    "SYS011",
    layer="systemd",
    level=Level.ERROR,
    title="gunicorn's socket folder does not exist after a reboot",
    help="Let systemd create the socket's folder: 'RuntimeDirectory=APP' for "
    "--bind unix:/run/APP/gunicorn.sock (owned by User=, removed on stop), or use a "
    ".socket unit; /run is empty after every boot and the service user cannot create "
    "folders in it.",
    example=(
        "User=shop\n"
        "ExecStart=/srv/shop/.venv/bin/gunicorn --bind unix:/run/shop/gunicorn.sock wsgi:app\n"
        "# no RuntimeDirectory=shop"
    ),
)
def socket_folder(ctx: Context) -> Iterator[Finding]:
    socket_units = {
        a.value
        for unit in parse_units(ctx)
        if unit.path.suffix == ".socket"
        for a in unit.all("Socket", "ListenStream")
    }
    units = {u.path: u for u in _services(ctx)}
    for setup in gunicorn_setups(ctx):
        unit = units.get(setup.file)
        if setup.origin != "systemd" or unit is None:
            continue
        user = unit.value("Service", "User")
        if user in ("", "root", "0"):
            continue  # root can create it (and SYS002 already objects to root)
        runtime = {
            word for a in unit.all("Service", "RuntimeDirectory") for word in a.value.split()
        }
        for bind in setup.binds:
            if not bind.startswith("unix:") or bind[5:] in socket_units:
                continue
            path = PurePosixPath(bind[5:])
            run = next((r for r in ("/run", "/var/run") if path.is_relative_to(r)), None)
            if run is None:
                continue  # a socket elsewhere (e.g. in the app's folder) survives reboots
            folder = path.relative_to(run).parent.as_posix().removeprefix(".")
            if folder and any(folder == r or folder.startswith(f"{r}/") for r in runtime):
                continue
            file, line = setup.where("bind")
            what = f"the folder /run/{folder}" if folder else "/run itself"
            yield socket_folder.finding(
                f"gunicorn binds {path} as {user}, but nothing creates {what} at boot "
                + (
                    f"(add RuntimeDirectory={folder})"
                    if folder
                    else "(use /run/APP/ and RuntimeDirectory=APP)"
                ),
                file=ctx.relative(file),
                line=line,
            )


#: systemd 252's DefaultTimeoutStopSec (system.conf): a unit that sets no TimeoutStopSec=
#: (nor TimeoutSec=) is SIGKILLed this long after its stop began.
SYSTEMD_STOP_TIMEOUT = 90.0
#: gunicorn's own graceful_timeout default (seconds), when neither config nor flag sets it.
GUNICORN_GRACEFUL_TIMEOUT = 30
_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "": 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip


def timespan(text: str) -> float | None:
    """Seconds in a systemd time span ("90", "1min 30s", "500ms"; "infinity": inf);
    None when it is not one (systemd.time(7))."""
    text = text.strip().lower()
    if text == "infinity":
        return float("inf")
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if not parts or re.sub(r"[\d.\sa-z]", "", text):
        return None
    if any(unit not in _SPAN_UNITS for _, unit in parts):
        return None
    return sum(float(number) * _SPAN_UNITS[unit] for number, unit in parts)


@rule(
    "SYS012",
    layer="systemd",
    level=Level.WARNING,
    title="systemd kills the app before its graceful shutdown can end",
    help="Give the unit TimeoutStopSec= longer than gunicorn's graceful_timeout (the kit "
    "uses graceful_timeout + 10 s): on 'systemctl stop/restart' gunicorn lets its workers "
    "finish their requests for graceful_timeout, and systemd SIGKILLs whatever still runs "
    "after TimeoutStopSec (90 s in systemd 252 when unset).",
    example="TimeoutStopSec=10\nExecStart=/srv/app/.venv/bin/gunicorn --graceful-timeout 30 w:app",
    level_reason="warning: requests still running at a stop or restart are cut (a 502 "
    "each), on every deploy that restarts; nothing is exposed.",
)
def stop_before_graceful(ctx: Context) -> Iterator[Finding]:
    units = {u.path: u for u in _services(ctx)}
    for setup in gunicorn_setups(ctx):
        unit = units.get(setup.file)
        if setup.origin != "systemd" or unit is None:
            continue
        graceful = setup.get("graceful_timeout", GUNICORN_GRACEFUL_TIMEOUT)
        if not isinstance(graceful, int) or isinstance(graceful, bool):
            continue  # from a variable: not statically known
        key = next((k for k in ("TimeoutStopSec", "TimeoutSec") if unit.get("Service", k)), None)
        stop = timespan(unit.value("Service", key)) if key else SYSTEMD_STOP_TIMEOUT
        if stop is None or stop > graceful:
            continue
        where = ctx.relative(unit.path)
        said = f"{key}={unit.value('Service', key)}" if key else "systemd 252's default 90 s"
        yield stop_before_graceful.finding(
            f"{where} stops the app after {stop:g} s ({said}) but gunicorn gives its workers "
            f"{graceful} s (graceful_timeout) to finish: requests still running are SIGKILLed",
            file=where,
            line=_line(unit, key) if key else _line(unit, "ExecStart"),
        )


#: systemd 252's defaults for a service: UMask=0022, RuntimeDirectoryMode=0755.
SYSTEMD_UMASK = 0o022
RUNTIME_DIRECTORY_MODE = 0o755


def _mode(value: object) -> int | None:
    """A file mode or mask as written: 0o660, 432, "0660", "660", "0o660"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower().removeprefix("0o")
    try:
        return int(text, 8)
    except ValueError:
        return None


def _sockets(ctx: Context) -> Iterator[tuple[Unit, PurePosixPath, int, str, Path, int]]:
    """(unit, socket path, socket mode, why that mode, file, line) of every app server a
    systemd unit starts on a unix socket, the mode judged as it will be: gunicorn binds
    with its own umask (0 unless set: 0777), granian with --uds-permissions, else with
    the unit's UMask (0022 unless set: 0755)."""
    from flaskprod.check.parsers.granian import granian_setups

    units = {u.path: u for u in _services(ctx)}
    for setup in gunicorn_setups(ctx):
        unit = units.get(setup.file)
        if setup.origin != "systemd" or unit is None:
            continue
        umask = _mode(setup.get("umask", 0))
        if umask is None:
            continue
        said = (
            f"gunicorn's umask {umask:04o}" if "umask" in setup.settings else "gunicorn's umask 0"
        )
        for bind in setup.binds:
            if bind.startswith("unix:"):
                file, line = (
                    setup.where("umask") if "umask" in setup.settings else setup.where("bind")
                )
                yield unit, PurePosixPath(bind[5:]), 0o777 & ~umask, said, file, line
    for granian in granian_setups(ctx):
        unit = units.get(granian.file)
        uds = granian.setting("--uds")
        if granian.origin != "systemd" or unit is None or not isinstance(uds, str):
            continue
        given = granian.setting("--uds-permissions")
        if isinstance(given, str):
            mode, said = _mode(given), f"--uds-permissions {given}"
        else:
            written = unit.get("Service", "UMask")
            umask = _mode(written.value) if written else SYSTEMD_UMASK
            mode = None if umask is None else 0o777 & ~umask
            said = f"UMask={written.value}" if written else "systemd's default UMask=0022"
        if mode is not None:
            yield unit, PurePosixPath(uds), mode, said, granian.file, granian.line


@rule(
    "SYS013",
    layer="systemd",
    level=Level.ERROR,
    title="nginx can never connect to the app's unix socket",
    help="nginx runs as another user (www-data): it needs write permission on the socket "
    "and search permission on its folder, through the app's group (add nginx's user to "
    "Group=, socket 0660, RuntimeDirectoryMode=0750) or through everyone. gunicorn binds "
    "with its own umask (0: 0777 unless set); granian with --uds-permissions, else with "
    "the unit's UMask (systemd's default 0022 makes 0755: only the app's user can "
    "connect). The kit: --uds-permissions 0660, UMask=0007, RuntimeDirectoryMode=0750.",
    example="ExecStart=/srv/app/.venv/bin/granian --uds /run/app/granian.sock ...\n"
    "# no --uds-permissions, no UMask=: the socket is 0755",
    level_reason="error: every request through nginx is a 502 (connect() permission "
    "denied) until the modes change; when the group could connect, whether nginx is in "
    "that group is only seen on the server (check --host, HST004).",
)
def socket_unreachable(ctx: Context) -> Iterator[Finding]:
    for unit, path, mode, said, file, line in _sockets(ctx):
        runtime = {w for a in unit.all("Service", "RuntimeDirectory") for w in a.value.split()}
        folder_mode = None
        if path.parent.parent == PurePosixPath("/run") and path.parent.name in runtime:
            written = unit.get("Service", "RuntimeDirectoryMode")
            folder_mode = _mode(written.value) if written else RUNTIME_DIRECTORY_MODE
        reachable = [
            who
            for who, write, search in (("its group", 0o020, 0o010), ("others", 0o002, 0o001))
            if mode & write and (folder_mode is None or folder_mode & search)
        ]
        if reachable:
            continue
        folder = f", folder {folder_mode:04o}" if folder_mode is not None else ""
        yield socket_unreachable.finding(
            f"{path} will be mode {mode:04o} ({said}){folder}: only its owner can connect, "
            "and nginx runs as another user",
            file=ctx.relative(file),
            line=line,
        )
