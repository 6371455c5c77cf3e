"""`flaskprod deploy` with ``database.engine = "mariadb"``: the shop switched to MariaDB
through PyMySQL (CTFd's engine and driver), deployed to a fresh lab host as a user
does. The host gets Debian's MariaDB with the spec's settings, a database and a user
granted on it only (its password made on the host), the app served through nginx, its
data kept across a MariaDB restart, and a backup by the kit's backup unit that restores
into a new database with every table identical.

One host for the module: a dry run, the deploy (provisioning, release, checks), then
the same provisioning again (no change); the tests look at it from different sides.
"""

from __future__ import annotations

import base64
import gzip
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from flaskprod.deploy.remote import Remote
from flaskprod.lab import Lab, LabHost
from flaskprod.lab.pebble import Pebble
from flaskprod.ops.mariadb import verify_archive
from flaskprod.ops.verify import compare
from flaskprod.spec.load import load_spec
from flaskprod.spec.mariadb import DUMP_OPTIONS

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is imported as a package from the checkout
    sys.path.insert(0, str(REPO))

from bench.deploy_host import HostShop, git, shop_repository  # noqa: E402
from bench.faults.load import ORDER  # noqa: E402
from bench.faults.stack import set_mariadb  # noqa: E402

pytestmark = pytest.mark.timeout(900)

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
SEED = f"flask seed --token {HostShop.token}"
PYMYSQL = "pymysql==1.1.1"  # the version the suite runs (requirements/)
STEP = "MariaDB (settings, database and user)"
#: Names with a hyphen, as an app named my-shop gets by default: quoted everywhere.
DB, USER = "shop-db", "shop-app"


