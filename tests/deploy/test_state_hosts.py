"""The deploy steps that make app hosts stateless and the database tier scale, on one
real Debian host: SeaweedFS with its S3 gateway (deploy/seaweedfs_host.py) and
PgBouncer in front of PostgreSQL (deploy/pgbouncer_host.py). Each is provisioned, then
provisioned again (nothing changes), then used as the app would use it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from flaskprod.deploy.engine import Engine
from flaskprod.deploy.pgbouncer_host import PgBouncerHost, provision_pgbouncer
from flaskprod.deploy.remote import Remote
from flaskprod.deploy.seaweedfs_host import S3_PORT, SeaweedFSHost, provision_seaweedfs
from flaskprod.lab import Lab, LabHost
from flaskprod.runtime.storage import s3_client
from flaskprod.stack.seaweedfs import S3Credentials

POOL = 3


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    booted = lab.boot("state1")
    try:
        yield booted
    finally:
        booted.kill()


@pytest.fixture(scope="module")
def engine(lab: Lab, host: LabHost) -> Iterator[Engine]:
    with Remote(host.name, ssh_config=lab.ssh_config) as remote:
        engine = Engine(remote)
        try:
            yield engine
        finally:
            engine.close()


def test_seaweedfs_on_a_host_serves_the_bucket_to_the_app_and_reads_to_anyone(
    host: LabHost, engine: Engine
) -> None:
    keys = S3Credentials("AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    settings = SeaweedFSHost(bucket="shop-media", credentials=keys)
    first = provision_seaweedfs(engine, settings)
    assert first.changed, first
    again = provision_seaweedfs(engine, settings)
    assert not again.changed, again.details
    assert host.run("systemctl is-active seaweedfs").stdout.strip() == "active"
    assert host.run("stat -c %U:%a /var/lib/seaweedfs").stdout.strip() == "seaweedfs:700"
    assert (
        host.run("stat -c %U:%G:%a /etc/seaweedfs/s3.json").stdout.strip() == "root:seaweedfs:640"
    )
    local = [line.split()[3] for line in host.run("ss -ltnH").stdout.splitlines()]
    assert f"127.0.0.1:{S3_PORT}" in local
    # every part bound to the one address given (sshd is the lab's)
    assert all(a.startswith("127.0.0.1:") or a.endswith(":22") for a in local), local
    port = host.forward(S3_PORT)
    s3 = s3_client(
        {
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": keys.access_key,
            "AWS_SECRET_ACCESS_KEY": keys.secret_key,
        }
    )
    s3.put_object(Bucket="shop-media", Key="a.png", Body=b"\x89PNG-bytes", ContentType="image/png")
    assert s3.get_object(Bucket="shop-media", Key="a.png")["Body"].read() == b"\x89PNG-bytes"
    public = f"http://127.0.0.1:{port}/shop-media"
    assert httpx.get(f"{public}/a.png").content == b"\x89PNG-bytes"
    assert httpx.get(f"{public}?list-type=2").status_code == 403
    assert httpx.put(f"{public}/b.png", content=b"x").status_code == 403


def test_pgbouncer_beside_postgresql_pools_the_app_s_connections(
    host: LabHost, engine: Engine
) -> None:
    password = secrets.token_urlsafe(24)
    host.run(
        "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
        "apt-get install -y -q --no-install-recommends postgresql >/dev/null",
        timeout=600,
    )
    host.run(
        "runuser -u postgres -- psql -Xq -c \"CREATE ROLE shop LOGIN PASSWORD '"
        + password
        + "'\" -c 'CREATE DATABASE shop OWNER shop'"
    )
    settings = PgBouncerHost(database="shop", user="shop", pool_size=POOL, max_clients=100)
    first = provision_pgbouncer(engine, settings)
    assert first.changed
    again = provision_pgbouncer(engine, settings)
    assert not again.changed, again.details
    userlist = host.run("cat /etc/pgbouncer/userlist.txt").stdout
    assert userlist.startswith('"shop" "SCRAM-SHA-256$') and password not in userlist
    psql = f"PGPASSWORD={password} psql -XAtq -h 127.0.0.1 -p 6432 -U shop shop"
    assert host.run(f"{psql} -c 'SHOW statement_timeout'").stdout.strip() == "30s"
    wrong = host.run(f"PGPASSWORD=wrong {psql.split(' ', 1)[1]} -c 'SELECT 1'", check=False)
    assert wrong.returncode != 0 and "authentication failed" in wrong.stderr
    # 10 clients sleeping at once: PostgreSQL sees at most the pool
    count = (
        'runuser -u postgres -- psql -XAtq -c "SELECT count(*) FROM pg_stat_activity '
        "WHERE datname = 'shop' AND backend_type = 'client backend'\" > /tmp/seen"
    )
    host.run(
        f"for i in $(seq 10); do {psql} -c 'SELECT pg_sleep(1)' & done; sleep 0.5; {count}; wait"
    )
    seen = int(host.run("cat /tmp/seen").stdout)
    print(f"10 clients through PgBouncer on the host: PostgreSQL saw {seen} (pool {POOL})")
    assert 1 <= seen <= POOL
