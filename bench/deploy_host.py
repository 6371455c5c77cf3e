"""A lab host made ready for releases of the shop, and the shop as a git project —
shared by ``tests/deploy/test_ship_*.py`` and ``bench/deploy_phases.py``.

STAND-IN for provisioning (helper "provision" writes ``flaskprod deploy``'s real one):
the minimum a release needs, done over the same SSH connection: nginx, python3-venv,
PostgreSQL and Redis from apt; the app user and folders; the database role and the
Redis password and SECRET_KEY generated ON THE HOST; the env file; a certificate from
flaskprod's local CA at the spec's paths; the kit's slot unit and deploy's nginx site.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flaskprod.kit.artifacts import app_environment, env_file_value
from flaskprod.kit.deploy_site import deploy_site, upstream_line, upstream_path
from flaskprod.kit.render import render_kit
from flaskprod.spec.model import Spec

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop"
TOKEN = "deploy-demo-token-0123456789abcdef0123456789"  # noqa: S105 - a throwaway host
#: The app's secrets: generated on the host (below), never in the uploaded file.
SECRETS = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SENTRY_DSN"}

PREPARE = r"""
set -e
export DEBIAN_FRONTEND=noninteractive
packages="nginx python3-venv postgresql redis-server"
apt-get install -y -q $packages >/tmp/apt.log 2>&1 \
  || {{ apt-get update -q >/dev/null && apt-get install -y -q $packages >/tmp/apt.log 2>&1; }} \
  || {{ tail -20 /tmp/apt.log; exit 1; }}
id {user} >/dev/null 2>&1 || useradd --system --home-dir {root} --shell /usr/sbin/nologin {user}
usermod -aG {user} www-data
install -d -m 0755 {root} {root}/releases {root}/slots
install -d -o {user} -g {user} -m 0750 {media} {logs}
install -d -m 0755 {webroot} {certdir}
install -d -m 0755 {envdir}
if [ ! -f {env} ]; then
  gen() {{ python3 -c 'import secrets; print(secrets.token_hex(24))'; }}
  secret=$(gen); dbpass=$(gen); redispass=$(gen)
  runuser -u postgres -- psql -q -c "CREATE ROLE {db_user} LOGIN PASSWORD '$dbpass'"
  runuser -u postgres -- createdb -O {db_user} {db_name}
  printf 'requirepass %s\n' "$redispass" >> /etc/redis/redis.conf
  systemctl restart redis-server
  umask 077
  {{ cat {env}.base
     echo "SECRET_KEY=$secret"
     echo "DATABASE_URL=postgresql+psycopg://{db_user}:$dbpass@localhost:5432/{db_name}"
     echo "REDIS_URL=redis://:$redispass@localhost:6379/0"; }} > {env}
fi
rm -f /etc/nginx/sites-enabled/default
ln -sfn /etc/nginx/sites-available/{name}.conf /etc/nginx/sites-enabled/{name}.conf
[ -f {include} ] || cp {include}.initial {include}
systemctl daemon-reload
nginx -t -q
systemctl reload nginx
"""


def env_base(spec: Spec) -> str:
    """The env file's lines without the secrets (those are generated on the host)."""
    lines = [
        f"{var.name}={env_file_value(var.example)}"
        for var in app_environment(spec, redis=True)
        if var.name not in SECRETS and not var.unset
    ]
    # The shop reads its settings with the FLASKPROD_ prefix (as `up` gives it them):
    # the kit's env file has MEDIA_ROOT only (told to the lead: provisioning needs it).
    lines.append(f"FLASKPROD_MEDIA_ROOT={spec.media_dir}")
    return "\n".join(lines) + "\n"


def prepare_host(remote: Any, spec: Spec, tls_dir: Path) -> None:
    """Make a fresh lab host ready for releases of ``spec`` (idempotent)."""
    from flaskprod.stack.ca import ensure_ca

    name = spec.app.name
    ca = ensure_ca(tls_dir)
    kit = render_kit(spec)
    env = spec.resolve(spec.deploy.env_file)
    cert = spec.resolve(spec.tls.certificate)
    key = spec.resolve(spec.tls.certificate_key)
    remote.put(ca.server_cert.read_bytes(), cert)
    remote.put(ca.server_key.read_bytes(), key, mode="0600")
    remote.put(env_base(spec), f"{env}.base", mode="0600")
    unit = f"deploy/systemd/{name}@.service"
    remote.put(kit[unit], f"/etc/systemd/system/{name}@.service")
    remote.put(deploy_site(spec), f"/etc/nginx/sites-available/{name}.conf")
    include = upstream_path(spec)
    remote.put(upstream_line(spec, "a"), f"{include}.initial")
    script = PREPARE.format(
        user=spec.resolve(spec.deploy.user),
        root=spec.app.install_dir,
        media=spec.media_dir,
        logs=spec.resolve(spec.deploy.log_dir),
        webroot=spec.resolve(spec.tls.acme_webroot),
        certdir=Path(cert).parent,
        envdir=Path(env).parent,
        env=env,
        db_user=spec.resolve(spec.database.user),
        db_name=spec.resolve(spec.database.name),
        name=name,
        include=include,
    )
    result = remote.run(script, step="prepare the host", check=False, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"preparing the host failed:\n{result.stdout}\n{result.stderr}")


# -- the shop as a git project whose revisions a test commits -------------------------------


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        [
            "git",
            "-C",
            str(cwd),
            "-c",
            "user.name=flaskprod",
            "-c",
            "user.email=t@example.com",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def shop_repository(folder: Path) -> Path:
    """A copy of the shop in a git repository of its own, committed."""
    project = folder / "shop"
    shutil.copytree(
        SHOP, project, ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__")
    )
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "the shop")
    return project


def commit_change(project: Path, path: str, text: str, message: str) -> str:
    """Write ``text`` to ``path`` in the project, commit, return the new revision."""
    target = project / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "-qm", message)
    return git(project, "rev-parse", "HEAD")


@dataclass
class HostShop:
    """The shop behind the host's nginx, reached through a forwarded loopback port —
    what bench.faults.load.Load needs of a stack (client, token, orders_by_key)."""

    remote: Any
    spec: Spec
    port: int
    ca: Path
    token: str = TOKEN

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def client(self, source: str | None = None, timeout: float = 10.0) -> httpx.Client:
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca))
        transport = httpx.HTTPTransport(verify=context, local_address=source)
        return httpx.Client(transport=transport, base_url=self.url, timeout=timeout)

    def orders_by_key(self, prefix: str) -> dict[str, list[int]]:
        db = self.spec.resolve(self.spec.database.name)
        # psql's variable, quoted by psql itself (:'prefix'), read from stdin
        query = "SELECT idempotency_key || ' ' || id FROM orders WHERE idempotency_key LIKE :'p'"
        result = self.remote.run(
            f"runuser -u postgres -- psql -At -d {db} -v p={prefix}%",
            step="orders",
            input=query + ";\n",
        )
        found: dict[str, list[int]] = {}
        for line in result.stdout.splitlines():
            key, _, order_id = line.partition(" ")
            if key:
                found.setdefault(key, []).append(int(order_id))
        return found