@dataclass
class Deployed:
    host: LabHost
    shop: HostShop
    dry_run: str
    first: str
    second: str

    def root_sql(self, sql: str) -> str:
        """SQL as MariaDB's root on the host (unix socket authentication)."""
        return self.host.run(["mariadb", "--batch", "--skip-column-names", "-e", sql]).stdout

    def app_sql(self, sql: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """SQL as the app's user over 127.0.0.1, with the password made on the host."""
        return self.host.run(
            [
                "bash",
                "-c",
                "MYSQL_PWD=$(sed -n 's/^DB_PASSWORD=//p' /etc/shop/secrets.env) exec mariadb "
                f'--protocol=tcp -h 127.0.0.1 -u {USER} --batch --skip-column-names -e "$0"',
                sql,
            ],
            check=check,
        )


def _deploy(lab: Lab, project: Path, host: LabHost, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [FLASKPROD, "deploy", str(project), "--host", host.name]
    argv += ["--ssh-config", str(lab.ssh_config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    folder = tmp_path_factory.mktemp("maria")
    host = lab.boot("maria1")
    remote = Remote(host.name, ssh_config=lab.ssh_config)
    try:
        pebble = Pebble.start(host, folder / "pebble")
        project = shop_repository(
            folder,
            acme_directory=pebble.directory,
            acme_ca=str(pebble.ca_file),
            acme_email="ops@example.com",
        )
        # The user's switch: the engine in the spec, the driver in the requirements,
        # the kit rendered again.
        set_mariadb(project / "flaskprod.toml")
        spec_file = project / "flaskprod.toml"
        spec_file.write_text(
            spec_file.read_text()
            .replace('name = "{name}"\n', f'name = "{DB}"\n', 1)
            .replace('user = "{name}"\n', f'user = "{USER}"\n', 1)
        )
        requirements = project / "requirements.txt"
        requirements.write_text(requirements.read_text() + PYMYSQL + "\n")
        render = subprocess.run(
            [FLASKPROD, "render", str(project)], capture_output=True, text=True, check=False
        )
        assert render.returncode == 0, render.stdout + render.stderr
        git(project, "add", "-A")
        git(project, "commit", "-qm", "MariaDB through PyMySQL")
        https = host.forward(443)
        roots = folder / "pebble-roots.pem"
        roots.write_text(pebble.issuing_roots())
        dry = _deploy(lab, project, host, "--provision-only", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        first = _deploy(
            lab,
            project,
            host,
            *("--release", SEED),
            *("--check-url", f"https://localhost:{https}/", "--check-ca", str(roots)),
        )
        assert first.returncode == 0, first.stdout + first.stderr
        second = _deploy(lab, project, host, "--provision-only")
        assert second.returncode == 0, second.stdout + second.stderr
        spec = load_spec(project / "flaskprod.toml")
        # what the three runs printed, for docs/mariadb.md (the test asserts on it)
        (folder / "deploy-output.txt").write_text(
            "\n".join(
                f"$ {label}\n{run.stdout}{run.stderr}"
                for label, run in (("dry run", dry), ("deploy", first), ("again", second))
            )
        )
        yield Deployed(
            host,
            HostShop(remote, spec, https, roots),
            dry.stdout + dry.stderr,
            first.stdout + first.stderr,
            second.stdout + second.stderr,
        )
    finally:
        remote.close()
        host.kill()


def test_deploy_provisions_mariadb_idempotently_and_the_dry_run_lists_it(
    deployed: Deployed,
) -> None:
    assert f"{STEP}: would change" in deployed.dry_run, deployed.dry_run
    assert "mariadb-server mariadb-client" in deployed.dry_run
    assert f"{STEP}: changed" in deployed.first, deployed.first
    assert "first backup: changed" in deployed.first
    # the deploy's own checks of the live site and of the host: nothing to warn of
    summaries = [line for line in deployed.first.splitlines() if line.startswith("check --")]
    assert [line.partition(": ")[2].split(", ")[:3] for line in summaries] == [
        ["0 critical", "0 error", "0 warning"]
    ] * 2, summaries
    assert "maria1: provisioned: no change" in deployed.second, deployed.second
    assert f"{STEP}: ok" in deployed.second


def test_the_server_runs_the_specs_settings_on_loopback_only(deployed: Deployed) -> None:
    host = deployed.host
    enabled = host.run(["systemctl", "is-enabled", "mariadb", "shop-backup.timer"]).stdout
    assert enabled.split() == ["enabled", "enabled"]
    assert host.run(["systemctl", "is-active", "shop-backup.timer"]).stdout.strip() == "active"
    row = deployed.root_sql(
        "SELECT @@character_set_server, @@collation_server, @@wait_timeout, "
        "@@max_connections, @@bind_address, @@skip_name_resolve, @@sql_mode"
    ).split("\t")
    assert row[:6] == ["utf8mb4", "utf8mb4_unicode_ci", "3600", "100", "127.0.0.1", "1"], row
    assert {"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"} <= set(row[6].strip().split(","))
    listening = host.run("ss -Hltn 'sport = :3306'").stdout.split()
    assert "127.0.0.1:3306" in listening and "0.0.0.0:3306" not in listening, listening
    env = host.run(["cat", "/etc/shop/shop.env"]).stdout
    (url,) = [line for line in env.splitlines() if line.startswith("DATABASE_URL=")]
    password = host.run("sed -n 's/^DB_PASSWORD=//p' /etc/shop/secrets.env").stdout.strip()
    assert len(password) >= 40 and password not in deployed.first + deployed.second
    assert url == (
        f"DATABASE_URL=mysql+pymysql://{USER}:{password}@127.0.0.1:3306/{DB}?charset=utf8mb4"
    )
    # the app's units start after the database
    unit = host.run(["systemctl", "show", "-p", "After", "shop@a.service"]).stdout
    assert "mariadb.service" in unit, unit


def test_the_apps_user_reaches_its_own_database_only(deployed: Deployed) -> None:
    assert deployed.app_sql("SHOW DATABASES").stdout.split() == ["information_schema", DB]
    products = deployed.app_sql(f"SELECT COUNT(*) FROM `{DB}`.products")  # noqa: S608
    assert products.stdout.strip() != "0"
    for sql in ("SELECT COUNT(*) FROM mysql.user", "CREATE DATABASE other", "SHUTDOWN"):
        denied = deployed.app_sql(sql, check=False)
        assert denied.returncode != 0 and "denied" in denied.stderr, (sql, denied.stderr)
    # no PROCESS privilege: only its own connections (the app's and this one) show
    users = {row.split("\t")[1] for row in deployed.app_sql("SHOW PROCESSLIST").stdout.splitlines()}
    assert users == {USER}, users
    wrong = deployed.host.run(
        f"MYSQL_PWD=wrong mariadb --protocol=tcp -h 127.0.0.1 -u {USER} -e 'SELECT 1'",
        check=False,
    )
    assert wrong.returncode != 0 and "Access denied" in wrong.stderr


def _order(client: httpx.Client) -> int:
    """One order through the shop's API (its seeded token); its id."""
    client.headers["Authorization"] = f"Bearer {HostShop.token}"
    placed = client.post(
        "/api/orders", json=ORDER, headers={"Idempotency-Key": f"maria-{uuid.uuid4().hex}"}
    )
    assert placed.status_code == 201, placed.text[:300]
    return int(placed.json()["id"])


def test_the_shop_is_served_and_its_orders_survive_a_mariadb_restart(deployed: Deployed) -> None:
    with deployed.shop.client() as client:
        home = client.get("/")
        assert home.status_code == 200 and "Espresso cup" in home.text
        assert client.get("/health/ready").status_code == 200
        order = _order(client)
    deployed.host.run(["systemctl", "restart", "mariadb"])
    with deployed.shop.client() as client:
        client.headers["Authorization"] = f"Bearer {HostShop.token}"
        shown = client.get(f"/api/orders/{order}")  # pre-ping: a fresh connection
        assert shown.status_code == 200, shown.text[:300]
        assert shown.json()["id"] == order
    stored = deployed.root_sql(f"SELECT COUNT(*) FROM `{DB}`.orders WHERE id = {order:d}")  # noqa: S608
    assert stored.strip() == "1"


def _fetch_gz(host: LabHost, command: str, into: Path) -> Path:
    """The output of ``command`` (a gzip stream) on the host, written to ``into``."""
    text = host.run(f"set -o pipefail; {command} | base64 -w0", timeout=120).stdout
    into.write_bytes(base64.b64decode(text))
    return into


def test_the_backup_units_backup_restores_into_a_new_database_identical(
    deployed: Deployed, tmp_path: Path
) -> None:
    host = deployed.host
    with deployed.shop.client() as client:
        _order(client)  # something written since the first backup
    host.run(["systemctl", "start", "shop-backup.service"], timeout=120)
    newest = host.run("ls -1t /var/backups/shop/shop-*.sql.gz | head -n1").stdout.strip()
    backup = _fetch_gz(host, f"cat {newest}", tmp_path / "backup.sql.gz")
    with gzip.open(backup) as dump:
        assert b"INSERT INTO `orders`" in dump.read()
    expected = verify_archive(backup).result()
    assert expected["orders"].rows >= 1 and expected["products"].rows >= 1
    # restore.sh as the app's user, with its env file, into a database root made for it
    deployed.root_sql(
        "CREATE DATABASE shop_restored CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
        f"GRANT ALL ON shop_restored.* TO '{USER}'@'127.0.0.1'"
    )
    restored = host.run(
        [
            *("systemd-run", "--wait", "--pipe", "--collect", "-p", "User=shop"),
            *("-p", "EnvironmentFile=/etc/shop/shop.env"),
            *("/srv/shop/deploy/scripts/restore.sh", newest, "shop_restored"),
        ],
        check=False,
        timeout=120,
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "matches its checksum" in restored.stdout
    again = _fetch_gz(
        host,
        f"mariadb-dump {' '.join(DUMP_OPTIONS)} shop_restored | gzip",
        tmp_path / "restored.sql.gz",
    )
    assert compare(expected, verify_archive(again).result()) == []
