"""Releases of the shop to a real lab host, through its nginx: the first release, a new
revision under load (0 failed requests, no order lost or duplicated), a revision that
does not import and one whose migration fails (refused, the old one serving), rollback,
and the site coming back by itself after the host rebooted.

One host for the module (booting and installing packages is the expensive part), booted
persistent (its writes on a disk of its own, so that it can reboot); the tests run in
order on it, each leaving the shop serving.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from shop_http import add_product, png, sign_up
from shop_project import interrupt_after

from flaskprod.deploy import ledger
from flaskprod.deploy.remote import Remote
from flaskprod.deploy.ship import DeployFailed, host_releases, release_to_host
from flaskprod.errors import ExitCode
from flaskprod.lab import Lab, LabHost
from flaskprod.lab.pebble import Pebble
from flaskprod.spec.load import load_spec
from flaskprod.spec.model import Spec

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is imported as a package from the checkout
    sys.path.insert(0, str(REPO))

from bench.deploy_host import (  # noqa: E402
    HostShop,
    commit_change,
    git,
    shop_repository,
)
from bench.faults.load import Load, LoadPlan, summarize, verify_orders  # noqa: E402

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
SEED = f"flask seed --token {HostShop.token}"
VERSION_FILE = "shop/static/version.txt"


@dataclass
class Deployed:
    host: LabHost
    remote: Remote
    spec: Spec
    project: Path
    shop: HostShop
    lines: list[str]

    def release(self, **kwargs: object) -> None:
        self.lines.clear()
        release_to_host(
            self.remote,
            self.spec,
            self.project,
            self.lines.append,
            **kwargs,  # type: ignore[arg-type]
        )

    def get(self, path: str) -> httpx.Response:
        with self.shop.client() as client:
            return client.get(path)

    def entries(self) -> list[ledger.Entry]:
        return host_releases(Remote(self.host.name, ssh_config=self.host.ssh_config), self.spec)

    def active(self, unit: str) -> str:
        return self.host.run(["systemctl", "is-active", unit], check=False).stdout.strip()


@pytest.fixture(scope="module")
def deployed(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """A fresh host, deployed to as a user does: ``flaskprod deploy`` provisions it (its
    certificate from Pebble in the host's network), releases the committed revision (and
    seeds it), then checks the live site and the host — and exits 0 only when those
    checks found no error."""
    folder = tmp_path_factory.mktemp("ship")
    host = lab.boot("ship1", persistent=True)  # the last test reboots it
    remote = Remote(host.name, ssh_config=lab.ssh_config)
    try:
        pebble = Pebble.start(host, folder / "pebble")
        project = shop_repository(
            folder,
            acme_directory=pebble.directory,
            acme_ca=str(pebble.ca_file),
            acme_email="ops@example.com",
        )
        spec = load_spec(project / "flaskprod.toml")
        https = host.forward(443)
        roots = folder / "pebble-roots.pem"
        roots.write_text(pebble.issuing_roots())
        argv = [FLASKPROD, "deploy", str(project), "--host", host.name]
        argv += ["--ssh-config", str(lab.ssh_config), "--release", SEED]
        argv += ["--check-url", f"https://localhost:{https}/", "--check-ca", str(roots)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        shop = HostShop(remote, spec, https, roots)
        yield Deployed(host, remote, spec, project, shop, done.stderr.splitlines())
    finally:
        remote.close()
        host.kill()


def test_the_first_release_serves_the_shop_through_the_hosts_nginx(deployed: Deployed) -> None:
    # The deploy's own checks of the live site and of the host found nothing to warn of.
    summaries = [line for line in deployed.lines if line.startswith("check --")]
    assert [line.partition(": ")[2] for line in summaries] == [
        "0 critical, 0 error, 0 warning, 0 info",
        "0 critical, 0 error, 0 warning, 2 info",
    ], summaries
    home = deployed.get("/")
    assert home.status_code == 200 and "Espresso cup" in home.text
    assert deployed.get("/health/ready").status_code == 200
    (entry,) = deployed.entries()
    assert (entry.state, entry.slot) == ("live", "a")
    assert entry.revision == git(deployed.project, "rev-parse", "HEAD")
    assert (deployed.active("shop@a"), deployed.active("shop@b")) == ("active", "inactive")
    enabled = deployed.host.run(["systemctl", "is-enabled", "shop@a"], check=False).stdout
    assert enabled.strip() == "enabled"
    folder = f"/srv/shop/releases/{entry.id}"
    # its own venv, flaskprod from the shipped wheel (not on the package index)
    listing = deployed.host.run(f"ls {folder}/.wheels; readlink /srv/shop/slots/a").stdout
    assert "flaskprod-0.1.0-py3-none-any.whl" in listing and f"releases/{entry.id}" in listing
    version = deployed.host.run(f"{folder}/.venv/bin/python -c 'import flaskprod, granian'")
    assert version.returncode == 0
    venv = deployed.host.run(f"readlink {folder}/.venv").stdout.strip()
    assert venv.startswith("/srv/shop/venvs/"), venv  # one venv per set of pins
    # the secrets were made on the host: the local env never saw them
    env = deployed.host.run("cat /etc/shop/shop.env").stdout
    (secret,) = [
        line.partition("=")[2] for line in env.splitlines() if line.startswith("SECRET_KEY=")
    ]
    assert len(secret) >= 32 and secret not in "\n".join(deployed.lines)


def test_an_upload_is_served_from_the_media_folder_and_the_hosts_worker_thumbnails_it(
    deployed: Deployed,
) -> None:
    """A seller's upload through the host's nginx: stored in the media folder, served by
    nginx, and its thumbnail made by the worker unit the deploy installed and started."""
    assert deployed.active("shop-worker.service") == "active"
    enabled = deployed.host.run(["systemctl", "is-enabled", "shop-worker.service"]).stdout
    assert enabled.strip() == "enabled"
    image = png((1200, 800), "teal")
    # The site's own origin, as a browser on it sends (nginx gives the app Host: localhost;
    # the forwarded port is the lab's, not the site's).
    url = "https://localhost"
    with deployed.shop.client() as client:
        sign_up(client, url, "seller", "deploy-test-password-1")
        product = add_product(client, url, "Host mug", "9", image)
        began, thumbnail = time.monotonic(), None
        while thumbnail is None and time.monotonic() - began < 20:
            shown = client.get(f"/api/products/{product}").json()
            thumbnail = shown["thumbnail_url"]
            time.sleep(0.2)
        assert thumbnail is not None, "no thumbnail within 20 s"
        original = client.get(shown["image_url"])
        assert original.status_code == 200 and original.content == image
        small = client.get(thumbnail)
        assert small.status_code == 200 and small.headers["content-type"] == "image/webp"
    name = shown["image_url"].rpartition("/")[2]
    assert deployed.host.run(f"test -f /var/lib/shop/media/{name}").returncode == 0
    journal = deployed.host.run("journalctl -u shop-worker.service --no-pager").stdout
    assert "make_thumbnail" in journal  # the worker on the host made it, not the request


def test_a_new_revision_under_load_fails_nothing_and_loses_no_order(deployed: Deployed) -> None:
    """The revision also changes dependencies (a new pinned package): a new venv."""
    project = deployed.project
    # tomli-w: in nothing the shop already installs (six came in with python-dateutil)
    requirements = (project / "requirements.txt").read_text() + "tomli-w==1.2.0\n"
    (project / "requirements.txt").write_text(requirements)
    commit_change(project, VERSION_FILE, "v2\n", "v2 with tomli-w")
    plan = LoadPlan(
        rate=12,
        duration=90,
        max_requests=1500,
        post_every=3,
        get_paths=("/", "/api/products"),
        threads=4,
    )
    load = Load(deployed.shop, plan, prefix=f"ship-{time.time_ns()}-").start()  # type: ignore[arg-type]
    try:
        load.wait_sent(20, timeout=20)
        load.mark("release")
        deployed.release()
        load.mark("released")
        load.wait_sent(load.sent() + 20, timeout=20)
    finally:
        record = load.stop()
    summary = summarize(record)
    orders = verify_orders(deployed.shop, record)  # type: ignore[arg-type]
    print("load:", summary, "orders:", orders, "timings:", deployed.lines[-1])
    assert summary["sent"] > 60, summary
    assert summary["failed_total_first_attempt"] == 0, summary
    assert summary["retries"] == 0, summary
    assert orders["lost"] == 0 and orders["duplicated"] == 0 and orders["wrong_id"] == 0, orders
    assert orders["acknowledged"] > 10, orders
    assert deployed.get("/static/version.txt").text == "v2\n"
    live = ledger.live(deployed.entries())
    assert live is not None and live.slot == "b"
    assert (deployed.active("shop@a"), deployed.active("shop@b")) == ("inactive", "active")
    added = deployed.host.run("/srv/shop/slots/b/.venv/bin/python -c 'import tomli_w'", check=False)
    assert added.returncode == 0, added.stderr
    # a new pin, a new venv; the previous release keeps its own (a rollback needs it)
    links = deployed.host.run("readlink /srv/shop/slots/a/.venv /srv/shop/slots/b/.venv")
    old_venv, new_venv = links.stdout.split()
    assert old_venv != new_venv
    in_old = deployed.host.run(f"{old_venv}/bin/python -c 'import tomli_w'", check=False)
    assert in_old.returncode != 0


def refused(deployed: Deployed, path: str, text: str, message: str) -> DeployFailed:
    before = ledger.live(deployed.entries())
    good = git(deployed.project, "rev-parse", "HEAD")
    commit_change(deployed.project, path, text, message)
    try:
        with pytest.raises(DeployFailed) as caught:
            deployed.release()
    finally:
        git(deployed.project, "reset", "-q", "--hard", good)
    assert caught.value.exit_code == ExitCode.DEPLOY
    assert str(caught.value).startswith(f"{deployed.host.name}: ")
    # the old release serves on, the new slot is stopped, the ledger says failed
    assert deployed.get("/static/version.txt").text == "v2\n"
    assert deployed.get("/health/ready").status_code == 200
    after = deployed.entries()
    assert ledger.live(after) == before
    assert after[-1].state == "failed"
    assert deployed.active("shop@a") != "active"
    assert "keeps serving" in deployed.lines[-1]
    return caught.value


def test_a_revision_that_does_not_import_is_refused(deployed: Deployed) -> None:
    """The release step (migrations) imports the app first: refused before any start."""
    error = refused(
        deployed, "wsgi.py", "raise RuntimeError('boom: this revision cannot start')\n", "broken"
    )
    assert error.step == "release"
    # the app's own error lines are shown
    assert any("boom: this revision cannot start" in line for line in error.lines), error.lines
    assert any("boom: this revision cannot start" in line for line in deployed.lines)
    assert deployed.active("shop@b") == "active"  # nothing else was started


def test_a_revision_that_never_gets_ready_is_stopped(deployed: Deployed) -> None:
    """Imports under the flask command (the release step passes), dies in the app server."""
    wsgi = (
        "import sys\n"
        "from shop import create_app\n"
        "app = create_app()\n"
        "if not sys.argv[0].endswith('flask'):\n"
        "    raise RuntimeError('boom: this revision cannot serve')\n"
    )
    started = time.monotonic()
    error = refused(deployed, "wsgi.py", wsgi, "serves nothing")
    assert time.monotonic() - started < 40, "a crash loop is seen, not waited out (60 s)"
    assert error.step == "ready"
    assert "keep crashing" in str(error), error
    assert any("boom: this revision cannot serve" in line for line in error.lines), error.lines
    assert any("boom: this revision cannot serve" in line for line in deployed.lines)
    disabled = deployed.host.run(["systemctl", "is-enabled", "shop@a"], check=False).stdout
    assert disabled.strip() == "disabled"


def test_a_revision_whose_migration_fails_is_refused(deployed: Deployed) -> None:
    migration = (
        '"""a migration that fails"""\n'
        "from alembic import op\n"
        "revision = 'ffff00000001'\n"
        f"down_revision = {head_revision(deployed.project)!r}\n"
        "branch_labels = None\ndepends_on = None\n\n"
        "def upgrade():\n"
        "    op.execute('ALTER TABLE no_such_table ADD COLUMN x integer')\n\n"
        "def downgrade():\n    pass\n"
    )
    error = refused(deployed, "migrations/versions/ffff_fails.py", migration, "bad migration")
    assert error.step == "release"
    assert any("no_such_table" in line for line in error.lines), error.lines
    # nothing was started for it: the live slot is the only app server
    assert deployed.active("shop@b") == "active"


def head_revision(project: Path) -> str:
    """The newest alembic revision of the shop (the one no other revises)."""

    revisions: dict[str, str | None] = {}
    for path in (project / "migrations" / "versions").glob("*.py"):
        text = path.read_text()
        rev = re.search(r"^revision\s*=\s*['\"](\w+)['\"]", text, re.M)
        down = re.search(r"^down_revision\s*=\s*['\"]?(\w+)?['\"]?", text, re.M)
        if rev:
            revisions[rev.group(1)] = down.group(1) if down else None
    (head,) = set(revisions) - {d for d in revisions.values() if d}
    return head


def cli(deployed: Deployed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            FLASKPROD,
            *args,
            str(deployed.project),
            "--host",
            deployed.host.name,
            "--ssh-config",
            str(deployed.host.ssh_config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rollback_returns_to_the_previous_release_without_a_rebuild(deployed: Deployed) -> None:
    before = deployed.entries()
    previous = next(e for e in before if e.state == "previous")
    result = cli(deployed, "rollback")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rolling back to {previous.id}" in result.stdout
    assert "building" not in result.stdout and "release step" not in result.stdout
    assert deployed.get("/static/version.txt").status_code == 404  # v1 had no such file
    assert deployed.get("/").status_code == 200
    after = deployed.entries()
    live = ledger.live(after)
    assert live is not None and live.id == previous.id and live.slot == "a"
    assert (deployed.active("shop@a"), deployed.active("shop@b")) == ("active", "inactive")
    listing = cli(deployed, "releases")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["id", "revision", "created", "state", "slot"]
    assert any(previous.id in line and " live " in line for line in lines), lines
    assert sum(" failed " in line for line in lines) == 3
    # and forward again: --to the release that was live
    forward = cli(deployed, "rollback", "--to", ledger.live(before).id[:18])  # type: ignore[union-attr]
    assert forward.returncode == 0, forward.stdout + forward.stderr
    assert deployed.get("/static/version.txt").text == "v2\n"


def test_rollback_with_nothing_to_go_back_to_is_one_line(deployed: Deployed) -> None:
    result = cli(deployed, "rollback", "--to", "19990101")
    assert result.returncode == ExitCode.DEPLOY
    assert result.stderr.strip().splitlines() == [
        f"flaskprod: error: {deployed.host.name}: no release '19990101' on the host "
        "(flaskprod releases lists them)"
    ]


def test_a_deploy_interrupted_in_its_release_keeps_the_old_one_and_the_next_run_resumes(
    deployed: Deployed,
) -> None:
    """Ctrl-C while the new release builds: one line naming the host and the step, the
    new slot stopped, the release serving before still serving; the same deploy again
    provisions nothing new and releases."""
    before = ledger.live(deployed.entries())
    assert before is not None
    revision = commit_change(deployed.project, VERSION_FILE, "interrupted\n", "to interrupt")
    argv = [FLASKPROD, "deploy", str(deployed.project), "--host", deployed.host.name]
    argv += ["--ssh-config", str(deployed.host.ssh_config)]
    argv += ["--check-url", f"{deployed.shop.url}/", "--check-ca", str(deployed.shop.ca)]
    stopped = interrupt_after("building the release's venv", argv)
    assert stopped.returncode == ExitCode.DEPLOY, stopped.stdout
    last = stopped.stdout.strip().splitlines()[-1]
    assert last.startswith(f"flaskprod: error: {deployed.host.name}: release: interrupted")
    assert deployed.get("/").status_code == 200
    assert ledger.live(deployed.entries()) == before  # the old release, still live
    assert deployed.get("/static/version.txt").text != "interrupted\n"
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{deployed.host.name}: provisioned: no change" in again.stderr
    live = ledger.live(deployed.entries())
    assert live is not None and live.revision == revision
    assert deployed.get("/static/version.txt").text == "interrupted\n"


def test_the_host_rebooted_and_the_site_came_back_by_itself(deployed: Deployed) -> None:
    """A real reboot (issue #13): a clean poweroff of the host and a boot from its own
    disk. Nothing is run on the host afterwards: what serves is what the deploy enabled
    and ordered. Last of the module: the forward to the host's 443 is made anew."""
    host = deployed.host
    before = ledger.live(deployed.entries())
    assert before is not None
    version = deployed.get("/static/version.txt").text  # what the live release serves
    boot_id = host.run("cat /proc/sys/kernel/random/boot_id").stdout
    started = time.monotonic()
    host.reboot()
    booted = time.monotonic()
    assert host.run("cat /proc/sys/kernel/random/boot_id").stdout != boot_id  # a new boot
    deployed.shop = replace(deployed.shop, port=host.forward(443))
    statuses: dict[str, int | None] = {"/": None, "/health/ready": None}
    while time.monotonic() - booted < 60 and set(statuses.values()) != {200}:
        for path in statuses:
            try:
                statuses[path] = deployed.get(path).status_code
            except httpx.HTTPError:
                statuses[path] = None
        time.sleep(0.2)
    serving = time.monotonic()
    print(
        f"reboot: poweroff + boot {booted - started:.1f} s, then serving after "
        f"{serving - booted:.1f} s: {serving - started:.1f} s from reboot to serving"
    )
    assert statuses == {"/": 200, "/health/ready": 200}, statuses
    home = deployed.get("/")
    assert "Espresso cup" in home.text  # the database's rows came back with it
    assert deployed.get("/static/version.txt").text == version
    other = "a" if before.slot == "b" else "b"
    assert deployed.active(f"shop@{before.slot}") == "active"
    assert deployed.active(f"shop@{other}") == "inactive"
    assert deployed.active("shop-worker.service") == "active"
    listing = cli(deployed, "releases")
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert any(before.id in line and " live " in line for line in listing.stdout.splitlines())
    assert ledger.live(deployed.entries()) == before
