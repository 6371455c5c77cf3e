"""The kit with ``server.kind = "granian"``: every launcher runs the one command
:func:`flaskprod.spec.servers.granian_argv` computes (read back from the rendered
files with real parsers), no gunicorn.conf.py, nginx's upstream is granian's bind,
and a live nginx -> unix socket -> granian, started as the systemd unit says,
answers readiness with the suite's PostgreSQL and Redis."""

from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crossplane
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from kit_tools import ToolFinder, write_wrapper
from test_validate_nginx import (
    Stack,
    _insecure_context,
    _LoopbackHTTPS,
    overlay_ports,
    read_env_file,
    stop,
    wait_for,
)

from flaskprod.kit.artifacts import server_commands
from flaskprod.kit.render import render_kit
from flaskprod.kit.write import plan_kit, write_plan
from flaskprod.stack.ports import free_ports

GRANIAN = {"server": {"kind": "granian", "workers": 3, "workers_lifetime": 3600}}


@pytest.fixture(scope="module")
def granian_kit(make_kit: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_kit(tmp_path_factory.mktemp("granian-kit"), GRANIAN, {})


def _unit(kit: Any) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(kit.path(f"deploy/systemd/{kit.spec.app.name}.service").read_text())
    return unit


def _cmd(kit: Any) -> list[str]:
    parser = DockerfileParser(path=str(kit.path("deploy/Dockerfile")))
    (cmd,) = [i["value"] for i in parser.structure if i["instruction"] == "CMD"]
    return json.loads(cmd)  # type: ignore[no-any-return]


def _procfile(kit: Any) -> dict[str, str]:
    lines = kit.path("deploy/Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def _granian(launcher: list[str]) -> list[str]:
    """granian's argv inside the kit's launch line ``/bin/sh -c '... exec granian ...'``
    (systemd's ``$$`` is the shell's ``$``)."""
    assert launcher[:2] == ["/bin/sh", "-c"], launcher
    words = shlex.split(launcher[2].replace("$$", "$"))
    return words[words.index("exec") + 1 :]


def _without_listen(argv: list[str]) -> list[str]:
    """The flags after the executable, without where they listen (the one difference)."""
    rest = argv[1:]
    for flag in ("--uds", "--uds-permissions", "--host", "--port"):
        if flag in rest:
            at = rest.index(flag)
            del rest[at : at + 2]
    return rest


def test_every_launcher_runs_the_same_granian(granian_kit: Any) -> None:
    kit = granian_kit
    unit = _unit(kit)
    systemd_line = shlex.split(unit["Service"]["ExecStart"])
    docker_line = _cmd(kit)
    paas_line = shlex.split(_procfile(kit)["web"])
    venv = kit.spec.resolve(kit.spec.deploy.venv)
    # the same flags and target everywhere, exactly what spec/servers.py computes
    expected = server_commands(kit.spec, venv=venv)
    assert [*systemd_line[:2], systemd_line[2].replace("$$", "$")] == expected["systemd"]
    assert docker_line == expected["container"] and paas_line == expected["paas"]
    systemd, docker, paas = (_granian(line) for line in (systemd_line, docker_line, paas_line))
    # granian itself, from the app's environment: nothing of flaskprod runs there
    assert systemd[0] == f"{venv}/bin/granian" and docker[0] == paas[0] == "granian"
    for line in (systemd_line, docker_line, paas_line):
        assert "flaskprod" not in line[2]
    assert _without_listen(systemd) == _without_listen(docker) == _without_listen(paas)
    # the spec's settings, mapped (WEB_CONCURRENCY overrides the count)
    assert _flag(systemd, "--workers") == "${WEB_CONCURRENCY:-3}"
    assert _flag(systemd, "--blocking-threads") == str(kit.spec.server.threads)
    assert _flag(systemd, "--workers-kill-timeout") == str(kit.spec.server.graceful_timeout)
    assert _flag(systemd, "--workers-lifetime") == "3600"
    assert "--respawn-failed-workers" in systemd and _flag(systemd, "--interface") == "wsgi"
    assert systemd[-2:] == ["--factory", "sample:create_app"]  # 'sample:create_app()'
    # where each listens: the spec's socket; the container port; the platform's PORT
    assert _flag(systemd, "--uds") == kit.spec.socket_path
    assert _flag(systemd, "--uds-permissions") == "0660"
    assert (_flag(docker, "--host"), _flag(docker, "--port")) == (
        "0.0.0.0",
        str(kit.spec.container.port),
    )
    assert _flag(paas, "--port") == "$PORT"


def test_no_gunicorn_left_in_the_kit(granian_kit: Any) -> None:
    kit = granian_kit
    assert "deploy/gunicorn.conf.py" not in kit.files
    assert not kit.path("deploy/gunicorn.conf.py").exists()
    unit = _unit(kit)["Service"]
    assert unit["Type"] == "exec"  # granian has no sd_notify
    assert unit["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    compose = yaml.safe_load(kit.path("deploy/compose.yaml").read_text())
    assert "GUNICORN_BIND" not in compose["x-app"]["environment"]
    env = read_env_file(kit.path("deploy/.env.example"))
    assert "GUNICORN_BIND" not in env and "WEB_CONCURRENCY" in env
    for text in (kit.files[path] for path in kit.files if path != ".github/workflows/sample.yml"):
        assert "gunicorn " not in text.replace("gunicorn.sock", ""), text[:400]


def test_nginx_upstream_is_granians_bind(granian_kit: Any) -> None:
    kit = granian_kit
    site = crossplane.parse(
        str(kit.path(f"deploy/nginx/{kit.spec.app.name}.conf")),
        single=True,
        comments=False,
        check_ctx=False,
    )
    directives = site["config"][0]["parsed"]
    (upstream,) = [d for d in directives if d["directive"] == "upstream"]
    servers = [d["args"][0] for d in upstream["block"] if d["directive"] == "server"]
    systemd = _granian(shlex.split(_unit(kit)["Service"]["ExecStart"]))
    assert servers == [f"unix:{_flag(systemd, '--uds')}"] == [kit.spec.bind]
    # compose: nginx's upstream port is the port the image's granian listens on
    compose_site = kit.path(f"deploy/nginx/{kit.spec.app.name}.compose.conf").read_text()
    assert f"server web:{_flag(_granian(_cmd(kit)), '--port')} " in compose_site


def test_pool_and_timeouts_follow_the_spec(granian_kit: Any) -> None:
    kit = granian_kit
    env = read_env_file(kit.path("deploy/.env.example"))
    # a granian worker runs `threads` requests at once: the pool per worker follows
    assert env["FLASKPROD_SQLALCHEMY_POOL_SIZE"] == str(kit.spec.server.threads)
    assert env["FLASKPROD_SQLALCHEMY_MAX_OVERFLOW"] == "1"
    # granian has no request timeout: the watchdog's is server.timeout, under nginx's
    assert env["FLASKPROD_REQUEST_TIMEOUT"] == str(kit.spec.server.timeout)
    assert (
        f"proxy_read_timeout {kit.spec.server.timeout + 5}s;"
        in kit.files[f"deploy/nginx/{kit.spec.app.name}.conf"]
    )
    pod = yaml.safe_load(kit.path("deploy/k8s/deployment.yaml").read_text())["spec"]["template"]
    systemd = _granian(shlex.split(_unit(kit)["Service"]["ExecStart"]))
    kill = int(_flag(systemd, "--workers-kill-timeout"))
    assert pod["spec"]["terminationGracePeriodSeconds"] > kit.spec.container.pre_stop_seconds + kill
    assert int(_unit(kit)["Service"]["TimeoutStopSec"]) > kill


def test_switching_server_removes_and_restores_gunicorn_conf(tmp_path: Path) -> None:
    """The lock file knows gunicorn.conf.py: switching to granian removes it (unedited),
    switching back renders it again; an edited copy is kept, not deleted."""
    from flaskprod.spec.model import Spec

    base = {"app": {"target": "wsgi:app", "name": "sample"}}
    gunicorn = Spec.model_validate({**base, "server": {"kind": "gunicorn"}})
    granian = Spec.model_validate({**base, "server": {"kind": "granian"}})

    def render(spec: Spec) -> list[tuple[str, str]]:
        plan = plan_kit(tmp_path, render_kit(spec), {})
        return [(c.path, c.action) for c in write_plan(plan) if c.path.endswith(".conf.py")]

    render(gunicorn)
    conf = tmp_path / "deploy/gunicorn.conf.py"
    assert conf.is_file()
    assert render(granian) == [("deploy/gunicorn.conf.py", "remove")]
    assert not conf.exists()
    assert render(gunicorn) == [("deploy/gunicorn.conf.py", "create")]
    conf.write_text(conf.read_text() + "# my edit\n")
    assert render(granian) == [("deploy/gunicorn.conf.py", "orphan")]
    assert conf.read_text().endswith("# my edit\n")


@pytest.mark.parametrize("workers", [None, 3])
def test_the_launch_line_sets_the_workers_of_the_machine(
    tmp_path: Path, workers: int | None
) -> None:
    """The kit's shell line, run by a real sh with a stand-in granian that prints its
    arguments: WEB_CONCURRENCY wins, then server.workers, then the cores (at least 2)."""
    from flaskprod.spec.model import Spec
    from flaskprod.spec.servers import Listen, granian_shell

    fake = tmp_path / "granian"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    server = {"kind": "granian", **({"workers": workers} if workers else {})}
    spec = Spec.model_validate({"app": {"target": "wsgi:app", "name": "w"}, "server": server})
    line = granian_shell(spec, Listen(host="0.0.0.0", port="$PORT"), granian=str(fake))

    def run(**env: str) -> list[str]:
        result = subprocess.run(
            ["/bin/sh", "-c", line], env={"PATH": os.environ["PATH"], "PORT": "9000", **env},
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
        return result.stdout.splitlines()

    argv = run()
    cores = max(2, os.cpu_count() or 1)
    assert _flag(argv, "--workers") == str(workers or cores)
    assert _flag(argv, "--port") == "9000" and argv[-1] == "wsgi:app"
    assert _flag(run(WEB_CONCURRENCY="5"), "--workers") == "5"


# ---- live: nginx -> unix socket -> granian, as systemd and nginx run them --------------


@pytest.fixture(scope="module")
def nginx_binary(tool: ToolFinder) -> str:
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if Path(candidate).exists():
            return candidate
    return str(tool("nginx", "apt-get install nginx"))


@pytest.fixture(scope="module")
def live(
    granian_kit: Any,
    nginx_binary: str,
    sample_env: dict[str, str],
    postgres_cluster: Any,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    kit = granian_kit
    values = read_env_file(Path(kit.spec.resolve(kit.spec.deploy.env_file)))
    values |= {
        "SECRET_KEY": "k" * 48,
        "DATABASE_URL": postgres_cluster.create_database(f"kit_granian_{os.getpid()}"),
        "REDIS_URL": redis_server.url(),
    }
    env = {**sample_env, **{key: value for key, value in values.items() if value}}
    # The unit's command as systemd runs it ($$ -> $), with this Python's granian for
    # the server's venv/bin/granian.
    line = shlex.split(_unit(kit)["Service"]["ExecStart"])
    venv = kit.spec.resolve(kit.spec.deploy.venv)
    granian = str(Path(sys.executable).parent / "granian")
    script = line[2].replace("$$", "$").replace(f"{venv}/bin/granian", granian)
    argv = [*line[:2], script]
    socket_path = Path(kit.spec.socket_path or "")
    socket_path.unlink(missing_ok=True)
    prefix = tmp_path_factory.mktemp("granian-live")
    log = prefix / "granian.log"
    with log.open("wb") as out:
        server = subprocess.Popen(argv, cwd=kit.root, env=env, stdout=out, stderr=subprocess.STDOUT)
    http_port, https_port = free_ports(2)
    site = prefix / "site.conf"
    site.write_text(
        overlay_ports(
            kit.path(f"deploy/nginx/{kit.spec.app.name}.conf").read_text(), http_port, https_port
        )
    )
    front = None
    try:
        wait_for(lambda: socket_path.exists() or server.poll() is not None, 30, "granian")
        assert server.poll() is None, log.read_text()
        conf = write_wrapper(prefix, site, as_root=True)
        front = subprocess.Popen(
            [nginx_binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack = Stack(http_port, https_port, log)

        def ready() -> bool:
            try:
                return stack.https("GET", kit.spec.http.ready_path).status == 200
            except OSError:
                return front.poll() is not None

        wait_for(ready, 30, "readiness through nginx")
        assert front.poll() is None
        yield stack
    finally:
        if front is not None:
            stop(front)
        stop(server)


def test_live_nginx_to_granian_over_the_socket(granian_kit: Any, live: Stack) -> None:
    kit = granian_kit
    assert oct(Path(kit.spec.socket_path or "").stat().st_mode & 0o777) == "0o660"
    assert live.https("GET", kit.spec.http.ready_path).status == 200
    assert live.https("GET", "/api/items").status == 200
    assert live.https("GET", "/static/app.css").status == 200
    upload = live.https("POST", "/upload", body=b"x" * 1000)
    assert upload.status == 200
    # what the app sees through nginx and the socket: https, the client, the host
    connection = _LoopbackHTTPS(
        "sample.test", live.https_port, timeout=10, context=_insecure_context()
    )
    connection.request("GET", "/whoami", headers={"Host": "sample.test"})
    body = json.loads(connection.getresponse().read())
    connection.close()
    assert body == {"scheme": "https", "remote": "127.0.0.1", "host": "sample.test"}
    log = live.gunicorn_log.read_text(errors="replace")  # granian's output here
    assert log.count("Spawning worker-") == 3, log[-2000:]  # --workers 3 from the spec
    # the app's own JSON access line (granian has none of its own in the kit)
    assert '"logger":"flaskprod.access"' in log.replace(" ", ""), log[-2000:]


# ---- the request watchdog under granian ---------------------------------------------------

SLOW_APP = """
import os, time
from flask import Flask
from flaskprod import Production

app = Flask(__name__)
Production(app)


@app.get("/pid")
def pid():
    return str(os.getpid())


@app.get("/slow")
def slow():
    time.sleep(60)
    return "late"
"""


def test_a_hung_request_ends_its_worker_and_granian_replaces_it(
    tmp_path: Path, sample_env: dict[str, str]
) -> None:
    """granian has no request timeout: the app's watchdog (wsgi.multithread is true
    under granian's blocking threads) ends the worker at FLASKPROD_REQUEST_TIMEOUT, and
    the kit's --respawn-failed-workers makes granian start another; the server stays up."""
    import time

    import httpx

    from flaskprod.spec.model import Spec
    from flaskprod.spec.servers import Listen, granian_argv

    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    spec = Spec.model_validate(
        {
            "app": {"target": "slowapp:app", "name": "slow"},
            "server": {"kind": "granian", "workers": 1, "threads": 2, "timeout": 2},
        }
    )
    sock = tmp_path / "granian.sock"
    argv = granian_argv(
        spec, Listen(uds=str(sock)), launcher=[str(Path(sys.executable).parent / "granian")]
    )
    env = {**sample_env, "FLASKPROD_REQUEST_TIMEOUT": str(spec.server.timeout)}
    log = tmp_path / "granian.log"
    with log.open("wb") as out:
        server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)

    def client(timeout: float) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(sock))
        return httpx.Client(transport=transport, base_url="http://localhost", timeout=timeout)

    def pid() -> str | None:
        try:
            with client(3) as c:
                return c.get("/pid").text
        except httpx.HTTPError:
            return None

    try:
        wait_for(lambda: pid() is not None or server.poll() is not None, 30, "granian")
        first = pid()
        assert first is not None, log.read_text()
        began = time.monotonic()
        with client(30) as c, pytest.raises(httpx.HTTPError):
            c.get("/slow")  # the worker exits under it: no response
        assert time.monotonic() - began < 15
        wait_for(lambda: pid() not in (None, first), 30, "a new granian worker")
        assert server.poll() is None, log.read_text()[-2000:]
        text = log.read_text(errors="replace")
        assert "flaskprod.watchdog" in text and "/slow" in text, text[-2000:]
    finally:
        stop(server)
