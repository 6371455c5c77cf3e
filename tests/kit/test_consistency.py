"""Cross-artifact consistency, read back from the rendered files with real parsers
(crossplane for nginx, PyYAML for compose/Kubernetes, dockerfile-parse, configparser
for systemd, gunicorn's own config loading): the layers cannot disagree."""

from __future__ import annotations

import configparser
import functools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import crossplane
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from flaskprod.spec.model import parse_size

APP_FACTS = """
import json, sys
from sample import create_app
app = create_app()
client = app.test_client()
paths = json.loads(sys.argv[1])
print(json.dumps({
    "static_folder": app.static_folder,
    "static_url_path": app.static_url_path,
    "status": {p: client.get(p).status_code for p in paths},
}))
"""


# ---- readers ----------------------------------------------------------------------


def nginx_directives(path: Path) -> list[dict[str, Any]]:
    """Every directive of the site, flattened, each with its enclosing block names."""
    parsed = crossplane.parse(str(path), single=True, comments=False, check_ctx=False)
    assert parsed["status"] == "ok", parsed["errors"]
    flat: list[dict[str, Any]] = []

    def walk(block: list[dict[str, Any]], parents: list[dict[str, Any]]) -> None:
        for directive in block:
            flat.append({**directive, "parents": parents})
            if "block" in directive:
                walk(directive["block"], [*parents, directive])

    walk(parsed["config"][0]["parsed"], [])
    return flat


def values(directives: list[dict[str, Any]], name: str) -> list[list[str]]:
    return [d["args"] for d in directives if d["directive"] == name]


def app_server(directives: list[dict[str, Any]]) -> dict[str, Any]:
    """The HTTPS server block that proxies to the app."""
    for d in directives:
        if d["directive"] == "server" and any(
            c["directive"] == "ssl_certificate" for c in d.get("block", [])
        ):
            return d
    raise AssertionError("no HTTPS server block")


