"""Several hosts by role in the spec, and the nginx sites derived for them — no host
needed: the spec's one-line errors, the topology, and the balancer's and an app host's
sites accepted by the real ``nginx -t`` (also both in one nginx: balancer = web1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flaskprod.deploy import hostfiles
from flaskprod.deploy.roles import (
    APP,
    BALANCER,
    DATABASE,
    REDIS,
    STORAGE,
    Placement,
    Topology,
    is_private,
)
from flaskprod.errors import ExitCode, SpecError
from flaskprod.kit.balancer_site import app_host_site, app_hosts_upstream, balancer_site
from flaskprod.spec.load import parse_spec
from flaskprod.spec.model import Spec

APP_TOML = '[app]\ntarget = "shop:create_app()"\nname = "shop"\n'
ROLES = '[deploy]\nhosts = ["web1", "web2"]\n[deploy.balancer]\nhost = "lb"\n'
ROLES += '[deploy.database]\nhost = "db1"\n'


def spec_of(text: str) -> Spec:
    return parse_spec(APP_TOML + text)


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        spec_of(text)
    assert caught.value.exit_code == ExitCode.USAGE
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[deploy]\nhosts = ["web1"]\n[deploy.balancer]\nhost = "lb"\n',
            "flaskprod.toml: deploy.balancer: [deploy.balancer] and [deploy.database] "
            "go together (several app hosts need one entry and one shared database); set "
            "both, or neither for one server",
        ),
        (
            '[deploy]\nhosts = ["web1", "db1"]\n[deploy.balancer]\nhost = "lb"\n'
            '[deploy.database]\nhost = "db1"\n',
            "flaskprod.toml: deploy.database.host: db1 is also an app host "
            "(deploy.hosts); the database and Redis get hosts of their own",
        ),
        (
            ROLES + '[deploy.redis]\nhost = "lb"\n',
            "flaskprod.toml: deploy.redis.host: lb is also the balancer, the public "
            "entry; the database and Redis stay on the private network",
        ),
        (
            ROLES + '[deploy.private]\nweb1 = "10.0.0.300"\n',
            "flaskprod.toml: deploy.private.web1: '10.0.0.300' is not an IP address",
        ),
        (
            ROLES + '[deploy.private]\nweb3 = "10.0.0.3"\n',
            "flaskprod.toml: deploy.private.web3: not a host of [deploy] hosts, "
            "balancer, database, redis or storage",
        ),
        (
            ROLES + '[deploy.storage]\nhost = "lb"\n',
            "flaskprod.toml: deploy.storage: the storage host serves an S3 bucket; set "
            'storage.kind = "s3" (uploads shared by every app host), or remove '
            "[deploy.storage]",
        ),
        (
            ROLES + '[deploy.storage]\nhost = "db1"\n[storage]\nkind = "s3"\n',
            "flaskprod.toml: deploy.storage.host: db1 is the database host; the backups "
            "are copied to the storage host to survive the database host: name an app "
            "host, the balancer or a host of its own",
        ),
        (
            ROLES + '[storage]\nkind = "s3"\n',
            "flaskprod.toml: storage.endpoint: http://127.0.0.1:8333 is each app host's own "
            'loopback; name the host that runs the bucket ([deploy.storage] host = "...") '
            "or an S3 API every app host reaches",
        ),
        (
            '[deploy.storage]\nhost = "lb"\n[storage]\nkind = "s3"\n',
            "flaskprod.toml: deploy.storage: needs [deploy.database] (several hosts)",
        ),
        (
            ROLES + '[deploy.balancer.tls]\nmode = "own"\n',
            "flaskprod.toml: deploy.balancer.tls: unknown key (expected one of: host)",
        ),
        (
            ROLES + '[database]\nengine = "sqlite"\n',
            "flaskprod.toml: deploy.database: a database host is provisioned for PostgreSQL "
            "only (database.engine = 'sqlite')",
        ),
    ],
)
def test_each_bad_role_gives_one_line_naming_the_key(toml: str, message: str) -> None:
    assert error_of(toml) == message


def test_no_balancer_and_no_database_host_is_one_server() -> None:
    assert Topology.of(spec_of('[deploy]\nhosts = ["web1", "web2"]\n')) is None


def test_the_roles_of_each_host_and_the_balancer_may_be_an_app_host() -> None:
    topology = Topology.of(spec_of(ROLES.replace('host = "lb"', 'host = "web1"')))
    assert topology is not None
    assert topology.hosts == ["db1", "web1", "web2"]
    assert topology.roles("web1") == {APP, BALANCER}
    assert topology.roles("db1") == {DATABASE, REDIS}
    assert topology.roles("web2") == {APP}


STORAGE_ROLE = '[deploy.storage]\nhost = "lb"\n[storage]\nkind = "s3"\n'


def test_the_storage_host_serves_every_host_at_its_private_address() -> None:
    spec = spec_of(ROLES + STORAGE_ROLE)
    topology = Topology.of(spec)
    assert topology is not None
    assert topology.hosts == ["db1", "web1", "web2", "lb"]
    assert topology.roles("lb") == {BALANCER, STORAGE}
    addresses = {"lb": "10.0.0.10", "web1": "10.0.0.11", "web2": "10.0.0.12", "db1": "10.0.0.13"}
    placement = Placement(topology, addresses)
    # its clients: the app hosts (uploads) and the database host (backups); lb is itself
    assert placement.clients_of_storage() == ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
    placed = placement.placed_spec(spec)
    assert placed.storage.endpoint == "http://10.0.0.10:8333"
    assert spec.storage.endpoint == "http://127.0.0.1:8333"  # the project's, for up
    env = hostfiles.env_template(placed, "10.0.0.13", "10.0.0.13")
    assert "AWS_ENDPOINT_URL_S3=http://10.0.0.10:8333" in env
    assert "AWS_ACCESS_KEY_ID={{secret:AWS_ACCESS_KEY_ID}}" in env
    assert "AWS_SECRET_ACCESS_KEY={{secret:AWS_SECRET_ACCESS_KEY}}" in env
    assert hostfiles.secret_names(spec)[-2:] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    # the media location of the balancer streams from the storage host
    assert "proxy_pass http://10.0.0.10:8333/shop-media/;" in balancer_site(placed)


def test_an_s3_elsewhere_is_the_operators_and_one_server_runs_its_own() -> None:
    elsewhere = spec_of(ROLES + '[storage]\nkind = "s3"\nendpoint = "https://s3.example.net"\n')
    assert not hostfiles.provisions_storage(elsewhere)  # keys filled in by hand
    env = hostfiles.env_template(elsewhere)
    assert "AWS_ACCESS_KEY_ID={{keep:AWS_ACCESS_KEY_ID}}" in env
    one_server = spec_of('[storage]\nkind = "s3"\n')
    assert hostfiles.provisions_storage(one_server)  # SeaweedFS beside the app
    assert not hostfiles.provisions_storage(spec_of(ROLES))  # uploads on each host


def test_private_addresses_are_rfc1918_or_ula() -> None:
    assert all(map(is_private, ["10.1.2.3", "172.20.0.1", "192.168.1.1", "fd00::5"]))
    assert not any(map(is_private, ["8.8.8.8", "172.32.0.1", "2001:db8::1", "100.64.0.1"]))


def test_app_hosts_reach_the_database_host_by_its_private_address() -> None:
    spec = spec_of(ROLES)
    env = hostfiles.env_template(spec, "10.77.0.13", "10.77.0.13")
    assert (
        "DATABASE_URL=postgresql+psycopg://shop:{{secret:DB_PASSWORD}}@10.77.0.13:5432/shop" in env
    )
    assert "REDIS_URL=redis://:{{secret:REDIS_PASSWORD}}@10.77.0.13:6379/0" in env
    hba = hostfiles.pg_hba_lines(spec, ["10.77.0.11", "fd00::12"])
    assert hba.splitlines() == [
        "host shop shop 10.77.0.11/32 scram-sha-256",
        "host shop shop fd00::12/128 scram-sha-256",
    ]
    assert "bind 127.0.0.1 -::1 10.77.0.13\n" in hostfiles.redis_template(spec, "10.77.0.13")


def _nginx_t(tmp_path: Path, sites: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` of these sites in one nginx, paths mapped into ``tmp_path``."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is missing: apt-get install nginx (make setup)", pytrace=False)
    prefix = tmp_path / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "log", "cache", "etc"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    includes = []
    for name, text in sites.items():
        text = text.replace("/etc/nginx/", f"{prefix}/etc/").replace(
            "/var/log/shop", f"{prefix}/log"
        )
        text = text.replace("/var/lib/nginx/", f"{prefix}/cache/")
        path = prefix / f"{name}.conf"
        path.write_text(text)
        includes.append(f"include {path};")
    (prefix / "etc" / "shop-upstream.conf").write_text("server unix:/run/shop-a/granian.sock;\n")
    (prefix / "etc" / "shop-app-hosts.conf").write_text(
        app_hosts_upstream(["10.77.0.11", "10.77.0.12"], down=("10.77.0.12",))
    )
    conf = prefix / "nginx.conf"
    temp = "".join(
        f"{k}_temp_path {prefix}/{k.split('_')[0]};"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    temp = temp.replace(f"{prefix}/client;", f"{prefix}/body;")
    conf.write_text(
        f"pid {prefix}/nginx.pid; error_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{ {temp} {' '.join(includes)} }}\n"
    )
    return subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_balancer_and_an_app_host_sites_pass_nginx_t_alone_and_together(
    tmp_path: Path,
) -> None:
    spec = spec_of(ROLES)
    balancer = balancer_site(spec)
    app = app_host_site(spec, "10.77.0.11", "10.77.0.10")
    # the balancer: every request proxied to the app hosts, retried only when safe
    assert "include /etc/nginx/shop-app-hosts.conf;" in balancer
    assert "proxy_next_upstream error timeout http_502 http_504;" in balancer
    assert "non_idempotent" not in balancer and "alias " not in balancer
    # an app host: HTTP on its private address, the client's address from the balancer
    assert "listen 10.77.0.11:80 default_server;" in app and "ssl" not in app
    assert "set_real_ip_from 10.77.0.10;" in app
    assert "proxy_cache" not in app and "Strict-Transport-Security" not in app
    certificate = tmp_path / "cert"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", f"{certificate}.key", "-out", f"{certificate}.pem", "-days", "2"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    balancer = balancer.replace(spec.resolve(spec.tls.certificate), f"{certificate}.pem")
    balancer = balancer.replace(spec.resolve(spec.tls.certificate_key), f"{certificate}.key")
    # nginx -t binds the addresses: the app host's own here is a loopback one, beside
    # the balancer's wildcard :80 in the same nginx (balancer = an app host)
    app = app_host_site(spec, "127.0.0.2", "10.77.0.10")
    for sites in ({"balancer": balancer}, {"app": app}, {"balancer": balancer, "app": app}):
        done = _nginx_t(tmp_path / "-".join(sites), sites)
        assert done.returncode == 0, (list(sites), done.stderr)
