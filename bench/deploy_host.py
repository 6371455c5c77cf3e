"""A lab host made ready for releases of the shop, and the shop as a git project —
shared by ``tests/deploy/test_ship_*.py`` and ``bench/deploy_phases.py``.

The host is provisioned by ``flaskprod deploy``'s own provisioning (:func:`provision`),
its certificate from Pebble, Let's Encrypt's test server, run inside the host's network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flaskprod.spec.model import Spec

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop"
TOKEN = "deploy-demo-token-0123456789abcdef0123456789"  # noqa: S105 - a throwaway host


def set_tls(project: Path, **tls: str) -> None:
    """Set these [tls] keys in the project's flaskprod.toml (a commented-out default line
    replaced, as a user would)."""
    spec = project / "flaskprod.toml"
    text = spec.read_text()
    section = text.index("\n[tls]\n")
    for key, value in tls.items():
        line = re.compile(rf"^(# )?{key} = .*$", re.MULTILINE)
        found = line.search(text, section)
        assert found is not None, f"no {key} in the shop's [tls]"
        text = text[: found.start()] + f'{key} = "{value}"' + text[found.end() :]
    spec.write_text(text)


def provision(project: Path, destination: str, ssh_config: Path, echo: Any = print) -> None:
    """``flaskprod deploy --provision-only``: the host made ready for releases by the
    real provisioning (packages, user, secrets made on the host, PostgreSQL, Redis, env
    file, units, nginx, the certificate from the spec's ACME server, firewall)."""
    from flaskprod.deploy.command import deploy_host
    from flaskprod.deploy.provision import Kit, TlsFiles
    from flaskprod.spec.load import load_spec

    spec = load_spec(project / "flaskprod.toml")
    deploy_host(
        destination,
        spec=spec,
        kit=Kit.read(spec, project),
        project=project,
        ssh_config=ssh_config,
        accept_new_key=False,
        dry_run=False,
        tls_files=TlsFiles(),
        provision_only=True,
        check_url=None,
        check_ca=None,
        echo=echo,
    )


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


def shop_repository(folder: Path, **tls: str) -> Path:
    """A copy of the shop in a git repository of its own, committed, with these [tls]
    keys set (a private ACME server's, for a lab host)."""
    project = folder / "shop"
    shutil.copytree(
        SHOP, project, ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__")
    )
    set_tls(project, **tls)
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