def location(server: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    for d in server["block"]:
        if d["directive"] == "location" and d["args"] == list(args):
            return d["block"]  # type: ignore[no-any-return]
    raise AssertionError(f"no location {args}")


def block_value(block: list[dict[str, Any]], name: str) -> list[str]:
    found = [d["args"] for d in block if d["directive"] == name]
    assert len(found) == 1, (name, found)
    return found[0]


@functools.cache
def _gunicorn_settings(config: Path, env: tuple[tuple[str, str], ...]) -> str:
    code = (
        "import json, runpy, sys\n"
        "ns = runpy.run_path(sys.argv[1])\n"
        "print(json.dumps({k: v for k, v in ns.items() if isinstance(v, (str, int, bool))}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **dict(env)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def gunicorn_settings(kit: Any, **env: str) -> dict[str, Any]:
    """The config file as gunicorn evaluates it (a clean environment plus ``env``)."""
    settings: dict[str, Any] = json.loads(
        _gunicorn_settings(kit.path("deploy/gunicorn.conf.py"), tuple(sorted(env.items())))
    )
    return settings


def env_example(kit: Any) -> dict[str, str]:
    values = {}
    for line in kit.path("deploy/.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def compose(kit: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(kit.path("deploy/compose.yaml").read_text())
    return data


def k8s(kit: Any, name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(kit.path(f"deploy/k8s/{name}.yaml").read_text())
    return data


def k8s_container(kit: Any) -> dict[str, Any]:
    container: dict[str, Any] = k8s(kit, "deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def k8s_env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def systemd_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def dockerfile(kit: Any) -> DockerfileParser:
    parser = DockerfileParser(path=str(kit.path("deploy/Dockerfile")))
    return parser


def dockerfile_instructions(kit: Any, name: str) -> list[str]:
    return [i["value"] for i in dockerfile(kit).structure if i["instruction"] == name]


@pytest.fixture(scope="module")
def site(kit: Any) -> list[dict[str, Any]]:
    return nginx_directives(kit.path(f"deploy/nginx/{kit.spec.app.name}.conf"))


@pytest.fixture(scope="module")
def compose_site(kit: Any) -> list[dict[str, Any]]:
    return nginx_directives(kit.path(f"deploy/nginx/{kit.spec.app.name}.compose.conf"))


def healthcheck_path(command: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:\d+(/[^'\"]*)", command)
    assert match, command
    return match.group(1)


@pytest.fixture(scope="module")
def app_facts(kit: Any, sample_env: dict[str, str]) -> dict[str, Any]:
    """Facts of the sample app itself, and the status of every health path the kit uses."""
    paths = {kit.spec.http.health_path, kit.spec.http.ready_path}
    healthcheck = dockerfile_instructions(kit, "HEALTHCHECK")[0]
    paths.add(healthcheck_path(healthcheck))
    paths.add(healthcheck_path(" ".join(compose(kit)["services"]["web"]["healthcheck"]["test"])))
    container = k8s_container(kit)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        paths.add(container[probe]["httpGet"]["path"])
    result = subprocess.run(
        [sys.executable, "-c", APP_FACTS, json.dumps(sorted(paths))],
        cwd=kit.root,
        env=sample_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    facts: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return facts


# ---- the upstream is gunicorn's bind ------------------------------------------------


def test_nginx_upstream_is_gunicorn_bind(kit: Any, site: list[dict[str, Any]]) -> None:
    upstream = [d for d in site if d["directive"] == "upstream"]
    assert len(upstream) == 1
    servers = [d["args"][0] for d in upstream[0]["block"] if d["directive"] == "server"]
    bind = gunicorn_settings(kit)["bind"]
    assert servers == [bind]
    assert bind == kit.spec.bind
    # every proxy_pass goes to that upstream
    name = upstream[0]["args"][0]
    assert {a[0] for a in values(site, "proxy_pass")} == {f"http://{name}"}


def test_compose_upstream_is_the_container_bind(
    kit: Any, compose_site: list[dict[str, Any]]
) -> None:
    upstream = next(d for d in compose_site if d["directive"] == "upstream")
    server = next(d["args"][0] for d in upstream["block"] if d["directive"] == "server")
    web = compose(kit)["services"]["web"]
    bind = web["environment"]["GUNICORN_BIND"]
    port = bind.rpartition(":")[2]
    assert server == f"web:{port}"  # the service name and the port gunicorn binds there
    assert gunicorn_settings(kit, GUNICORN_BIND=bind)["bind"] == bind
    docker_env = " ".join(dockerfile_instructions(kit, "ENV"))
    assert f"GUNICORN_BIND={bind}" in docker_env
    assert dockerfile_instructions(kit, "EXPOSE") == [port]
    container = k8s_container(kit)
    assert container["ports"][0]["containerPort"] == int(port)


def test_systemd_socket_lives_in_the_runtime_directory(kit: Any) -> None:
    """With the default bind, the socket's folder is the unit's RuntimeDirectory."""
    from flaskprod.kit.render import render_kit
    from flaskprod.spec.model import Spec

    spec = Spec.model_validate({"app": {"target": "sample:create_app()", "name": "sample"}})
    files = render_kit(spec)
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(files["deploy/systemd/sample.service"])
    socket = spec.socket_path or ""
    assert Path(socket).parent == Path("/run") / unit["Service"]["RuntimeDirectory"]
    assert f"server {spec.bind} " in files["deploy/nginx/sample.conf"]


# ---- one body limit -----------------------------------------------------------------


def test_body_limit_is_the_same_everywhere(kit: Any, site: list[dict[str, Any]]) -> None:
    (nginx_limit,) = values(site, "client_max_body_size")
    limit = parse_size(nginx_limit[0])
    assert limit == kit.spec.http.max_body_bytes
    assert int(env_example(kit)["MAX_CONTENT_LENGTH"]) == limit
    assert int(compose(kit)["services"]["web"]["environment"]["MAX_CONTENT_LENGTH"]) == limit
    assert int(k8s_env(k8s_container(kit))["MAX_CONTENT_LENGTH"]) == limit
    ingress = k8s(kit, "ingress")["metadata"]["annotations"]
    assert parse_size(ingress["nginx.ingress.kubernetes.io/proxy-body-size"]) == limit


# ---- static and media ---------------------------------------------------------------


def test_static_alias_is_the_apps_static_folder(
    kit: Any, site: list[dict[str, Any]], app_facts: dict[str, Any]
) -> None:
    server = app_server(site)
    url = app_facts["static_url_path"] + "/"
    block = location(server, "^~", url)
    alias = block_value(block, "alias")[0]
    # The app's folder (here, in the project) is the alias on the server: same
    # relative place under the install root, and both end in "/" as the location does.
    relative = Path(app_facts["static_folder"]).relative_to(kit.root)
    assert alias == f"{kit.spec.app.install_dir}/{relative}/"
    assert Path(alias).is_dir()  # the spec's root is the project here
    assert url == kit.spec.paths.static_url
    # compose mounts the project's folder at exactly that path
    volumes = compose(kit)["services"]["nginx"]["volumes"]
    assert f"../{relative}:{alias.rstrip('/')}:ro" in volumes
    # the image keeps the project at the same root
    assert dockerfile_instructions(kit, "WORKDIR")[-1] == kit.spec.app.install_dir


def test_media_alias_is_the_media_folder(kit: Any, site: list[dict[str, Any]]) -> None:
    block = location(app_server(site), "^~", kit.spec.paths.media_url)
    alias = block_value(block, "alias")[0]
    assert alias == kit.spec.media_dir.rstrip("/") + "/"
    unit = systemd_unit(kit.path(f"deploy/systemd/{kit.spec.app.name}.service"))
    assert alias.rstrip("/") in unit["Service"]["ReadWritePaths"].split()
    web = compose(kit)["services"]["web"]
    assert f"media:{alias.rstrip('/')}" in web["volumes"]
    mounts = k8s_container(kit)["volumeMounts"]
    assert {"name": "media", "mountPath": alias.rstrip("/")} in mounts


def test_logs_go_to_the_spec_log_dir(kit: Any, site: list[dict[str, Any]]) -> None:
    log_dir = kit.spec.resolve(kit.spec.deploy.log_dir)
    logs = [a for a in values(site, "access_log") + values(site, "error_log") if a != ["off"]]
    assert logs
    for args in logs:
        assert args[0].startswith(log_dir + "/"), args
    unit = systemd_unit(kit.path(f"deploy/systemd/{kit.spec.app.name}.service"))
    assert log_dir in unit["Service"]["ReadWritePaths"].split()


# ---- health paths are routes of the app -----------------------------------------------


def test_health_paths_exist_in_the_app(kit: Any, app_facts: dict[str, Any]) -> None:
    status = app_facts["status"]
    assert status[kit.spec.http.health_path] == 200
    # readiness has no database here: 503 is an answer, 404 would mean no such route
    assert status[kit.spec.http.ready_path] in (200, 503)
    assert all(code != 404 for code in status.values()), status


def test_probes_use_the_spec_paths(kit: Any) -> None:
    spec = kit.spec
    container = k8s_container(kit)
    assert container["livenessProbe"]["httpGet"]["path"] == spec.http.health_path
    assert container["startupProbe"]["httpGet"]["path"] == spec.http.health_path
    assert container["readinessProbe"]["httpGet"]["path"] == spec.http.ready_path
    assert healthcheck_path(dockerfile_instructions(kit, "HEALTHCHECK")[0]) == spec.http.health_path
    web = compose(kit)["services"]["web"]
    assert healthcheck_path(" ".join(web["healthcheck"]["test"])) == spec.http.health_path
    env = env_example(kit)
    assert env["FLASKPROD_HEALTH_PATH"] == spec.http.health_path
    assert env["FLASKPROD_READY_PATH"] == spec.http.ready_path


# ---- timeouts ---------------------------------------------------------------------------


def test_timeouts_are_aligned(kit: Any, site: list[dict[str, Any]]) -> None:
    settings = gunicorn_settings(kit)
    (read_timeout,) = values(site, "proxy_read_timeout")
    assert int(read_timeout[0].rstrip("s")) > settings["timeout"]
    # The request watchdog ends a hung gthread request at gunicorn's timeout, so that
    # nginx answers 502 (retrying elsewhere) before its own 504.
    assert int(env_example(kit)["FLASKPROD_REQUEST_TIMEOUT"]) == settings["timeout"]
    pod = k8s(kit, "deployment")["spec"]["template"]["spec"]
    pre_stop = int(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pre_stop == kit.spec.container.pre_stop_seconds
    assert pod["terminationGracePeriodSeconds"] > pre_stop + settings["graceful_timeout"]
    unit = systemd_unit(kit.path(f"deploy/systemd/{kit.spec.app.name}.service"))
    assert int(unit["Service"]["TimeoutStopSec"]) > settings["graceful_timeout"]


# ---- one command line -------------------------------------------------------------------


def test_every_launcher_runs_the_same_gunicorn(kit: Any) -> None:
    expected = ["-c", "deploy/gunicorn.conf.py", kit.spec.app.target]
    cmd = json.loads(dockerfile_instructions(kit, "CMD")[0])
    assert cmd == ["gunicorn", *expected]
    procfile = dict(
        line.split(": ", 1)
        for line in kit.path("deploy/Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert shlex.split(procfile["web"]) == ["gunicorn", *expected]
    unit = systemd_unit(kit.path(f"deploy/systemd/{kit.spec.app.name}.service"))
    exec_start = unit["Service"]["ExecStart"].split()
    root = kit.spec.app.install_dir
    assert exec_start[1:] == ["-c", f"{root}/deploy/gunicorn.conf.py", kit.spec.app.target]
    assert unit["Service"]["WorkingDirectory"] == root
    # the app in FLASK_APP (every Flask reads it; --app needs Flask >= 2.2): in front of
    # the shell's command, in the image's environment for compose and Kubernetes
    migrate = ["flask", "db", "upgrade"]
    assert shlex.split(procfile["release"]) == [f"FLASK_APP={kit.spec.app.target}", *migrate]
    assert f'FLASK_APP="{kit.spec.app.target}"' in kit.path("deploy/Dockerfile").read_text()
    assert compose(kit)["services"]["migrate"]["command"] == migrate
    job = k8s(kit, "migrate-job")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == migrate
    assert job["image"] == k8s_container(kit)["image"]


# ---- security headers are sent once -----------------------------------------------------


def test_security_headers_sent_by_nginx_only(kit: Any, site: list[dict[str, Any]]) -> None:
    assert kit.spec.http.security_headers == "nginx"
    server = app_server(site)
    headers = {a[0] for a in values(server["block"], "add_header")}
    assert "Strict-Transport-Security" in headers
    # every location with its own add_header repeats the server's headers
    for d in server["block"]:
        if d["directive"] == "location":
            own = {a[0] for a in values(d["block"], "add_header")}
            assert not own or headers <= own, (d["args"], headers - own)
    assert env_example(kit)["FLASKPROD_SECURITY_HEADERS"] == "nginx"
    assert compose(kit)["services"]["web"]["environment"]["FLASKPROD_SECURITY_HEADERS"] == "nginx"


APP_HEADERS = """
import json
from sample import create_app
app = create_app()
response = app.test_client().get("/", base_url="https://sample.test")
print(json.dumps(dict(response.headers)))
"""


def test_the_app_sends_the_headers_nginx_would(
    kit: Any, make_kit: Any, sample_env: dict[str, str], tmp_path: Path
) -> None:
    """Moving the security headers from nginx to the app changes who sends them, not
    what is sent: the app, configured by the rendered env file, sends nginx's values."""
    server = app_server(nginx_directives(kit.path(f"deploy/nginx/{kit.spec.app.name}.conf")))
    nginx_headers = {
        args[0]: args[1]
        for args in values(server["block"], "add_header")
        if args[0] != "X-Request-ID"
    }
    app_kit = make_kit(tmp_path, {"http": {"security_headers": "app"}}, {})
    env = dict(sample_env)
    for line in app_kit.path("deploy/.env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if line and not line.startswith("#") and value and key != "FLASKPROD_ENV":
            env[key] = value[1:-1] if value.startswith('"') else value
    assert env["FLASKPROD_SECURITY_HEADERS"] == "app"
    result = subprocess.run(
        [sys.executable, "-c", APP_HEADERS],
        cwd=app_kit.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout.strip().splitlines()[-1])
    assert {name: sent.get(name) for name in nginx_headers} == nginx_headers
