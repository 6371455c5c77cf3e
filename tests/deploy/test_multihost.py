"""The shop deployed to several lab hosts by role — a balancer that also runs the
uploads' object store (lb), two app hosts (web1, web2) and a database host (db1) on a
private bridge — by ``flaskprod deploy`` itself, then proven from outside: HTTPS through
the balancer only, uploads shared by both app hosts, least privilege between the hosts,
a rolling release under load losing nothing, a release failing on web2 stopping the
roll, the balancer's certificate renewed under load, an app host powered off under
load, and last the database host destroyed and a fresh one restored from the backup
its timer had copied to the storage host, every table identical.

One set of hosts for the module (booting and provisioning is the expensive part); the
tests run in order on it, each leaving the shop serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from flaskprod.deploy.remote import Remote
from flaskprod.deploy.roles import Placement, Topology
from flaskprod.deploy.several import connected, release_all
from flaskprod.deploy.ship import DeployFailed, host_releases
from flaskprod.errors import ExitCode
from flaskprod.lab import Lab, LabHost
from flaskprod.lab.pebble import Pebble
from flaskprod.ops import postgres as pg_ops
from flaskprod.ops.manifest import TableStats
from flaskprod.spec.load import load_spec
from flaskprod.spec.model import Spec
from flaskprod.stack import process

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is imported as a package from the checkout
    sys.path.insert(0, str(REPO))

from bench.deploy_host import HostShop, commit_change, git, shop_repository  # noqa: E402
from bench.faults.load import Load, LoadPlan, summarize, verify_orders  # noqa: E402
from bench.multihost import ADDRESSES, several_hosts  # noqa: E402

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
# the first test includes the module's deploy of four fresh hosts (minutes on a busy
# 2-core machine); every test is bounded anyway
pytestmark = pytest.mark.timeout(900)
SEED = f"flask seed --token {HostShop.token}"
VERSION_FILE = "shop/static/version.txt"
S3_RELAY_PORT = 18334


@dataclass
class Site:
    lab: Lab
    hosts: dict[str, LabHost]
    project: Path
    spec: Spec
    shop: HostShop
    pebble: Pebble
    lines: list[str] = field(default_factory=list)
    v2: str = ""  # the revision of the rolling release

    def placement(self) -> Placement:
        topology = Topology.of(self.spec)
        assert topology is not None
        return Placement(topology, dict(ADDRESSES))

    def roll(self) -> dict[str, float]:
        self.lines.clear()
        with connected(self.placement().topology, self.lab.ssh_config, False) as remotes:
            return release_all(
                self.placement(),
                remotes,
                spec=self.spec,
                project=self.project,
                echo=self.lines.append,
                allow_dirty=False,
                release_commands=(),
            )

    def version(self, host: str) -> str:
        """What the app host itself serves (through its own nginx, from the balancer)."""
        return self.on("lb", f"curl -s http://{ADDRESSES[host]}/static/version.txt").stdout

    def on(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return self.hosts[host].run(command, check=False, timeout=60)

    def load(self, prefix: str, seconds: float = 60, rate: float = 12) -> Load:
        plan = LoadPlan(
            rate=rate,
            duration=seconds,
            max_requests=int(rate * seconds) + 10,
            post_every=3,
            get_paths=("/", "/api/products"),
            threads=4,
        )
        return Load(self.shop, plan, prefix=f"{prefix}-{time.time_ns()}-").start()  # type: ignore[arg-type]


def through_pgbouncer(project: Path) -> None:
    """The app hosts reach PostgreSQL through PgBouncer on the database host."""
    spec = project / "flaskprod.toml"
    text = spec.read_text()
    spec.write_text(text.replace("\n[database]\n", "\n[database]\npgbouncer = true\n", 1))
    git(project, "commit", "-qam", "through PgBouncer")


def uploads_on_the_balancer(project: Path) -> None:
    """Uploads (and the backups copied off db1) in SeaweedFS's bucket on lb."""
    spec = project / "flaskprod.toml"
    text = spec.read_text().replace(
        "\n[tls]\n", '\n[storage]\nkind = "s3"\n\n[deploy.storage]\nhost = "lb"\n\n[tls]\n', 1
    )
    spec.write_text(text)
    rendered = subprocess.run([FLASKPROD, "render", str(project)], capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    git(project, "add", "-A")
    git(project, "commit", "-qm", "uploads in a bucket on lb")


@pytest.fixture(scope="module")
def site(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Four fresh hosts on the lab's private bridge, deployed to as a user does:
    ``flaskprod deploy`` provisions them by role in parallel (the balancer's certificate
    from Pebble), rolls the committed revision over the app hosts (seeding it once),
    checks the live site through the balancer, exits 0."""
    folder = tmp_path_factory.mktemp("multihost")
    hosts: dict[str, LabHost] = {}
    try:
        for name, address in ADDRESSES.items():
            # web2 and db1 on disks of their own: they go down and come back
            persistent = name in ("web2", "db1")
            hosts[name] = lab.boot(name, private_address=address, persistent=persistent)
        pebble = Pebble.start(hosts["lb"], folder / "pebble")
        project = shop_repository(
            folder,
            acme_directory=pebble.directory,
            acme_ca=str(pebble.ca_file),
            acme_email="ops@example.com",
        )
        several_hosts(project)
        through_pgbouncer(project)
        uploads_on_the_balancer(project)
        spec = load_spec(project / "flaskprod.toml")
        https = hosts["lb"].forward(443)
        roots = folder / "pebble-roots.pem"
        roots.write_text(pebble.issuing_roots())
        argv = [FLASKPROD, "deploy", str(project), "--ssh-config", str(lab.ssh_config)]
        argv += ["--release", SEED]
        argv += ["--check-url", f"https://localhost:{https}/", "--check-ca", str(roots)]
        began = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        print(f"deploy of 4 hosts: {time.monotonic() - began:.1f}s\n{done.stderr}")
        assert done.returncode == 0, done.stdout + done.stderr
        shop = HostShop(Remote("db1", ssh_config=lab.ssh_config), spec, https, roots)
        yield Site(lab, hosts, project, spec, shop, pebble, done.stderr.splitlines())
    finally:
        for host in hosts.values():
            host.kill()


def test_the_app_hosts_reach_postgresql_only_through_pgbouncer_on_the_database_host(
    site: Site,
) -> None:
    env = site.on("web1", "grep ^DATABASE_URL= /etc/shop/shop.env").stdout
    assert f"@{ADDRESSES['db1']}:6432/" in env
    with site.shop.client() as client:
        assert client.get("/api/products").status_code == 200
    # PostgreSQL's clients are PgBouncer's server connections (loopback), not app hosts
    sql = (
        "SELECT DISTINCT host(client_addr) FROM pg_stat_activity "
        "WHERE datname = 'shop' AND client_addr IS NOT NULL"
    )
    seen = site.on("db1", f'sudo -u postgres psql -Atc "{sql}"').stdout.split()
    assert seen == ["127.0.0.1"], seen
    listening = site.on("db1", "ss -Hltn 'sport = :6432'").stdout
    assert f"{ADDRESSES['db1']}:6432" in listening and "127.0.0.1:6432" in listening


def test_the_shop_is_served_over_https_through_the_balancer_by_both_app_hosts(
    site: Site,
) -> None:
    lines = site.lines
    assert any(line.startswith("check --url") and ": 0 critical, 0 error" in line for line in lines)
    # every host provisioned for its roles only, in parallel
    assert any(line.startswith("lb: provisioned (balancer, storage)") for line in lines), lines
    assert any(line.startswith("db1: provisioned (database, redis)") for line in lines), lines
    with site.shop.client() as client:
        home = client.get("/")
        assert home.status_code == 200 and "Espresso cup" in home.text
        assert home.headers["strict-transport-security"]
        assert client.get("/health/ready").status_code == 200
    # both app hosts serve, each through its own nginx on its private address
    for host in ("web1", "web2"):
        ready = site.on("lb", f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Host: localhost' "
                        f"http://{ADDRESSES[host]}/health/ready")  # fmt: skip
        assert ready.stdout == "200", (host, ready)
        entries = host_releases(Remote(host, ssh_config=site.lab.ssh_config), site.spec)
        assert [e.state for e in entries] == ["live"]
    # roles: no database on an app host, no app or nginx on the database host
    for host in ("web1", "web2", "lb"):
        assert site.on(host, "command -v psql || command -v redis-server").stdout == ""
    assert site.on("db1", "command -v nginx").returncode != 0
    assert site.on("lb", "test -e /srv/shop/releases").returncode != 0
    # the secrets were made once, on the database host: the app hosts share them
    secret = site.on("db1", "grep ^SECRET_KEY= /etc/shop/secrets.env").stdout
    assert secret and secret in site.on("web2", "cat /etc/shop/shop.env").stdout
    mode = site.on("web1", "stat -c '%a %U %G' /etc/shop/shop.env").stdout.strip()
    assert mode == "600 root shop"
    assert secret.partition("=")[2].strip() not in "\n".join(lines)


def test_uploads_live_in_the_bucket_on_lb_and_every_app_host_serves_them(site: Site) -> None:
    """The seed ran on web1 only (the release step) and put the demo images in the
    bucket on lb; web2 serves them too, through its own nginx, byte for byte."""
    with site.shop.client() as client:
        products = client.get("/api/products").json()
        urls = [p["image_url"] for p in products if p["image_url"]]
        assert len(urls) >= 3, products
        through_balancer = client.get(urls[0])
    assert through_balancer.status_code == 200
    assert through_balancer.headers["content-type"] == "image/png"
    assert "immutable" in through_balancer.headers["cache-control"]
    digest = hashlib.sha256(through_balancer.content).hexdigest()
    for host in ("web1", "web2"):
        fetched = site.on(
            "lb", f"curl -sf -H 'Host: localhost' http://{ADDRESSES[host]}{urls[0]} | sha256sum"
        )
        assert fetched.stdout.split()[0] == digest, (host, fetched)
    assert site.on("web2", "ls /srv/shop/media 2>/dev/null | wc -l").stdout.strip() in ("", "0")
    # the key pair made once on db1; lb keeps only it, never the database's password
    kept = site.on("lb", "cut -d= -f1 /etc/shop/secrets.env | grep -v '^#'").stdout.split()
    assert kept == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], kept
    key = site.on("db1", "grep ^AWS_ACCESS_KEY_ID= /etc/shop/secrets.env").stdout.strip()
    assert key and key in site.on("web2", "cat /etc/shop/shop.env").stdout
    assert (
        f"AWS_ENDPOINT_URL_S3=http://{ADDRESSES['lb']}:8333"
        in site.on("web1", "cat /etc/shop/shop.env").stdout
    )
    config = site.on("lb", "stat -c '%a %U %G' /etc/seaweedfs/s3.json").stdout.strip()
    assert config == "640 root seaweedfs"
    # anonymous clients read an object, never list the bucket
    listing = site.on("web1", f"curl -s -o /dev/null -w '%{{http_code}}' "
                      f"http://{ADDRESSES['lb']}:8333/shop-media")  # fmt: skip
    assert listing.stdout == "403", listing


def test_a_second_deploy_dry_run_finds_nothing_to_change_on_any_host(site: Site) -> None:
    argv = [FLASKPROD, "deploy", str(site.project), "--ssh-config", str(site.lab.ssh_config)]
    done = subprocess.run([*argv, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summaries = [line for line in done.stderr.splitlines() if ": provisioned (" in line]
    assert len(summaries) == 4 and all(s.endswith(")") for s in summaries), done.stderr
    assert all(": no change (" in line for line in summaries), summaries
    assert "out of the balancer" not in done.stderr  # a dry run releases nothing


def test_a_host_without_a_private_address_is_named_with_the_key_to_set(lab: Lab) -> None:
    from flaskprod.deploy.roles import discover_private_address
    from flaskprod.errors import DeployError

    host = lab.boot("nopriv")  # its own namespace: loopback only
    try:
        with (
            Remote(host.name, ssh_config=lab.ssh_config) as remote,
            pytest.raises(DeployError) as caught,
        ):
            discover_private_address(remote, host.name)
    finally:
        host.kill()
    assert caught.value.message == "nopriv: private address: no private (RFC 1918 / ULA) address"
    assert (
        caught.value.hint == 'set it in flaskprod.toml, under [deploy.private]: nopriv = "ADDRESS"'
    )
    assert caught.value.exit_code == ExitCode.DEPLOY


def _connects(site: Site, source: str, address: str, port: int) -> bool:
    probe = (
        "import socket, sys\n"
        "s = socket.socket(); s.settimeout(2)\n"
        f"sys.exit(s.connect_ex(('{address}', {port})))\n"
    )
    return site.on(source, f'python3 -c "{probe}"').returncode == 0


def test_each_host_opens_only_what_its_role_needs_to_the_hosts_that_need_it(site: Site) -> None:
    db, web1, web2 = ADDRESSES["db1"], ADDRESSES["web1"], ADDRESSES["web2"]
    assert _connects(site, "web1", db, 5432) and _connects(site, "web2", db, 5432)
    assert not _connects(site, "lb", db, 5432)
    assert _connects(site, "web1", db, 6379) and not _connects(site, "lb", db, 6379)
    assert _connects(site, "lb", web1, 80) and _connects(site, "lb", web2, 80)
    assert not _connects(site, "db1", web1, 80) and not _connects(site, "web2", web1, 80)
    # Redis answers nobody without the password
    ping = f"import socket; s = socket.create_connection(('{db}', 6379), 3); "
    ping += "s.sendall(b'PING\\r\\n'); print(s.recv(100).decode())"
    assert "NOAUTH" in site.on("web1", f'python3 -c "{ping}"').stdout
    # pg_hba admits the app hosts only, for the app's database and role, by password
    hba = site.on("db1", "cat /etc/postgresql/*/main/pg_hba.conf").stdout
    assert f"host shop shop {web1}/32 scram-sha-256" in hba
    listen = site.on("db1", "runuser -u postgres -- psql -Atc 'show listen_addresses'").stdout
    assert listen.strip() == f"localhost,{db}"
    # the balancer is the only public entry: 443 nowhere else
    assert site.on("web1", "ss -Hltn 'sport = :443'").stdout.strip() == ""
    # the object store on lb: its S3 gateway to the hosts that use it, nothing else of it
    lb = ADDRESSES["lb"]
    assert _connects(site, "web2", lb, 8333) and _connects(site, "db1", lb, 8333)
    for port in (9333, 8888, 8080):  # SeaweedFS's master, filer, volume server
        assert not _connects(site, "web1", lb, port), port
    # bound to the private address (SeaweedFS adds a loopback listener of its own), never
    # to every address
    bound = {
        line.split()[3] for line in site.on("lb", "ss -Hltn 'sport = :8333'").stdout.splitlines()
    }
    assert f"{lb}:8333" in bound and bound <= {f"{lb}:8333", "127.0.0.1:8333"}, bound


def test_check_hosts_finds_no_error_then_names_the_one_host_broken(site: Site) -> None:
    """The deploy ran the host checks on every host, each for its roles (exit 0: no
    error); ``check --hosts`` runs them again in parallel; PostgreSQL opened to anyone on
    db1 (``ufw allow 5432``) is an error of db1 only, in one JSON report, exit 1."""
    for host in ADDRESSES:
        assert any(
            line.startswith(f"check --host {host}: 0 critical, 0 error") for line in site.lines
        ), site.lines
    print(next(line for line in site.lines if line.startswith("host checks on 4 hosts in")))
    argv = [FLASKPROD, "check", str(site.project), "--hosts"]
    argv += ["--ssh-config", str(site.lab.ssh_config), "--fail-level", "error"]
    began = time.monotonic()
    clean = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    print(f"check --hosts: {time.monotonic() - began:.1f}s\n{clean.stdout}")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    for host in ADDRESSES:
        assert f"{host}: running the host checks" in clean.stderr
    assert site.on("db1", "ufw allow 5432").returncode == 0
    try:
        began = time.monotonic()
        broken = subprocess.run(
            [*argv, "--format", "json"], capture_output=True, text=True, timeout=300, check=False
        )
        print(f"check --hosts (db1 broken): {time.monotonic() - began:.1f}s")
    finally:
        site.on("db1", "ufw delete allow 5432")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    report = json.loads(broken.stdout)
    errors = [(f["host"], f["id"]) for f in report["findings"] if f["level"] == "error"]
    assert errors == [("db1", "HST013")], report["findings"]
    assert (
        "db1: ufw admits PostgreSQL (port 5432) from Anywhere" in report["findings"][0]["message"]
    )
    hosts = report["summary"]["hosts"]
    assert set(hosts) == set(ADDRESSES) and [h["exit_code"] for h in hosts.values()].count(1) == 1
    # each host ran its roles' rules only
    assert hosts["web1"]["rules_skipped"].get("HST015") == "role"
    assert hosts["db1"]["rules_skipped"].get("HST004") == "role"
    assert hosts["lb"]["rules_skipped"].get("HST012") == "role"


def test_a_rolling_release_under_load_fails_nothing_and_loses_no_order(site: Site) -> None:
    site.v2 = commit_change(site.project, VERSION_FILE, "v2\n", "v2")
    load = site.load("roll")
    try:
        load.wait_sent(20, timeout=20)
        load.mark("roll")
        seconds = site.roll()
        load.mark("rolled")
        load.wait_sent(load.sent() + 20, timeout=20)
    finally:
        record = load.stop()
    summary = summarize(record)
    orders = verify_orders(site.shop, record)  # type: ignore[arg-type]
    print("rolling release:", seconds, "load:", summary, "orders:", orders)
    assert summary["sent"] > 60, summary
    assert summary["failed_total_first_attempt"] == 0, summary
    assert orders["lost"] == 0 and orders["duplicated"] == 0 and orders["wrong_id"] == 0, orders
    assert orders["acknowledged"] > 10, orders
    assert site.version("web1") == site.version("web2") == "v2\n"
    # migrations once: on the first app host only
    migrated = [line for line in site.lines if "release step: flask db upgrade" in line]
    assert [line.split(":")[0] for line in migrated] == ["web1"], site.lines


def test_a_release_failing_on_web2_stops_the_roll_web1_keeps_the_new_one(site: Site) -> None:
    """Ready on web1, never ready on web2: the roll stops at web2, which goes back into
    the balancer on its old release; web1 keeps the new one (exit 7, one line)."""
    good = git(site.project, "rev-parse", "HEAD")
    wsgi = (site.project / "wsgi.py").read_text()
    broken = wsgi + (
        "\nimport socket, sys\n"
        "if socket.gethostname() == 'web2' and not sys.argv[0].endswith('flask'):\n"
        "    raise RuntimeError('boom: web2 cannot serve this revision')\n"
    )
    commit_change(site.project, "wsgi.py", broken, "breaks on web2")
    commit_change(site.project, VERSION_FILE, "v3\n", "v3")
    with pytest.raises(DeployFailed) as caught:
        site.roll()
    error = caught.value
    assert error.exit_code == ExitCode.DEPLOY
    assert str(error).startswith("web2: ready: "), str(error)
    assert "web1 run the new release, web2 the old one" in str(error)
    assert site.version("web1") == "v3\n" and site.version("web2") == "v2\n"
    # web2 is back in the balancer (no host marked down)
    include = site.on("lb", "cat /etc/nginx/shop-app-hosts.conf").stdout
    assert " down" not in include and ADDRESSES["web2"] in include
    with site.shop.client() as client:
        assert all(client.get("/health/ready").status_code == 200 for _ in range(6))
    # back to one release everywhere
    git(site.project, "reset", "-q", "--hard", good)
    commit_change(site.project, VERSION_FILE, "v4\n", "v4")
    site.roll()
    assert site.version("web1") == site.version("web2") == "v4\n"


def test_releases_and_rollback_through_the_cli_cover_every_app_host(site: Site) -> None:
    """``releases`` lists each app host's ledger; ``rollback --to`` rolls every app host
    back (one at a time, out of the balancer) to the release of that id."""
    cli = [FLASKPROD, "releases", str(site.project), "--ssh-config", str(site.lab.ssh_config)]
    listed = subprocess.run(cli, capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "web1:" in listed.stdout and "web2:" in listed.stdout
    v2 = next(
        e.id
        for e in host_releases(Remote("web1", ssh_config=site.lab.ssh_config), site.spec)
        if e.state != "failed" and e.revision == site.v2
    )
    cli = [FLASKPROD, "rollback", str(site.project), "--ssh-config", str(site.lab.ssh_config)]
    done = subprocess.run(
        [*cli, "--to", v2], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        "web1: out of the balancer" in done.stdout and "web2: back in the balancer" in done.stdout
    )
    assert site.version("web1") == site.version("web2") == "v2\n"


def test_the_balancers_certificate_renewed_under_load_fails_nothing(site: Site) -> None:
    def serial() -> str:
        return site.on(
            "lb", "openssl x509 -noout -serial -in /etc/letsencrypt/live/localhost/cert.pem"
        ).stdout

    before = serial()
    load = site.load("cert", seconds=30)
    try:
        load.wait_sent(20, timeout=20)
        renew = site.on(
            "lb",
            "REQUESTS_CA_BUNDLE=/etc/flaskprod/acme-ca.pem certbot renew --force-renewal "
            "--no-random-sleep-on-renew -q",
        )
        assert renew.returncode == 0, renew.stderr
        load.wait_sent(load.sent() + 60, timeout=30)
    finally:
        record = load.stop()
    summary = summarize(record)
    print("certificate renewed:", summary)
    assert serial() != before
    assert summary["failed_total_first_attempt"] == 0, summary


def test_the_database_host_restarted_under_load_costs_bounded_503s_and_no_order(
    site: Site,
) -> None:
    """db1 reboots (a clean poweroff and a boot) under load: the pages that need the
    database answer 503 with Retry-After meanwhile, never 500 (nor the balancer's 502);
    the clients' order retries (same Idempotency-Key) lose and duplicate nothing;
    recovery: the first 200 of the home page through the balancer after db1 is back."""
    import threading

    import httpx

    seen: list[tuple[float, int, str]] = []  # (when, status, Retry-After) of the home page
    stop = threading.Event()

    def poll() -> None:
        with site.shop.client() as client:
            while not stop.wait(0.1):
                try:
                    answer = client.get("/")  # the products: a page that needs the database
                    seen.append(
                        (
                            time.monotonic(),
                            answer.status_code,
                            answer.headers.get("retry-after", ""),
                        )
                    )
                except httpx.HTTPError:
                    seen.append((time.monotonic(), 0, ""))

    # in a thread of its own: the host's processes die with the thread that started them
    poller = threading.Thread(target=poll, daemon=True)
    load = site.load("dbrestart", seconds=60)
    try:
        load.wait_sent(20, timeout=20)
        began = time.monotonic()
        load.mark("db1 reboot")
        poller.start()
        site.hosts["db1"].reboot()  # this thread: the host outlives it
        back = time.monotonic()
        deadline = back + 60
        while time.monotonic() < deadline and not any(t > back and c == 200 for t, c, _ in seen):
            time.sleep(0.1)
        load.mark("ready again")
        load.wait_sent(load.sent() + 40, timeout=20)
    finally:
        stop.set()
        record = load.stop()
    poller.join(timeout=15)
    summary = summarize(record)
    recovered = next((t - began for t, c, _ in seen if t > back and c == 200), None)
    refused = [(c, after) for _t, c, after in seen if c != 200]
    print(f"db1 rebooted in {back - began:.1f}s, ready again {recovered}s after the reboot began;")
    print("home page meanwhile:", refused[:5], len(refused), "load:", summary)
    orders = verify_orders(site.shop, record)  # type: ignore[arg-type]
    print("orders:", orders)
    assert recovered is not None, seen[-5:]
    assert refused and all(c == 503 for c, _after in refused), refused
    assert any(after.isdigit() for _c, after in refused), refused  # Retry-After: N
    outcomes = set(summary["failed_gets"]) | set(summary["failed_posts_first_attempt"])
    assert outcomes <= {"503"}, summary  # bounded 503s, never a 500 or a 502
    assert summary["tracebacks"] == 0, summary
    assert orders["lost"] == 0 and orders["duplicated"] == 0 and orders["wrong_id"] == 0, orders


def test_an_app_host_powered_off_under_load_fails_no_get_and_loses_no_order(site: Site) -> None:
    """web2 loses power under load (SIGKILL to its PID 1): the balancer sends its
    requests to web1 (a GET that met the dead host is retried there; an order POST in
    flight there is retried by the client with its Idempotency-Key). Powered on again,
    web2 boots serving and the balancer takes it back by itself."""
    web2 = site.hosts["web2"]
    load = site.load("poweroff", seconds=40)
    try:
        load.wait_sent(20, timeout=20)
        load.mark("web2 powered off")
        web2.power_cut()
        load.wait_sent(load.sent() + 120, timeout=30)
    finally:
        record = load.stop()
    summary = summarize(record)
    orders = verify_orders(site.shop, record)  # type: ignore[arg-type]
    print("web2 powered off:", summary, "orders:", orders)
    assert summary["failed_gets"] == {}, summary
    assert summary["failed_total_final"] == 0, summary
    assert orders["lost"] == 0 and orders["duplicated"] == 0 and orders["wrong_id"] == 0, orders
    assert orders["acknowledged"] > 5, orders
    # back: booted from its disk, nothing run on it; the balancer retries it after
    # fail_timeout and it serves again
    began = time.monotonic()
    web2.power_on()
    log = "/var/log/shop/nginx.access.log"
    seen = int(site.on("web2", f"wc -l < {log}").stdout.strip() or 0)
    served = False
    with site.shop.client() as client:
        while not served and time.monotonic() - began < 60:
            assert client.get("/").status_code == 200
            count = int(site.on("web2", f"wc -l < {log}").stdout.strip() or 0)
            served = count > seen
            time.sleep(0.5)
    print(f"web2 serving through the balancer {time.monotonic() - began:.1f}s after power on")
    errors = site.on(
        "lb", f"grep -c 'upstream: \"http://{ADDRESSES['web2']}' /var/log/shop/nginx.error.log"
    )
    print("balancer's errors naming web2:", errors.stdout.strip())
    assert served, "web2 never served through the balancer again"


def _database_url(host: LabHost) -> str:
    """The shop's database on ``host`` through a forwarded port, as the app's role."""
    secrets_env = host.run("cat /etc/shop/secrets.env").stdout
    password = next(
        line.split("=", 1)[1].strip()
        for line in secrets_env.splitlines()
        if line.startswith("DB_PASSWORD=")
    )
    return f"postgresql://shop:{password}@127.0.0.1:{host.forward(5432)}/shop"


def _checksums(url: str) -> dict[str, TableStats]:
    with psycopg.connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        return pg_ops.stats(conn)


def _s3_from_here(site: Site, folder: Path) -> str:
    """A port of this machine reaching lb's S3 gateway (on its private address only): a
    relay in lb's network namespace, stopped by pid with the host."""
    lb = site.hosts["lb"]
    relay = process.start(
        [*lb.nsenter(network_only=True), "socat",
         f"TCP-LISTEN:{S3_RELAY_PORT},bind=127.0.0.1,reuseaddr,fork",
         f"TCP:{ADDRESSES['lb']}:8333"],
        name="s3-relay", log_path=folder / "relay.log", die_with_parent=True,
    )  # fmt: skip
    lb._helpers.append(relay)
    return f"http://127.0.0.1:{lb.forward(S3_RELAY_PORT)}"


@pytest.mark.timeout(900)
def test_the_database_host_destroyed_is_restored_onto_a_fresh_host_row_identical(
    site: Site, tmp_path: Path
) -> None:
    """Last (it destroys db1): db1's backup unit runs, copying the backup to the bucket on
    lb; db1 is destroyed with its disk; a fresh db1 is provisioned (new secrets, which
    the other hosts take), the backup restored from lb by its name (the fresh host's
    first backup, of an empty database, is the newest), every table's checksum
    identical; the app hosts, released again, serve the orders taken before."""
    db1 = site.hosts["db1"]
    url = _database_url(db1)
    copied = "backup: copied to s3://shop-media/backups/shop/ (2 files, sizes checked)"
    for _attempt in range(3):  # the same tables before and after the dump: it holds them
        before = _checksums(url)
        ran = site.on("db1", "systemctl start shop-backup.service && "
                      "journalctl -u shop-backup -o cat -n 30")  # fmt: skip
        assert ran.returncode == 0 and copied in ran.stdout, ran.stdout + ran.stderr
        if _checksums(url) == before:
            break
    else:
        pytest.fail("the shop's tables changed during each of 3 backups")
    assert before["orders"].rows > 10, before["orders"]
    newest = site.on("db1", "ls /var/backups/shop/ | grep '[.]sha256$' | sort | tail -1")
    name = newest.stdout.strip().removesuffix(".sha256")
    assert name.startswith("shop-"), newest
    db1.kill()  # the database host is lost, its disk with it

    site.hosts["db1"] = fresh = site.lab.boot("db1", private_address=ADDRESSES["db1"])
    argv = [FLASKPROD, "deploy", str(site.project), "--ssh-config", str(site.lab.ssh_config)]
    began = time.monotonic()
    done = subprocess.run([*argv, "--provision-only"], capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    url = _database_url(fresh)
    assert "orders" not in _checksums(url)  # an empty database: no release ran on it

    keys = dict(
        line.split("=", 1)
        for line in fresh.run("cat /etc/shop/secrets.env").stdout.splitlines()
        if line.startswith("AWS_")
    )
    s3 = {
        "AWS_ENDPOINT_URL_S3": _s3_from_here(site, tmp_path),
        "AWS_ACCESS_KEY_ID": keys["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": keys["AWS_SECRET_ACCESS_KEY"],
        "MEDIA_BUCKET": "shop-media",
    }
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | s3
    restore = [FLASKPROD, "restore", "--from-s3", name, "--database-url", url, "--yes"]
    restored = subprocess.run([*restore, "--project", str(site.project)], capture_output=True,
                              text=True, timeout=300, check=False, env=env)  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert "sha256 matched" in restored.stderr
    after = _checksums(url)
    assert after == before, {t: (before.get(t), after.get(t)) for t in set(before) | set(after)}

    https = site.hosts["lb"].forward(443)
    check = ["--check-url", f"https://localhost:{https}/", "--check-ca", str(site.shop.ca)]
    released = subprocess.run([*argv, *check], capture_output=True, text=True, timeout=600,
                              check=False)  # fmt: skip
    assert released.returncode == 0, released.stdout + released.stderr
    print(f"db1 rebuilt and restored from lb, app hosts released: "
          f"{time.monotonic() - began:.1f}s; {len(after)} tables identical")  # fmt: skip
    with site.shop.client() as client:
        assert client.get("/api/products").status_code == 200
