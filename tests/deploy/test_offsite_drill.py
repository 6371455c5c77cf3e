"""A backup that survives its database host, proven on lab hosts (issue 14): host S runs
SeaweedFS (deploy/seaweedfs_host.py) on the lab's private network; host A is deployed
with the shop (app and database, uploads in S's bucket); A's scheduled backup
(shop-backup.service, the kit's backup.sh) is copied to S; A is destroyed; a fresh host
is deployed and restored from S — every table's checksum identical (ops' own). The app
hosts run the shop through PgBouncer (database.pgbouncer), as the single-host
provisioning sets it up.

Heavy (three hosts, two full deploys): one test proves the whole drill."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flaskprod.deploy.engine import Engine
from flaskprod.deploy.remote import Remote
from flaskprod.deploy.seaweedfs_host import S3_PORT, SeaweedFSHost, provision_seaweedfs
from flaskprod.lab import Lab, LabHost
from flaskprod.lab.pebble import Pebble
from flaskprod.ops import postgres as pg_ops
from flaskprod.ops.manifest import TableStats
from flaskprod.stack import process
from flaskprod.stack.seaweedfs import S3Credentials

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.deploy_host import HostShop, git, set_tls, shop_repository  # noqa: E402

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
STORE, FIRST, SECOND = "10.77.0.41", "10.77.0.42", "10.77.0.43"
RELAY_PORT = 18334


@pytest.fixture
def hosts(lab: Lab) -> Iterator[list[LabHost]]:
    booted: list[LabHost] = []
    yield booted
    for host in booted:
        host.kill()


def deploy(lab: Lab, project: Path, host: LabHost, *args: str) -> None:
    argv = [FLASKPROD, "deploy", str(project), "--host", host.name]
    argv += ["--ssh-config", str(lab.ssh_config), "--allow-dirty", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr  # live and host checks clean


def app_host(lab: Lab, hosts: list[LabHost], name: str, address: str, project: Path,
             folder: Path, keys: S3Credentials) -> LabHost:  # fmt: skip
    """A fresh host with the shop deployed, its env file given the S3 key pair (by hand,
    between provisioning and the release, as an operator does; deploys keep it)."""
    host = lab.boot(name, private_address=address)
    hosts.append(host)
    pebble = Pebble.start(host, folder / f"pebble-{name}")
    set_tls(project, acme_directory=pebble.directory, acme_ca=str(pebble.ca_file))
    deploy(lab, project, host, "--provision-only")
    env = "/etc/shop/shop.env"
    for variable, value in (
        ("AWS_ACCESS_KEY_ID", keys.access_key),
        ("AWS_SECRET_ACCESS_KEY", keys.secret_key),
    ):
        host.run(f"sed -i 's|^#\\? *{variable}=.*$|{variable}={value}|' {env}")
        assert host.run(f"grep -c '^{variable}={value}$' {env}").stdout.strip() == "1"
    roots = folder / f"roots-{name}.pem"
    roots.write_text(pebble.issuing_roots())
    check = ["--check-url", f"https://localhost:{host.forward(443)}/", "--check-ca", str(roots)]
    deploy(lab, project, host, "--release", f"flask seed --token {HostShop.token}", *check)
    return host


def database_url(host: LabHost) -> str:
    """The shop's database on ``host``, through a forwarded port, as the app's role."""
    secrets_env = host.run("cat /etc/shop/secrets.env").stdout
    password = next(
        line.split("=", 1)[1].strip().strip("'\"")
        for line in secrets_env.splitlines()
        if line.startswith("DB_PASSWORD=")
    )
    return f"postgresql://shop:{password}@127.0.0.1:{host.forward(5432)}/shop"


def gateway(store: LabHost, folder: Path) -> int:
    """A port of this machine reaching S's gateway, which listens on the private address
    only: a relay in S's network namespace (stopped with the host), forwarded here."""
    relay = process.start(
        [*store.nsenter(network_only=True), "socat",
         f"TCP-LISTEN:{RELAY_PORT},bind=127.0.0.1,reuseaddr,fork", f"TCP:{STORE}:{S3_PORT}"],
        name="s3-relay", log_path=folder / "relay.log", die_with_parent=True,
    )  # fmt: skip
    store._helpers.append(relay)  # stopped by pid with the host's own relays
    return store.forward(RELAY_PORT)


def checksums(url: str) -> dict[str, TableStats]:
    with psycopg.connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        return pg_ops.stats(conn)


@pytest.mark.timeout(1500)  # two full deploys on a shared 2-core machine
def test_a_backup_copied_to_the_storage_host_restores_onto_a_fresh_host(
    lab: Lab, hosts: list[LabHost], tmp_path: Path
) -> None:
    keys = S3Credentials("AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    store = lab.boot("store1", private_address=STORE)
    hosts.append(store)
    with Remote(store.name, ssh_config=lab.ssh_config) as remote:
        engine = Engine(remote)
        try:
            provision_seaweedfs(engine, SeaweedFSHost("shop-media", keys, listen=STORE))
        finally:
            engine.close()
    project = shop_repository(tmp_path, acme_email="ops@example.com")
    spec = project / "flaskprod.toml"
    storage = f'\n[storage]\nkind = "s3"\nendpoint = "http://{STORE}:{S3_PORT}"\n\n[tls]\n'
    # and the app through PgBouncer beside PostgreSQL (the backup still dumps PostgreSQL)
    text = spec.read_text().replace("\nlocal = true\n", "\nlocal = true\npgbouncer = true\n", 1)
    spec.write_text(text.replace("\n[tls]\n", storage, 1))
    rendered = subprocess.run([FLASKPROD, "render", str(project)], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    git(project, "add", "-A")
    git(project, "commit", "-qm", "uploads on the storage host")

    first = app_host(lab, hosts, "dba1", FIRST, project, tmp_path, keys)
    assert "@localhost:6432/shop" in first.run("grep ^DATABASE_URL= /etc/shop/shop.env").stdout
    assert first.run("systemctl is-active pgbouncer").stdout.strip() == "active"
    before = checksums(database_url(first))
    assert before["products"].rows >= 3 and before["users"].rows >= 1
    backup = first.run("systemctl start shop-backup.service && journalctl -u shop-backup -o cat")
    assert "backup: copied to s3://shop-media/backups/shop/ (2 files" in backup.stdout, (
        backup.stdout
    )
    first.kill()  # the database host is lost, its disk with it

    second = app_host(lab, hosts, "dba2", SECOND, project, tmp_path, keys)
    url = database_url(second)
    assert checksums(url) != before  # a fresh database: the seed's rows only
    s3 = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{gateway(store, tmp_path)}",
        "AWS_ACCESS_KEY_ID": keys.access_key,
        "AWS_SECRET_ACCESS_KEY": keys.secret_key,
        "MEDIA_BUCKET": "shop-media",
    }
    argv = [FLASKPROD, "restore", "--from-s3", "latest", "--database-url", url, "--yes"]
    argv += ["--project", str(project)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, check=False, env=_env(s3)
    )
    assert done.returncode == 0, done.stderr
    assert "sha256 matched" in done.stderr
    after = checksums(url)
    assert after == before, {t: (before.get(t), after.get(t)) for t in set(before) | set(after)}
    print(f"restored onto a fresh host from the storage host: {len(after)} tables identical")


def _env(extra: dict[str, str]) -> dict[str, Any]:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    return env | extra
