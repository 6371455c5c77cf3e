"""The rendered nginx site passes ``nginx -t`` and, started for real in front of the
rendered gunicorn.conf.py, behaves as the spec says.

The site is included inside ``http {}`` by a tiny wrapper config, as on a server. For
the live run only what must change on this machine is overlaid: the listen ports
(free loopback ports instead of 80/443). Everything else is the rendered file.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import UPLOAD_UUID
from kit_tools import ToolFinder, compose_site, nginx_t, write_wrapper

from flaskprod.stack.ports import free_port, free_ports


@pytest.fixture(scope="module")
def nginx(tool: ToolFinder) -> str:
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if Path(candidate).exists():
            return candidate
    return str(tool("nginx", "apt-get install nginx"))


def site_of(kit: Any) -> Path:
    return kit.path(f"deploy/nginx/{kit.spec.app.name}.conf")  # type: ignore[no-any-return]


def test_nginx_t_accepts_the_site(kit: Any, nginx: str, tmp_path: Path) -> None:
    site = site_of(kit)
    result = nginx_t(nginx, tmp_path, site)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr
    # nginx reports unknown/deprecated things as [warn] while still succeeding.
    assert "[warn]" not in result.stderr and "[emerg]" not in result.stderr, result.stderr


def test_nginx_t_accepts_the_compose_site(kit: Any, nginx: str, tmp_path: Path) -> None:
    """The compose variant too: its upstream "web" must resolve, so point it at loopback."""
    site = compose_site(kit, tmp_path / "compose-site.conf")
    result = nginx_t(nginx, tmp_path, site)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


def test_nginx_t_rejects_a_broken_site(nginx: str, tmp_path: Path) -> None:
    """The harness can fail: a site with an unknown directive is refused."""
    site = tmp_path / "broken.conf"
    site.write_text("server { listen 127.0.0.1:1; frobnicate on; }\n")
    result = nginx_t(nginx, tmp_path, site)
    assert result.returncode != 0
    assert "frobnicate" in result.stderr


# ---- live: the real nginx in front of the real gunicorn -----------------------------


def overlay_ports(text: str, http_port: int, https_port: int) -> str:
    """Listen on loopback ports instead of 80/443 (and no IPv6 sockets)."""
    text = re.sub(r"^\s*listen \[::\]:.*\n", "", text, flags=re.M)
    text = re.sub(r"listen 80\b", f"listen 127.0.0.1:{http_port}", text)
    return re.sub(r"listen 443\b", f"listen 127.0.0.1:{https_port}", text)


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
    return context


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with the host's name in SNI (as a browser would send it)."""

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


