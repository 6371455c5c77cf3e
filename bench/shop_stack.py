"""A running ``flaskprod up -d`` of the reference shop, driven as a user would: the one
handle the fault harness (bench/faults, also behind tests/faults and tests/badinput)
and the e2e tests (tests/e2e) share.

The shop is copied to a temp folder other users can traverse (nginx workers and
PostgreSQL do not run as root), started with ``flaskprod up -d`` on free ports and
seeded once (the demo user gets a known API token). ``flaskprod down`` at the end, then
every recorded pid is checked gone (and stopped by pid if ``down`` failed). Nothing
here touches another process of the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

from flaskprod.stack.ports import free_ports
from flaskprod.stack.state import ServiceRecord, StateDir

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop"
FLASKPROD = str(Path(sys.executable).parent / "flaskprod")


class StackError(RuntimeError):
    """The stack could not be started or a fault could not be applied."""


def flaskprod(
    *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the flaskprod CLI as a user would; raise with its output when it fails."""
    result = subprocess.run(
        [FLASKPROD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    if result.returncode != 0:
        raise StackError(
            f"flaskprod {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class RunningShop:
    """One stack of a copy of the shop (see :func:`running_shop`)."""

    project: Path
    https_port: int
    http_port: int
    dirs: StateDir
    token: str
    env: dict[str, str] = field(default_factory=dict)
    #: What ``flaskprod down`` left running (then stopped by pid), once it has run.
    leftovers: list[str] = field(default_factory=list)

    @classmethod
    def on_free_ports(cls, project: Path, **fields: Any) -> Self:
        """A stack of ``project`` on free ports, its state folder inside the copy."""
        https_port, http_port = free_ports(2)
        return cls(
            project=project,
            https_port=https_port,
            http_port=http_port,
            dirs=StateDir(project / ".flaskprod"),
            **fields,
        )

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def ca(self) -> Path:
        return self.dirs.tls / "ca.pem"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def client(self, source: str | None = None, timeout: float = 10.0) -> httpx.Client:
        """An HTTPS client through nginx; ``source``: the loopback address to send from
        (nginx limits /api/ per client address, as it would per real client)."""
        transport = httpx.HTTPTransport(verify=self.ssl_context(), local_address=source)
        return httpx.Client(transport=transport, base_url=self.url, timeout=timeout)

    def state(self) -> dict[str, Any]:
        """``state.json`` as ``up`` wrote it (services, env)."""
        return dict(json.loads(self.dirs.state_file.read_text()))

    def record(self, name: str) -> ServiceRecord:
        state = self.dirs.read()
        found = state.service(name) if state else None
        if found is None:
            raise StackError(f"{name} is not in {self.dirs.state_file}")
        return found

    def pid(self, name: str) -> int:
        return self.record(name).pid

    def log(self, name: str) -> Path:
        return self.dirs.log(name)

    def database_dsn(self) -> str:
        return self.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")

    def flask(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A Flask CLI command of the app with the stack's environment."""
        env = dict(os.environ)
        env.update(self.env)
        env.update(FLASKPROD_ENV="production", SECRET_KEY=self.dirs.secret_key())
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi:app", *args],
            cwd=self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )


Shop = TypeVar("Shop", bound=RunningShop)


def copy_shop(prefix: str) -> Path:
    """A fresh copy of examples/shop (without its state and instance folders)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)  # nginx workers (nobody) and postgres must traverse it
    project = base / "shop"
    shutil.copytree(
        SHOP,
        project,
        ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__", "*.pyc"),
    )
    return project


def server_kind(project: Path) -> str:
    """The app server the project's flaskprod.toml says (server.kind, or the default)."""
    from flaskprod.spec.model import DEFAULT_SERVER_KIND

    with (project / "flaskprod.toml").open("rb") as handle:
        return str(tomllib.load(handle).get("server", {}).get("kind", DEFAULT_SERVER_KIND))


def set_server_kind(project: Path, kind: str) -> None:
    """Switch the copy's flaskprod.toml to ``server.kind = kind``, as a user would: the
    other server's own settings are commented out (the spec refuses them), and this
    server's settings the file keeps commented out with a value (``# preload_app =
    true``: the shop's choice while it ran that server) are set again."""
    from flaskprod.spec.model import GRANIAN_ONLY, GUNICORN_ONLY

    spec = project / "flaskprod.toml"
    # only [server]'s: a [processes.<name>] table has a kind of its own ("rq")
    head, sep, rest = spec.read_text().partition("\n[server]\n")
    server, table, tail = rest.partition("\n[")
    server, count = re.subn(r'(?m)^#? ?kind = "[a-z]+"$', f'kind = "{kind}"', server)
    text = head + sep + server + table + tail
    if count != 1:
        raise StackError(f"{spec}: no single 'kind = ...' line in [server] to replace")
    own, other = (
        (GRANIAN_ONLY, GUNICORN_ONLY) if kind == "granian" else (GUNICORN_ONLY, GRANIAN_ONLY)
    )
    for key in other:
        text = re.sub(rf"(?m)^{key} = ", f"# {key} = ", text)
    for key in own:
        text = re.sub(rf"(?m)^# {key} = (?!\(unset\))", f"{key} = ", text)
    spec.write_text(text)


@contextlib.contextmanager
def running_shop(stack: Shop, up_env: dict[str, str] | None = None) -> Iterator[Shop]:
    """``flaskprod up -d`` of ``stack`` (a copy from :func:`copy_shop`), seeded; on exit
    ``flaskprod down``, anything it left running stopped by pid and named in
    ``stack.leftovers``, and the copy removed. ``up_env``: variables added to this
    process's environment for ``up`` (it passes its environment on to the app)."""
    try:
        flaskprod(
            "up",
            str(stack.project),
            "-d",
            "--https-port",
            str(stack.https_port),
            "--http-port",
            str(stack.http_port),
            "--timeout",
            "90",
            env={**os.environ, **up_env} if up_env else None,
        )
        stack.env = dict(stack.state()["env"])
        stack.flask("seed", "--token", stack.token, timeout=120)
        yield stack
    finally:
        recorded = stack.dirs.read()
        subprocess.run(
            [FLASKPROD, "down", str(stack.project)],
            capture_output=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        leftovers = [r for r in (recorded.services if recorded else []) if r.alive()]
        for record in leftovers:  # down failed: stop exactly what up (or we) started
            record.stop(10)
        stack.leftovers = [r.name for r in leftovers]
        shutil.rmtree(stack.project.parent, ignore_errors=True)
