"""`flaskprod deploy` provisions a fresh Debian host for the shop, for real: packages,
user, secrets made on the host, PostgreSQL, Redis, the env file, units, nginx, a
certificate from a real ACME server (Pebble, in the host's network), the firewall,
log rotation — and a second run changes nothing and says so.

One host is provisioned once for the module (the expensive part, ~1 min with a warm
package cache) — first interrupted by Ctrl-C half-way, then resumed; every test below
looks at it from a different side.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from flaskprod_cli import FLASKPROD
from shop_project import interrupt_after, shop_copy

from flaskprod.cli import cli
from flaskprod.lab import Lab, LabHost
from flaskprod.lab.pebble import Pebble


def deploy(project: Path, lab: Lab, *args: str) -> Result:
    """Provisioning only: the release has its own tests (a copy of the shop is no git
    checkout to ship a revision from)."""
    return CliRunner().invoke(
        cli,
        ["deploy", str(project), "--ssh-config", str(lab.ssh_config), "--provision-only", *args],
    )


@dataclass
class Provisioned:
    host: LabHost
    project: Path
    pebble: Pebble
    interrupted: subprocess.CompletedProcess[str]
    first: Result
    second: Result
    secrets_before: str

    def sha(self, path: str) -> str:
        return hashlib.sha256(self.host.run(["cat", path]).stdout.encode()).hexdigest()


@pytest.fixture(scope="module")
def provisioned(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    folder = tmp_path_factory.mktemp("provision")
    host = lab.boot("prov1")
    try:
        pebble = Pebble.start(host, folder / "pebble")
        project = shop_copy(
            folder,
            acme_directory=pebble.directory,
            acme_ca=str(pebble.ca_file),
            acme_email="ops@example.com",
        )
        argv = [FLASKPROD, "deploy", str(project), "--host", host.name, "--provision-only"]
        interrupted = interrupt_after(
            "secrets (generated on the host): changed",
            [*argv, "--ssh-config", str(lab.ssh_config)],
        )
        first = deploy(project, lab, "--host", host.name)
        assert first.exit_code == 0, first.output
        before = hashlib.sha256(host.run(["cat", "/etc/shop/secrets.env"]).stdout.encode())
        second = deploy(project, lab, "--host", host.name)
        assert second.exit_code == 0, second.output
        yield Provisioned(host, project, pebble, interrupted, first, second, before.hexdigest())
    finally:
        host.kill()


def test_an_interrupted_deploy_names_its_step_and_the_next_run_resumes(
    provisioned: Provisioned,
) -> None:
    stopped = provisioned.interrupted
    assert stopped.returncode == 7, stopped.stdout
    errors = [line for line in stopped.stdout.splitlines() if line.startswith("flaskprod: error:")]
    assert len(errors) == 1 and "Traceback" not in stopped.stdout, stopped.stdout
    assert re.match(r"flaskprod: error: prov1: [^:]+: interrupted \(", errors[0]), errors[0]
    assert "run the same deploy again to resume" in errors[0]
    # The next run finds the steps done before Ctrl-C done (the secrets kept) and does
    # the rest.
    out = provisioned.first.output
    for step in ("packages: ok", "app user and folders: ok", "secrets (generated on the host): ok"):
        assert step in out, out


def test_first_run_provisions_every_step_and_says_so(provisioned: Provisioned) -> None:
    out = provisioned.interrupted.stdout + provisioned.first.output
    for step in (
        "packages: changed",
        "app user and folders: changed",
        "secrets (generated on the host): changed",
        "PostgreSQL role and database: changed",
        "Redis (password, loopback, memory policy): changed",
        "env file: changed",
        "systemd units: changed",
        "first backup: changed",
        "nginx site (HTTP until a certificate): changed",
        "certificate (certbot, webroot): changed",
        "nginx site (HTTPS): changed",
        "firewall (ufw: SSH 22, 80, 443): changed",
    ):
        assert step in out, out
    assert re.search(r"prov1: provisioned: \d+ of \d+ steps changed", provisioned.first.output)


def test_second_run_changes_nothing_and_says_so(provisioned: Provisioned) -> None:
    out = provisioned.second.output
    assert "prov1: provisioned: no change" in out, out
    assert "changed" not in out.replace("no change", "")
    # Secrets are made once and kept.
    assert provisioned.sha("/etc/shop/secrets.env") == provisioned.secrets_before


def test_dry_run_lists_nothing_to_change_on_a_provisioned_host(
    provisioned: Provisioned, lab: Lab
) -> None:
    result = deploy(provisioned.project, lab, "--host", "prov1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"prov1: 0 of \d+ steps would change \(dry run, nothing changed", result.output
    )


def test_services_are_active_and_enabled(provisioned: Provisioned) -> None:
    units = ["nginx", "postgresql", "redis-server", "shop-backup.timer", "certbot.timer", "ufw"]
    host = provisioned.host
    assert host.run(["systemctl", "is-enabled", *units]).stdout.split() == ["enabled"] * 6
    active = host.run(["systemctl", "is-active", *units[:-1]]).stdout.split()
    assert active == ["active"] * 5


def test_http_redirects_and_https_serves_the_site_with_the_acme_certificate(
    provisioned: Provisioned,
) -> None:
    host = provisioned.host
    host.run("echo hello-media > /var/lib/shop/media/probe.txt")
    http_port, https_port = host.forward(80), host.forward(443)
    trusted = ssl.create_default_context(cadata=provisioned.pebble.issuing_roots())
    redirect = httpx.get(f"http://localhost:{http_port}/cart?x=1", timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "https://localhost/cart?x=1"
    # The ACME challenge stays on plain HTTP (certbot's webroot renewals need it).
    challenges = "/var/www/letsencrypt/.well-known/acme-challenge"
    host.run(f"mkdir -p {challenges} && echo token > {challenges}/t")
    challenge = httpx.get(f"http://localhost:{http_port}/.well-known/acme-challenge/t", timeout=10)
    assert (challenge.status_code, challenge.text) == (200, "token\n")
    # HTTPS through the host's nginx, verified against Pebble's root (not trusted blindly).
    page = httpx.get(f"https://localhost:{https_port}/media/probe.txt", verify=trusted, timeout=10)
    assert (page.status_code, page.text) == (200, "hello-media\n")
    assert page.headers["strict-transport-security"] == "max-age=63072000"


def test_renewal_dry_run_passes_and_a_renewal_reloads_nginx(provisioned: Provisioned) -> None:
    host = provisioned.host
    env = "REQUESTS_CA_BUNDLE=/etc/flaskprod/acme-ca.pem"
    # --no-random-sleep-on-renew: certbot otherwise waits up to 8 minutes without a tty.
    dry = host.run(f"{env} certbot renew --dry-run --no-random-sleep-on-renew", timeout=120)
    assert "all simulated renewals succeeded" in dry.stdout + dry.stderr
    # The timer's service trusts the private ACME server too.
    dropin = host.run(["systemctl", "show", "-p", "Environment", "certbot.service"]).stdout
    assert "REQUESTS_CA_BUNDLE=/etc/flaskprod/acme-ca.pem" in dropin
    https_port = host.forward(443)
    trusted = ssl.create_default_context(cadata=provisioned.pebble.issuing_roots())

    def served_serial() -> str:
        with (
            socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw,
            trusted.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()

    before = served_serial()
    host.run(f"{env} certbot renew --force-renewal --no-random-sleep-on-renew", timeout=120)
    # The deploy hook reloaded nginx: its new workers serve the new certificate (the
    # reload is graceful, so the old ones may answer for a moment).
    deadline = time.monotonic() + 10
    while served_serial() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served_serial() != before


def test_secrets_never_leave_the_host_and_protect_each_service(provisioned: Provisioned) -> None:
    host = provisioned.host
    secrets = dict(
        line.split("=", 1)
        for line in host.run(["cat", "/etc/shop/secrets.env"]).stdout.splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert set(secrets) == {"SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD"}
    for value in secrets.values():
        assert len(value) >= 40
        assert value not in provisioned.first.output + provisioned.second.output
    modes = host.run("stat -c '%a %U %G' /etc/shop/secrets.env /etc/shop/shop.env").stdout
    assert modes.splitlines() == ["600 root root", "600 root shop"]
    env = host.run(["cat", "/etc/shop/shop.env"]).stdout
    assert f"SECRET_KEY={secrets['SECRET_KEY']}\n" in env
    assert "MEDIA_ROOT=/var/lib/shop/media\n" in env
    # PostgreSQL: the app's role logs in with its password, and is nothing more.
    powers = "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = 'shop'"
    psql = "psql -h 127.0.0.1 -U shop -d shop -tAc"
    login = host.run(f'PGPASSWORD={secrets["DB_PASSWORD"]} {psql} "{powers}"')
    assert login.stdout.strip() == "f|f|f"
    wrong = host.run(
        "PGPASSWORD=wrong psql -h 127.0.0.1 -U shop -d shop -c 'select 1'", check=False
    )
    assert wrong.returncode != 0
    # Redis: a password, loopback only, the spec's memory policy.
    assert "NOAUTH" in host.run("redis-cli ping").stdout
    cli_auth = f"REDISCLI_AUTH={secrets['REDIS_PASSWORD']} redis-cli"
    assert host.run(f"{cli_auth} ping").stdout.strip() == "PONG"
    assert host.run(f"{cli_auth} config get bind").stdout.split()[1:] == ["127.0.0.1", "-::1"]
    policy = host.run(f"{cli_auth} config get maxmemory-policy").stdout.split()
    # The shop's queue (its RQ worker) keeps jobs in Redis: never evicted, persisted.
    assert policy == ["maxmemory-policy", "noeviction"]
    persisted = host.run(f"{cli_auth} config get appendonly").stdout.split()
    assert persisted == ["appendonly", "yes"]


def test_layout_firewall_and_logs(provisioned: Provisioned) -> None:
    host = provisioned.host
    assert "shop" in host.run(["id", "-nG", "www-data"]).stdout.split()
    assert host.run("test -e /etc/nginx/sites-enabled/default", check=False).returncode == 1
    owners = host.run(
        "stat -c '%n %a %U %G' /srv/shop /var/lib/shop/media /var/log/shop /var/backups/shop"
    ).stdout.splitlines()
    assert owners == [
        "/srv/shop 755 root shop",
        "/var/lib/shop/media 750 shop shop",
        "/var/log/shop 750 shop shop",
        "/var/backups/shop 700 shop shop",
    ]
    status = host.run(["ufw", "status"]).stdout
    assert "Status: active" in status
    for rule in ("22/tcp", "80/tcp", "443/tcp"):
        assert re.search(rf"^{rule} +ALLOW", status, re.MULTILINE), status
    # logrotate accepts its file (debug mode: parses, rotates nothing).
    host.run(["logrotate", "-d", "/etc/logrotate.d/shop"])
    journald = host.run(["systemd-analyze", "cat-config", "systemd/journald.conf"]).stdout
    assert "SystemMaxUse=500M" in journald


def test_host_checks_on_the_server_find_nothing_left_to_provision(
    provisioned: Provisioned, lab: Lab
) -> None:
    """``check --host`` run on the server: what remains is the app itself (started by
    the release, not by provisioning): its service, socket and the walk to it."""
    done = CliRunner().invoke(
        cli,
        [
            "check", str(provisioned.project), "--host", provisioned.host.name,
            "--ssh-config", str(lab.ssh_config), "--format", "json",
        ],
    )  # fmt: skip
    report = json.loads(done.stdout)
    serious = {
        (f["id"], f["message"])
        for f in report["findings"]
        if f["level"] in ("warning", "error", "critical")
    }
    app_not_released = {"HST003", "HST004", "HST020"}
    assert {finding_id for finding_id, _ in serious} <= app_not_released, serious
    assert all("shop" in message or "sock" in message for _, message in serious), serious
