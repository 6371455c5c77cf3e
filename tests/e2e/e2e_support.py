"""The e2e stack: one real `flaskprod up` of the reference shop (see conftest.py).

One real stack of the reference shop for the whole e2e session.

``flaskprod up -d`` on a copy of ``examples/shop`` (in a temp folder other users can
traverse: nginx workers and PostgreSQL do not run as root), on free ports, with its
state folder inside the copy. Real nginx, gunicorn, PostgreSQL and Redis; the demo
data is seeded once. ``flaskprod down`` at the end, then every recorded pid is checked
gone (and stopped by pid if ``down`` failed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from flaskprod_cli import run_flaskprod

from flaskprod.stack.ports import free_port
from flaskprod.stack.state import StateDir

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
TOKEN = "e2e-demo-token-0123456789abcdef0123456789"


def flaskprod(
    *args: str, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = run_flaskprod(*args, timeout=timeout, env=env)
    if check and result.returncode != 0:
        pytest.fail(
            f"flaskprod {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


@dataclass
class ShopStack:
    project: Path
    https_port: int
    http_port: int
    dirs: StateDir
    token: str = TOKEN
    env: dict[str, str] = field(default_factory=dict)
    #: The app server (server.kind): its service name in state.json and its log.
    server: str = "gunicorn"

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def ca(self) -> Path:
        return self.dirs.tls / "ca.pem"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=10, **kwargs)  # type: ignore[arg-type]

    def state(self) -> dict[str, object]:
        return json.loads(self.dirs.state_file.read_text())

    def pid(self, service: str) -> int:
        for record in self.state()["services"]:  # type: ignore[union-attr]
            if record["name"] == service:  # type: ignore[index]
                return int(record["pid"])  # type: ignore[index]
        raise AssertionError(f"{service} not in state.json")

    def gunicorn_log(self) -> str:
        """The app server's log (gunicorn's, or granian's with server.kind granian)."""
        return self.dirs.log(self.server).read_text(errors="replace")

    def app_log_lines(self) -> list[dict[str, object]]:
        """The JSON lines of the app's own log (flaskprod.access and others)."""
        lines = []
        for raw in self.gunicorn_log().splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
        return lines

    def database_dsn(self) -> str:
        return self.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
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
            timeout=60,
            check=True,
        )


def _copy_shop() -> Path:
    base = Path(tempfile.mkdtemp(prefix="flaskprod-e2e-"))
    base.chmod(0o755)  # nginx workers (nobody) and postgres must traverse it
    project = base / "shop"
    shutil.copytree(
        SHOP,
        project,
        ignore=shutil.ignore_patterns(".flaskprod", "instance", "__pycache__", "*.pyc"),
    )
    return project


#: gunicorn's own settings, commented out in a granian spec (it refuses them).
GUNICORN_ONLY = ("worker_class", "keepalive", "max_requests", "max_requests_jitter", "preload_app")


def use_granian(project: Path) -> None:
    """Switch the copy's flaskprod.toml to server.kind = "granian", as a user would."""
    spec = project / "flaskprod.toml"
    text = spec.read_text().replace('kind = "gunicorn"', 'kind = "granian"', 1)
    for key in GUNICORN_ONLY:
        text = re.sub(rf"(?m)^{key} = ", f"# {key} = ", text)
    spec.write_text(text)


def start_shop_stack(server: str = "gunicorn") -> Iterator[ShopStack]:
    project = _copy_shop()
    if not (project / "flaskprod.toml").exists():
        flaskprod("init", str(project))
    if server == "granian":
        use_granian(project)
    stack = ShopStack(
        project=project,
        https_port=free_port(),
        http_port=free_port(),
        dirs=StateDir(project / ".flaskprod"),
        server=server,
    )
    up = flaskprod(
        "up",
        str(project),
        "-d",
        "--https-port",
        str(stack.https_port),
        "--http-port",
        str(stack.http_port),
        "--timeout",
        "90",
        check=False,
        # The rendered gunicorn.conf.py turns the app's own access log off (gunicorn's
        # carries the same request id); the tests read the app's view of each request
        # (its remote address after ProxyFix), so they ask for it back. `up` passes its
        # environment to the app, and the config only sets a default.
        env={**os.environ, "FLASKPROD_ACCESS_LOG": "on"},
    )
    try:
        if up.returncode != 0:
            pytest.fail(
                f"flaskprod up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}", pytrace=False
            )
        stack.env = dict(stack.state()["env"])  # type: ignore[arg-type]
        stack.flask("seed", "--token", TOKEN)
        yield stack
    finally:
        recorded = stack.dirs.read()
        flaskprod("down", str(project), check=False)
        leftovers = [r for r in (recorded.services if recorded else []) if r.alive()]
        for record in leftovers:  # down failed: stop exactly what up started
            record.stop(10)
        shutil.rmtree(project.parent, ignore_errors=True)
        assert not leftovers, f"flaskprod down left {[r.name for r in leftovers]} running"
