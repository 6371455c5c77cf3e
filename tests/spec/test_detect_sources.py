"""Detection from everything a project already says (issue #12, items 2 and 11), on
small projects written here and imported for real in a child process:

- the app's own health routes (``/healthz`` + ``/readyz``, ``/up`` + ``/up/databases``)
  become the spec's paths with ``health_source = "app"``; none: ``"kit"``;
- the login route from the URL map (endpoint ``auth.login`` at ``/auth/login``);
- ``FLASK_APP`` in ``.flaskenv`` wins over a scan that would pick another app;
- the target from Procfile / scripts / Dockerfile / compose when no scan finds one;
- a project in a subfolder of a git repository: named after the repository, its
  workflow at the repository's root, working in the subfolder.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from project_files import write

from flaskprod.errors import ProjectError
from flaskprod.kit.commands import build_spec, render_files
from flaskprod.launch.targets import command_target
from flaskprod.spec.detect import detect_project

FLASKPROD = str(Path(sys.executable).parent / "flaskprod")

K8S_STYLE = {
    "app.py": """
        from flask import Blueprint, Flask

        auth = Blueprint("auth", __name__)

        @auth.route("/login", methods=["GET", "POST"])
        def login():
            return "form"

        app = Flask(__name__)
        app.register_blueprint(auth, url_prefix="/auth")

        @app.get("/")
        def index():
            return "home"

        @app.get("/healthz")
        def healthz():
            return "ok"

        @app.get("/readyz")
        def readyz():
            return "ready"
    """,
    "requirements.txt": "flask\n",
}


def test_the_apps_own_health_and_login_routes(tmp_path: Path) -> None:
    project = detect_project(write(tmp_path / "k8s", K8S_STYLE))
    assert project.login_path == "/auth/login"
    spec = build_spec(project)
    http = spec.http
    assert (http.health_source, http.health_path, http.ready_path) == ("app", "/healthz", "/readyz")
    assert http.login_path == "/auth/login"
    files, _ = render_files(spec, project)
    assert "flaskprod_wsgi.py" not in files
    assert "location = /auth/login" in files["deploy/nginx/k8s.conf"]
    deployment = next(iter(yaml.safe_load_all(files["deploy/k8s/deployment.yaml"])))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "/healthz" in files["deploy/Dockerfile"].split("HEALTHCHECK", 1)[1]
    assert "/healthz" in files["deploy/compose.yaml"].split("healthcheck:", 1)[1]


def test_rails_style_up_routes_and_an_app_without_any(tmp_path: Path) -> None:
    rails = (
        K8S_STYLE["app.py"].replace('"/healthz"', '"/up"').replace('"/readyz"', '"/up/databases"')
    )
    project = detect_project(write(tmp_path / "up", {**K8S_STYLE, "app.py": rails}))
    assert build_spec(project).http.health_path == "/up"
    assert build_spec(project).http.ready_path == "/up/databases"
    bare = K8S_STYLE["app.py"].split('@app.get("/healthz")')[0]
    project = detect_project(write(tmp_path / "bare", {**K8S_STYLE, "app.py": bare}))
    spec = build_spec(project)
    assert (spec.http.health_source, spec.http.health_path) == ("kit", "/health")
    files, _ = render_files(spec, project)
    assert "flaskprod_wsgi:application" in files["deploy/Procfile"]


def test_flask_app_in_flaskenv_wins_over_the_scan(tmp_path: Path) -> None:
    # microblog's shape: a package with a factory, and the module FLASK_APP names.
    root = write(
        tmp_path / "blog",
        {
            "app/__init__.py": """
                from flask import Flask

                def create_app():
                    return Flask(__name__)
            """,
            "blog.py": "from app import create_app\n\napp = create_app()\n",
            ".flaskenv": "FLASK_APP=blog.py\nFLASK_DEBUG=1\n",
        },
    )
    assert detect_project(root, introspect=False).target == "blog:app"
    (root / ".flaskenv").write_text("export FLASK_APP='nothere.py'\n")
    with pytest.raises(ProjectError, match=r"FLASK_APP in \.flaskenv nothere: no module"):
        detect_project(root, introspect=False)


@pytest.mark.parametrize(
    ("files", "target"),
    [
        # docker-flask-example: the app is in hello/app.py, named only by the Dockerfile.
        (
            {
                "Dockerfile": 'FROM python\nCMD ["gunicorn", "-c", "python:config.gunicorn", '
                '"hello.app:create_app()"]\n'
            },
            "hello.app:create_app()",
        ),
        (
            {"Procfile": "release: flask db upgrade\nweb: gunicorn -w 4 hello.app:app\n"},
            "hello.app:app",
        ),
        (
            {
                "boot.sh": "#!/bin/sh\nflask db upgrade\nexec granian --interface wsgi \\\n"
                "  --factory --host 0.0.0.0 hello.app:create_app\n"
            },
            "hello.app:create_app()",
        ),
        (
            {
                "docker-compose.yml": "services:\n  web:\n    command: [waitress-serve, --call,"
                " 'hello.app:create_app']\n"
            },
            "hello.app:create_app()",
        ),
    ],
)
def test_the_target_from_the_launchers(tmp_path: Path, files: dict[str, str], target: str) -> None:
    hello = """
        from flask import Flask

        def create_app():
            return Flask(__name__)

        app = create_app()
    """
    root = write(tmp_path / "p", {"hello/__init__.py": "", "hello/app.py": hello, **files})
    assert detect_project(root, introspect=False).target == target


def test_no_launcher_no_app_still_says_so(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"Procfile": "web: gunicorn nowhere:app\n", "lib.py": "x = 1\n"})
    with pytest.raises(ProjectError, match="no Flask app found"):
        detect_project(root, introspect=False)


def test_command_lines_as_a_shell_reads_them() -> None:
    assert command_target("gunicorn -b localhost:8000 -w 4 microblog:app") == "microblog:app"
    assert command_target("flask db upgrade; flask translate compile; gunicorn m:app") == "m:app"
    assert command_target("exec /venv/bin/python -m gunicorn --bind=0.0.0.0:80 m:app") == "m:app"
    assert command_target("flask --app 'm:create_app()' run") == "m:create_app()"
    assert command_target("gunicorn -k gevent m:app # the app") == "m:app"
    # microblog's boot.sh: "-" and ":5000" are option values, not the target.
    boot = "exec gunicorn -b :5000 --access-logfile - --error-logfile - microblog:app"
    assert command_target(boot) == "microblog:app"
    assert command_target("gunicorn \\\n  -b localhost:8000 \\\n  m:app") == "m:app"
    assert command_target("rq worker microblog-tasks") is None
    assert command_target("echo 'unclosed") is None


def test_a_subfolder_of_a_git_repository(tmp_path: Path) -> None:
    repo = tmp_path / "shop-repo"
    web = write(
        repo / "services" / "web",
        {
            "app.py": "from flask import Flask\n\napp = Flask(__name__)\n",
            "requirements.txt": "flask\n",
        },
    )
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "git@github.com:acme/acme-shop.git"],
        check=True,
    )
    result = subprocess.run([FLASKPROD, "init", str(web)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "created    ../../.github/workflows/acme-shop.yml" in result.stdout
    assert 'name = "acme-shop"' in (web / "flaskprod.toml").read_text()
    assert not (web / ".github").exists()
    workflow = yaml.safe_load((repo / ".github/workflows/acme-shop.yml").read_text())
    assert workflow["defaults"]["run"]["working-directory"] == "services/web"
    build = [s for s in workflow["jobs"]["image"]["steps"] if "build-push" in s.get("uses", "")]
    assert build[0]["with"]["context"] == "services/web"
    assert build[0]["with"]["file"] == "services/web/deploy/Dockerfile"
    check = subprocess.run(
        [FLASKPROD, "render", "--check", str(web)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout


def test_without_importing_health_is_the_kits_unless_flaskprod_answers_it(tmp_path: Path) -> None:
    plain = detect_project(write(tmp_path / "plain", K8S_STYLE), introspect=False)
    assert plain.health_routes is None and plain.login_path is None  # routes unknown
    assert build_spec(plain).http.health_source == "kit"
    production = textwrap.dedent(K8S_STYLE["app.py"]).replace(
        "app = Flask(__name__)\n", "app = Flask(__name__)\nProduction(app)\n"
    )
    production = "from flaskprod import Production\n" + production
    ours = detect_project(write(tmp_path / "ours", {"app.py": production}), introspect=False)
    assert build_spec(ours).http.health_source == "app"
    # Imported, flaskprod's middleware paths are the app's (not in its URL map).
    spec = build_spec(detect_project(tmp_path / "ours"))
    assert (spec.http.health_source, spec.http.health_path, spec.http.ready_path) == (
        "app",
        "/health",
        "/health/ready",
    )