class Stack:
    def __init__(self, http_port: int, https_port: int, gunicorn_log: Path) -> None:
        self.http_port = http_port
        self.https_port = https_port
        self.gunicorn_log = gunicorn_log

    def https(
        self,
        method: str,
        path: str,
        host: str = "sample.test",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = _LoopbackHTTPS(host, self.https_port, timeout=10, context=context)
        connection.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response

    def http(self, path: str, host: str = "sample.test") -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        response.data = response.read()  # type: ignore[attr-defined]
        connection.close()
        return response


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as systemd's EnvironmentFile reads the rendered .env.example."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            values[key.strip()] = value
    return values


@pytest.fixture(scope="module")
def production_env(
    kit: Any, sample_env: dict[str, str], postgres_cluster: Any, redis_server: Any
) -> dict[str, str]:
    """The environment systemd would give gunicorn: the rendered env file, its secrets
    filled in, pointing at the suite's throwaway PostgreSQL and Redis."""
    values = read_env_file(Path(kit.spec.resolve(kit.spec.deploy.env_file)))
    assert values["SECRET_KEY"] == "", "the example must not carry a secret"
    values["SECRET_KEY"] = "k" * 48
    values["DATABASE_URL"] = postgres_cluster.create_database(f"kit_live_{os.getpid()}")
    values["REDIS_URL"] = redis_server.url()
    env = {**sample_env, **{key: value for key, value in values.items() if value}}
    env["FLASKPROD_ENV"] = values["FLASKPROD_ENV"]
    return env


@contextlib.contextmanager
def running_stack(
    kit: Any,
    nginx: str,
    gunicorn_bin: Path,
    site_text: str,
    env: dict[str, str],
    prefix: Path,
    ready: Callable[[], bool],
) -> Iterator[Stack]:
    """gunicorn with the rendered config, then nginx with ``site_text`` (ports overlaid);
    both stopped by pid at the end."""
    gunicorn_log = prefix / "gunicorn.log"
    with gunicorn_log.open("wb") as log:
        gunicorn = subprocess.Popen(
            [str(gunicorn_bin), "-c", "deploy/gunicorn.conf.py", kit.spec.app.target],
            cwd=kit.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    http_port, https_port = free_ports(2)
    site = prefix / "site.conf"
    site.write_text(overlay_ports(site_text, http_port, https_port))
    conf = write_wrapper(prefix, site, as_root=True)
    server = None
    try:
        wait_for(lambda: ready() or gunicorn.poll() is not None, 20, "gunicorn to listen")
        assert gunicorn.poll() is None, gunicorn_log.read_text()
        server = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=0.2).close()
                return True
            except OSError:
                return server.poll() is not None

        wait_for(listening, 10, "nginx")
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        yield Stack(http_port, https_port, gunicorn_log)
    finally:
        if server is not None:
            stop(server)
        stop(gunicorn)


def tcp_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(
    kit: Any,
    nginx: str,
    tool: ToolFinder,
    production_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The server layout: nginx -> unix socket -> gunicorn, as systemd runs it."""
    socket_path = Path(kit.spec.socket_path or "")
    socket_path.unlink(missing_ok=True)
    with running_stack(
        kit,
        nginx,
        tool("gunicorn", "pip install gunicorn (make setup)"),
        site_of(kit).read_text(),
        production_env,
        tmp_path_factory.mktemp("nginx-live"),
        socket_path.exists,
    ) as running:
        yield running


def test_live_compose_layout_over_tcp(
    kit: Any,
    nginx: str,
    tool: ToolFinder,
    production_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The compose layout: nginx -> TCP -> gunicorn bound by GUNICORN_BIND, with the
    environment compose gives web (FORWARDED_ALLOW_IPS, GUNICORN_BIND)."""
    import yaml

    web_env = yaml.safe_load(kit.path("deploy/compose.yaml").read_text())["services"]["web"][
        "environment"
    ]
    port = free_port()
    env = {
        **production_env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",  # compose: 0.0.0.0:PORT inside the container
        "FORWARDED_ALLOW_IPS": web_env["FORWARDED_ALLOW_IPS"],
    }
    site = kit.path(f"deploy/nginx/{kit.spec.app.name}.compose.conf").read_text()
    compose_port = web_env["GUNICORN_BIND"].rpartition(":")[2]
    assert f"server web:{compose_port} " in site
    site = site.replace(f"server web:{compose_port} ", f"server 127.0.0.1:{port} ")
    with running_stack(
        kit,
        nginx,
        tool("gunicorn", "pip install gunicorn (make setup)"),
        site,
        env,
        tmp_path,
        lambda: tcp_open(port),
    ) as running:
        connection = _LoopbackHTTPS(
            "sample.test", running.https_port, timeout=10, context=_insecure_context()
        )
        connection.request("GET", "/whoami", headers={"Host": "sample.test"})
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        assert response.status == 200
        assert body == {"scheme": "https", "remote": "127.0.0.1", "host": "sample.test"}
        assert running.https("GET", kit.spec.http.health_path).status == 200
        assert running.https("GET", "/static/app.css").status == 200
        # The container health checks, run as written (python, no curl) against this
        # gunicorn: they pass while it serves...
        checks = healthchecks(kit, compose_port, port)
        for command in checks:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
            assert result.returncode == 0, (command, result.stderr)
    # ...and fail once it is gone.
    for command in checks:
        assert subprocess.run(command, capture_output=True, timeout=30).returncode != 0


def healthchecks(kit: Any, container_port: str, port: int) -> list[list[str]]:
    """The Dockerfile HEALTHCHECK and compose's web healthcheck, aimed at ``port``."""
    import yaml
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(kit.path("deploy/Dockerfile")))
    (instruction,) = [i["value"] for i in parser.structure if i["instruction"] == "HEALTHCHECK"]
    docker = json.loads(instruction[instruction.index("CMD") + 3 :])
    compose = yaml.safe_load(kit.path("deploy/compose.yaml").read_text())
    test = compose["services"]["web"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    commands = []
    for command in (docker, test[1:]):
        assert command[0] == "python"
        commands.append(
            [sys.executable, *(a.replace(f":{container_port}/", f":{port}/") for a in command[1:])]
        )
    return commands


def test_live_socket_is_group_only(stack: Stack, kit: Any) -> None:
    mode = Path(kit.spec.socket_path or "").stat().st_mode & 0o777
    assert mode == 0o770, oct(mode)  # umask 0o007: owner and group (nginx), nobody else


def test_live_app_through_nginx(stack: Stack) -> None:
    response = stack.https("GET", "/")
    assert response.status == 200
    assert response.getheader("Server") == "nginx"  # server_tokens off: no version
    assert response.getheader("Strict-Transport-Security") == "max-age=63072000"
    assert response.getheader("X-Request-ID")


def test_live_app_sees_the_client_through_the_proxy(stack: Stack) -> None:
    """X-Forwarded-Proto/For from nginx, trusted over the socket (gunicorn) and by
    ProxyFix (TRUSTED_PROXIES=1): the app knows it is served over HTTPS, to whom."""
    connection = _LoopbackHTTPS(
        "sample.test", stack.https_port, timeout=10, context=_insecure_context()
    )
    connection.request("GET", "/whoami", headers={"Host": "sample.test"})
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert body == {"scheme": "https", "remote": "127.0.0.1", "host": "sample.test"}


def test_live_health_paths_are_routes(
    stack: Stack, kit: Any, postgres_cluster: Any, redis_server: Any
) -> None:
    assert stack.https("GET", kit.spec.http.health_path).status == 200
    # readiness checks the suite's PostgreSQL and Redis: make sure an earlier test
    # did not leave them paused, and allow a slow machine a few tries (bounded)
    for server in (postgres_cluster, redis_server):
        server.resume()
        if not server.running:
            server.start()
    statuses = []
    for _ in range(5):
        statuses.append(stack.https("GET", kit.spec.http.ready_path).status)
        if statuses[-1] == 200:
            break
        time.sleep(0.5)
    assert statuses[-1] == 200, statuses


def test_live_static_from_alias_revalidated(stack: Stack) -> None:
    response = stack.https("GET", "/static/app.css")
    assert response.status == 200
    # app.css is not fingerprinted (paths.static_fingerprinted): never immutable
    assert response.getheader("Cache-Control") == "public, max-age=3600, must-revalidate"
    # the location has its own add_header: the security headers must still be there
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Strict-Transport-Security")
    assert stack.https("GET", "/static/img/dot.svg").status == 200
    assert stack.https("GET", "/static/missing.css").status == 404
    assert stack.https("GET", "/static/img/").status in (403, 404)  # no listing


def test_live_media_from_alias(stack: Stack) -> None:
    response = stack.https("GET", "/media/hello.txt")
    assert response.status == 200
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    # a plain name can be overwritten: cached briefly, revalidated
    assert response.getheader("Cache-Control") == "public, max-age=3600, must-revalidate"


def test_live_media_named_by_uuid_is_immutable(stack: Stack) -> None:
    """An upload stored under a fresh uuid never means other bytes: a year, immutable
    (the map in the kit's nginx and LIV060 read the same pattern)."""
    response = stack.https("GET", f"/media/{UPLOAD_UUID}.txt")
    assert response.status == 200
    assert response.getheader("Cache-Control") == "public, max-age=31536000, immutable"
    assert response.getheader("X-Content-Type-Options") == "nosniff"


def test_live_body_limit(stack: Stack, kit: Any) -> None:
    limit = kit.spec.http.max_body_bytes
    assert stack.https("POST", "/upload", body=b"x" * 1024).status == 200
    assert stack.https("POST", "/upload", body=b"x" * (limit + 1)).status == 413


def test_live_http_redirects_but_serves_acme(stack: Stack) -> None:
    redirect = stack.http("/products?page=2")
    assert redirect.status == 301
    assert redirect.getheader("Location") == "https://sample.test/products?page=2"
    challenge = stack.http("/.well-known/acme-challenge/token123")
    assert challenge.status == 200
    assert challenge.data == b"challenge-ok\n"  # type: ignore[attr-defined]


def test_live_unknown_host_is_dropped(stack: Stack) -> None:
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        stack.http("/", host="evil.example")
    with pytest.raises(ssl.SSLError):  # ssl_reject_handshake
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", stack.https_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="evil.example"),
        ):
            pass


def test_live_login_rate_limited(stack: Stack, kit: Any) -> None:
    burst = kit.spec.http.rate_limits["login"].burst
    statuses = [stack.https("GET", "/login").status for _ in range(burst + 3)]
    assert statuses[0] == 200
    assert 429 in statuses, statuses


def json_lines(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise AssertionError(f"not JSON: {line!r}") from error
    return entries


def test_live_access_log_is_json_with_request_id(stack: Stack, kit: Any) -> None:
    agent = 'probe "quoted" back\\slash'
    stack.https("GET", "/api/items", headers={"User-Agent": agent})
    nginx_log = Path(kit.spec.resolve(kit.spec.deploy.log_dir)) / "nginx.access.log"

    def mine(entries: list[dict[str, Any]], uri_key: str) -> list[dict[str, Any]]:
        return [
            e for e in entries if e.get(uri_key) == "/api/items" and e.get("user_agent") == agent
        ]

    # Both servers write their line after the response has left: wait for them (bounded).
    wait_for(
        lambda: (
            bool(mine(json_lines(nginx_log), "uri"))
            and bool(mine(json_lines(stack.gunicorn_log), "path"))
        ),
        10,
        "the access log lines",
    )
    # quotes and backslashes in headers cannot break either JSON line (json_lines parses
    # every line), and both carry the same request id
    nginx_entry = mine(json_lines(nginx_log), "uri")[-1]
    gunicorn_entry = next(
        e for e in reversed(mine(json_lines(stack.gunicorn_log), "path")) if "duration_us" in e
    )
    assert nginx_entry["request_id"]
    assert nginx_entry["request_id"] == gunicorn_entry["request_id"]


def test_live_one_access_line_per_request(stack: Stack) -> None:
    """gunicorn writes the access line; the app's own line is switched off by the
    rendered config, so the app server's log has exactly one line per request."""
    request_id = "one-line-per-request"
    stack.https("GET", "/api/items", headers={"X-Request-ID": request_id})

    def lines() -> list[dict[str, Any]]:
        return [
            e
            for e in json_lines(stack.gunicorn_log)
            if e.get("request_id") == request_id and e.get("path") == "/api/items"
        ]

    wait_for(lambda: bool(lines()), 10, "the access log line")
    time.sleep(0.3)  # a second (duplicate) line would follow within milliseconds
    assert len(lines()) == 1, lines()
