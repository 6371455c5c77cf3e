"""The server's own files that the kit does not render, derived from the spec.

Pure functions (text in, text out): the env file and Redis config as templates whose
secrets the server fills in itself (:mod:`flaskprod.deploy.hostside`), logrotate,
journald retention, certbot's renewal hook, and the HTTP-only variant of the kit's
nginx site (served until a certificate exists).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import crossplane

from flaskprod.kit.artifacts import app_environment, env_file_value, sqlite_path
from flaskprod.spec.mariadb import CHARSET as MARIADB_CHARSET
from flaskprod.spec.mariadb import PORT as MARIADB_PORT
from flaskprod.spec.model import Spec
from flaskprod.spec.pgbouncer import PORT as PGBOUNCER_PORT

#: Secrets generated on the server (hostside.py secrets), by what they protect.
SECRET_KEY = "SECRET_KEY"  # noqa: S105 - the name of a secret, not one
DB_PASSWORD = "DB_PASSWORD"  # noqa: S105
REDIS_PASSWORD = "REDIS_PASSWORD"  # noqa: S105
#: The app's key pair on the object store (boto3's own variable names).
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

Directive = dict[str, Any]


def provisions_storage(spec: Spec) -> bool:
    """Whether the deploy runs the uploads' object store (SeaweedFS): on the storage host
    of several (``[deploy.storage]``), or beside the app on one server whose
    storage.endpoint is its own loopback. Else uploads are local, or an S3 elsewhere
    whose keys the operator fills in."""
    if spec.storage.kind != "s3":
        return False
    if spec.deploy.database is not None:
        return spec.deploy.storage is not None
    return spec.storage.on_loopback


def secret_names(spec: Spec) -> list[str]:
    several = spec.deploy.database is not None  # PostgreSQL and Redis on a host of theirs
    names = [SECRET_KEY]
    if spec.database.server_engine and (spec.database.local or several):  # PostgreSQL, MariaDB
        names.append(DB_PASSWORD)
    if spec.redis.enabled and (spec.redis.local or several):
        names.append(REDIS_PASSWORD)
    if provisions_storage(spec):
        names += S3_KEYS
    return names


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def env_template(
    spec: Spec, database_host: str = "localhost", redis_host: str = "localhost"
) -> str:
    """The env file with ``{{secret:NAME}}`` where the server puts its secrets and
    ``{{keep:NAME}}`` for values only the server has (filled in there by hand).
    ``database_host``/``redis_host``: where an app host of several reaches them (the
    database host's private address)."""
    db_user = spec.resolve(spec.database.user)
    db_name = spec.resolve(spec.database.name)
    several = spec.deploy.database is not None  # provisioned on a host of its own
    filled = {SECRET_KEY: "{{secret:SECRET_KEY}}"}
    if spec.database.engine == "postgresql" and (spec.database.local or several):
        # through PgBouncer beside PostgreSQL when database.pgbouncer (pgbouncer_host.py)
        port = PGBOUNCER_PORT if spec.database.pgbouncer else 5432
        filled["DATABASE_URL"] = (
            f"postgresql+{spec.database.driver}://{db_user}:{{{{secret:{DB_PASSWORD}}}}}"
            f"@{_url_host(database_host)}:{port}/{db_name}"
        )
    if spec.database.is_mysql and spec.database.local:
        # 127.0.0.1: the app's MariaDB user is of the loopback address (skip-name-resolve)
        filled["DATABASE_URL"] = (
            f"{spec.database.scheme}://{db_user}:{{{{secret:{DB_PASSWORD}}}}}"
            f"@127.0.0.1:{MARIADB_PORT}/{db_name}?charset={MARIADB_CHARSET}"
        )
    if spec.database.engine == "sqlite":
        filled["DATABASE_URL"] = f"sqlite:///{sqlite_path(spec)}"
    if spec.redis.enabled and (spec.redis.local or several):
        filled["REDIS_URL"] = (
            f"redis://:{{{{secret:{REDIS_PASSWORD}}}}}@{_url_host(redis_host)}:6379/0"
        )
    if provisions_storage(spec):  # the endpoint is the spec's (the storage host's, placed)
        filled |= {name: f"{{{{secret:{name}}}}}" for name in S3_KEYS}
    lines = [
        f"# Environment of {spec.app.name}, written by 'flaskprod deploy' from flaskprod.toml.",
        "# Secrets were generated on this server and are kept across deploys. A setting",
        "# left commented out below can be filled in here by hand: deploys keep it.",
    ]
    for var in app_environment(spec, redis=spec.redis.enabled):
        lines.append(f"# {var.comment}")
        if var.name in filled:
            lines.append(f"{var.name}={filled[var.name]}")
        elif var.secret or var.unset or var.required or not var.example:
            lines.append(f"{var.name}={{{{keep:{var.name}}}}}")
        else:
            lines.append(f"{var.name}={env_file_value(var.example)}")
    return "\n".join(lines) + "\n"


def redis_template(spec: Spec, private_address: str | None = None) -> str:
    """Included at the end of Debian's redis.conf (last value wins). ``private_address``:
    also bound there, for the app hosts (the password and the firewall guard it)."""
    bind = "127.0.0.1 -::1" + (f" {private_address}" if private_address else "")
    return (
        f"# Written by 'flaskprod deploy' for {spec.app.name} (included by redis.conf).\n"
        f"bind {bind}\n"
        "protected-mode yes\n"
        f"requirepass {{{{secret:{REDIS_PASSWORD}}}}}\n"
        f"maxmemory {spec.redis.maxmemory}\n"
        f"maxmemory-policy {spec.redis.maxmemory_policy}\n"
        + (
            # a queue keeps its jobs here: they survive a restart (append-only file)
            "appendonly yes\nappendfsync everysec\n" if spec.queue_processes else ""
        )
    )


def postgres_listen_conf(spec: Spec, private_address: str) -> str:
    """PostgreSQL's conf.d drop-in on a database host: loopback and the private address."""
    return (
        f"# Written by 'flaskprod deploy' for {spec.app.name}: the app hosts reach PostgreSQL\n"
        "# on the private network only (pg_hba.conf admits each of them by address).\n"
        f"listen_addresses = 'localhost,{private_address}'\n"
        "password_encryption = 'scram-sha-256'\n"
    )


def pg_hba_lines(spec: Spec, app_addresses: list[str]) -> str:
    """pg_hba.conf lines admitting the app hosts, each by its own address, to the app's
    database as the app's role only, with a scram-sha-256 password."""
    role, name = spec.resolve(spec.database.user), spec.resolve(spec.database.name)
    lines = []
    for address in app_addresses:
        mask = "128" if ":" in address else "32"
        lines.append(f"host {name} {role} {address}/{mask} scram-sha-256")
    return "\n".join(lines)


def logrotate_conf(spec: Spec) -> str:
    log_dir = spec.resolve(spec.deploy.log_dir).rstrip("/")
    return (
        f"# Written by 'flaskprod deploy': nginx's logs of {spec.app.name}.\n"
        f"{log_dir}/*.log {{\n"
        "    daily\n"
        "    rotate 14\n"
        "    missingok\n"
        "    notifempty\n"
        "    compress\n"
        "    delaycompress\n"
        "    sharedscripts\n"
        "    postrotate\n"
        "        invoke-rc.d nginx rotate >/dev/null 2>&1 || true\n"
        "    endscript\n"
        "}\n"
    )


JOURNALD_CONF = (
    "# Written by 'flaskprod deploy': keep the journal bounded.\n"
    "[Journal]\n"
    "SystemMaxUse=500M\n"
    "MaxRetentionSec=1month\n"
)

#: certbot runs this after every renewal (and the first certificate).
RELOAD_HOOK = "#!/bin/sh\n# Written by 'flaskprod deploy'.\nexec systemctl reload nginx\n"


def parse_site_text(text: str) -> list[Directive]:
    """A site's text parsed as :func:`parse_site` does (crossplane reads files)."""
    with tempfile.TemporaryDirectory(prefix="flaskprod-site-") as folder:
        path = Path(folder) / "site.conf"
        path.write_text(text)
        return parse_site(path)


def parse_site(path: Path) -> list[Directive]:
    payload = crossplane.parse(
        str(path), single=True, check_ctx=False, check_args=False, comments=False
    )
    config = payload["config"][0]
    if config["errors"]:
        error = config["errors"][0]
        raise ValueError(f"{path}:{error.get('line')}: {error['error']}")
    parsed: list[Directive] = config["parsed"]
    return parsed


def _listens(server: Directive) -> list[list[str]]:
    return [d["args"] for d in server["block"] if d["directive"] == "listen"]


def _is_tls(server: Directive) -> bool:
    return any("ssl" in args or args[0].endswith("443") for args in _listens(server))


def _without_tls(block: list[Directive]) -> list[Directive]:
    """``block`` without ssl_* directives and HSTS (meaningless over plain HTTP)."""
    kept = []
    for directive in block:
        if directive["directive"].startswith("ssl_"):
            continue
        args = directive.get("args", [])
        if directive["directive"] == "add_header" and args[0] == "Strict-Transport-Security":
            continue
        if "block" in directive:
            directive = {**directive, "block": _without_tls(directive["block"])}
        kept.append(directive)
    return kept


def http_only_site(parsed: list[Directive]) -> str:
    """The kit's site before a certificate exists: the app on port 80 beside the ACME
    challenge, nothing on 443 (``nginx -t`` would fail on the missing certificate)."""
    servers = [d for d in parsed if d["directive"] == "server"]
    app = next((s for s in servers if _is_tls(s) and "ssl_certificate" in str(s)), None)
    plain = next((s for s in servers if not _is_tls(s)), None)
    if app is None or plain is None:
        raise ValueError("the site has no HTTPS server and plain-HTTP server to derive from")
    acme = [
        d
        for d in plain["block"]
        if d["directive"] == "location" and "acme-challenge" in " ".join(d["args"])
    ]
    port80 = [d for d in plain["block"] if d["directive"] == "listen"]
    body = [d for d in _without_tls(app["block"]) if d["directive"] != "listen"]
    served = {"directive": "server", "args": [], "block": [*port80, *acme, *body]}
    out: list[Directive] = []
    for directive in parsed:
        if directive is plain:
            continue
        if directive is app:
            out.append(served)
        elif directive["directive"] == "server":  # the default server: port 80 only
            block = [
                d
                for d in _without_tls(directive["block"])
                if d["directive"] != "listen" or not _is_tls({"block": [d]})
            ]
            out.append({**directive, "block": block})
        else:
            out.append(directive)
    note = (
        "# Written by 'flaskprod deploy': the kit's site before its certificate exists\n"
        "# (plain HTTP, ACME challenge). Replaced by the kit's site once it does.\n"
    )
    built: str = crossplane.build(out)
    return note + built + "\n"
