"""Rules on shapes real projects have, which flaskprod once misjudged (issue #12,
item 13): a hand-written CSRF check, a development-only run script, committed env
templates, one-shot compose services."""

from __future__ import annotations

from pathlib import Path

from check_helpers import git_repo
from project_files import write

from flaskprod.check.model import Finding
from flaskprod.check.runner import CheckOptions, run_checks


def findings(root: Path, select: tuple[str, ...], *, no_import: bool = False) -> list[Finding]:
    result = run_checks(CheckOptions(root=root, select=select, no_import=no_import))
    if not no_import:
        assert result.context.app is not None, result.context.app_error
    return [f for f in result.findings if f.ignored_reason is None]


FORMS = """\
from flask import Blueprint, Flask, abort, request, session

app = Flask(__name__)
app.config["SECRET_KEY"] = "k" * 40
{hook}

@app.post("/login")
def login():
    return request.form["name"]

admin = Blueprint("admin", __name__)

@admin.post("/admin/post")
def post():
    return request.form["text"]

{admin_hook}
app.register_blueprint(admin)
"""
#: CTFd's shape: a session nonce compared with the form's or a header's, abort(403).
CSRF_HOOK = """\
@{owner}.before_request
def csrf():
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get("nonce")
    sent = request.form.get("nonce") or request.headers.get("CSRF-Token")
    if not expected or expected != sent:
        abort(403)
"""
#: A hook that only logs: no protection.
LOG_HOOK = """\
@app.before_request
def log():
    print(request.path, session.get("user"))
"""


def test_a_hand_written_csrf_check_protects_form_routes(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": FORMS.format(hook=CSRF_HOOK.format(owner="app"), admin_hook="")})
    assert [f.id for f in findings(tmp_path, ("APP004",))] == []


def test_a_blueprint_csrf_hook_protects_only_its_blueprint(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"app.py": FORMS.format(hook=LOG_HOOK, admin_hook=CSRF_HOOK.format(owner="admin"))},
    )
    (finding,) = findings(tmp_path, ("APP004",))
    assert finding.message == "routes take form posts without CSRF protection: /login"


DEV_RUN = "from wsgi import app\n\napp.run(debug=True, host='0.0.0.0')\n"
WSGI = "from flask import Flask\n\napp = Flask(__name__)\n"


def test_a_development_run_script_is_not_production(tmp_path: Path) -> None:
    """run.py only starts the development server; production runs gunicorn wsgi:app
    and never imports it: APP008 has nothing to say, app imported or not."""
    write(
        tmp_path,
        {"wsgi.py": WSGI, "run.py": DEV_RUN, "Procfile": "web: gunicorn -w 3 wsgi:app\n"},
    )
    assert findings(tmp_path, ("APP008",)) == []
    assert findings(tmp_path, ("APP008",), no_import=True) == []


def test_a_run_script_production_imports_or_starts_is_judged(tmp_path: Path) -> None:
    # wsgi imports the module that calls app.run() at its top level
    write(
        tmp_path,
        {
            "wsgi.py": WSGI + "import tasks  # noqa\n",
            "tasks.py": "from wsgi import app\n\napp.run()\n",
            "Procfile": "web: gunicorn -w 3 wsgi:app\n",
        },
    )
    assert [(f.id, f.file) for f in findings(tmp_path, ("APP008",))] == [("APP008", "tasks.py")]
    assert [(f.id, f.file) for f in findings(tmp_path, ("APP008",), no_import=True)] == [
        ("APP008", "tasks.py")
    ]
    # a launcher runs the script itself
    write(tmp_path, {"Procfile": "web: python run.py\n", "run.py": DEV_RUN})
    assert ("APP008", "run.py") in [
        (f.id, f.file) for f in findings(tmp_path, ("APP008",), no_import=True)
    ]


def test_env_templates_with_placeholders_may_be_committed(tmp_path: Path) -> None:
    """testdrivenio's .env.prod-sample is a template: committed on purpose."""
    write(
        tmp_path,
        {
            "app.py": WSGI,
            ".env.prod-sample": "DATABASE_URL=postgresql://hello_flask:hello_flask@db/x\n"
            "POSTGRES_PASSWORD=hello_flask\nSECRET_KEY=change_me\n",
            "env.template": "SECRET_KEY=<your secret>\n",
        },
    )
    git_repo(tmp_path, [".env.prod-sample", "env.template"])
    assert findings(tmp_path, ("PRJ001",), no_import=True) == []
    # ...unless one holds what looks like a real secret
    write(tmp_path, {".env.prod-sample": "SECRET_KEY=9f8e7d6c5b4a39281706f5e4d3c2b1a0Zq\n"})
    (finding,) = findings(tmp_path, ("PRJ001",), no_import=True)
    assert finding.file == ".env.prod-sample" and "SECRET_KEY" in finding.message


COMPOSE = """\
services:
  web:
    build: .
    command: gunicorn -w 3 wsgi:app
    restart: unless-stopped
    depends_on:
      migrate:
        condition: service_completed_successfully
  migrate:
    build: .
    command: flask db upgrade
  seed:
    build: .
    command: ["python", "manage.py", "seed_db"]
    restart: no
  init:
    build: .
    command: sh -c "echo prepared"
{extra}
"""


def test_one_shot_compose_services_need_no_restart_policy(tmp_path: Path) -> None:
    write(tmp_path, {"wsgi.py": WSGI, "compose.yaml": COMPOSE.format(extra="")})
    # 'init' has no command of a job, but web waits for it to complete
    write(
        tmp_path,
        {
            "compose.yaml": COMPOSE.format(extra="").replace(
                "      migrate:\n",
                "      init:\n        condition: service_completed_successfully\n      migrate:\n",
            )
        },
    )
    assert findings(tmp_path, ("CMP005",), no_import=True) == []
    # a long-running service without a policy is still reported
    extra = "  worker:\n    build: .\n    command: rq worker tasks\n"
    write(tmp_path, {"compose.yaml": COMPOSE.format(extra=extra)})
    (finding,) = findings(tmp_path, ("CMP005",), no_import=True)
    assert finding.message.startswith("'init', 'worker' are not restarted")


MICROBLOG_LIKE = {
    # microblog's shape: a package with a factory, the key from config.py with a
    # placeholder fallback; after init a systemd unit reads an env file on the server
    "app/__init__.py": "from flask import Flask\nfrom config import Config\n\n"
    "def create_app(config_class=Config):\n"
    "    app = Flask(__name__)\n    app.config.from_object(config_class)\n    return app\n",
    "config.py": "import os\n\nclass Config:\n"
    "    SECRET_KEY = os.environ.get('SECRET_KEY') or 'you-will-never-guess'\n",
    "deploy/systemd/mb.service": "[Service]\nEnvironmentFile=/etc/mb/mb.env\n"
    "ExecStart=/srv/mb/.venv/bin/python -m flaskprod.serve --interface wsgi \\\\\n"
    "  --uds /run/mb/granian.sock --factory app:create_app\n",
    "deploy/.env.example": "SECRET_KEY=\nFLASKPROD_ENV=production\n",
}


def test_a_placeholder_fallback_secret_survives_a_stand_in_environment(tmp_path: Path) -> None:
    """After init the key lives on the server (a stand-in here): the factory is called,
    and the code's own placeholder fallback is still critical (APP002)."""
    write(tmp_path, MICROBLOG_LIKE)
    result = run_checks(CheckOptions(root=tmp_path, select=("APP002",)))
    assert result.context.app is not None, result.context.app_error
    assert result.context.app.target == "app:create_app()"
    (finding,) = [f for f in result.findings if f.id == "APP002"]
    assert (finding.level.name, finding.file, finding.line) == ("CRITICAL", "config.py", 4)
    assert "'you-will-never-guess'" in finding.message
    # a fallback that is no placeholder (or none at all) is not reported
    write(
        tmp_path,
        {"config.py": "import os\n\nclass Config:\n    SECRET_KEY = os.environ['SECRET_KEY']\n"},
    )
    assert [
        f.id for f in run_checks(CheckOptions(root=tmp_path, select=("APP002",))).findings
    ] == []


#: nickjj/docker-flask-example's shape: ARG defaults expanded in ENV, an entrypoint
#: script that execs the CMD, gunicorn configured by a Python module.
DOCKER_FLASK_EXAMPLE = {
    "Dockerfile": "FROM python:3.13-slim AS app\nWORKDIR /app\n"
    'ARG FLASK_DEBUG="false"\nARG APP_MODULE=hello.app\n'
    'ENV FLASK_DEBUG="${FLASK_DEBUG}" \\\n    FLASK_APP="${APP_MODULE}" \\\n'
    '    PYTHONPATH="." \\\n    PATH="${PATH}:/home/python/.local/bin"\n'
    "COPY . .\n"
    'ENTRYPOINT ["/app/bin/docker-entrypoint-web"]\n'
    'CMD ["gunicorn", "-c", "python:config.gunicorn", "hello.app:create_app()"]\n',
    "bin/docker-entrypoint-web": '#!/bin/bash\nset -e\nexec "$@"\n',
    "config/__init__.py": "",
    "config/gunicorn.py": "import multiprocessing\nimport os\n\n"
    "bind = f\"0.0.0.0:{os.getenv('PORT', '8000')}\"\n"
    'workers = int(os.getenv("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))\n'
    'threads = int(os.getenv("PYTHON_MAX_THREADS", 1))\n',
    "hello/__init__.py": "",
    "hello/app.py": "import os\n\nfrom flask import Flask\n\n\ndef create_app():\n"
    "    app = Flask(__name__)\n"
    '    app.config["DEBUG_FROM_ENV"] = os.environ["FLASK_DEBUG"]\n'
    '    app.config["APP_FROM_ENV"] = os.environ["FLASK_APP"]\n'
    "    return app\n",
}


def test_dockerfile_args_reach_env_and_the_app_is_judged(tmp_path: Path) -> None:
    write(tmp_path, DOCKER_FLASK_EXAMPLE)
    result = run_checks(CheckOptions(root=tmp_path, select=("APP", "GUN", "DOC")))
    app = result.context.app
    assert app is not None, result.context.app_error
    assert app.target == "hello.app:create_app()"
    # the ARG defaults, not the literal '${FLASK_DEBUG}'
    assert (app.config["DEBUG_FROM_ENV"], app.config["APP_FROM_ENV"]) == ("false", "hello.app")
    assert not {"GUN002", "GUN006", "APP000"} & {f.id for f in result.findings}


def test_the_apps_own_liveness_route_is_found_by_its_name(tmp_path: Path) -> None:
    """docker-flask-example answers /up; others /api/healthz: found in the URL map,
    requested, and APP011 is satisfied. /up/databases (readiness) is never requested."""
    write(
        tmp_path,
        {
            "app.py": WSGI + "\n@app.get('/api/healthz')\ndef up():\n    return ''\n\n"
            "@app.get('/up/databases')\ndef ready():\n    raise RuntimeError('never asked')\n",
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, select=("APP011",)))
    assert result.context.app is not None, result.context.app_error
    assert result.context.app.health["/api/healthz"] == 200
    assert "/up/databases" not in result.context.app.health
    assert result.findings == []


def test_health_answered_by_the_kit_needs_no_route_in_the_app(tmp_path: Path) -> None:
    spec = '[app]\ntarget = "app:app"\nname = "x"\n\n[http]\nhealth_source = "{source}"\n'
    entry = "# the kit's entry module, as 'flaskprod render' writes it\n"
    write(tmp_path, {"app.py": WSGI, "flaskprod.toml": spec.format(source="kit")})
    # without the entry module the kit's health is promised but nothing answers it
    assert [f.id for f in findings(tmp_path, ("APP011",))] == ["APP011"]
    write(tmp_path, {"flaskprod_wsgi.py": entry})
    assert findings(tmp_path, ("APP011",)) == []
    write(tmp_path, {"flaskprod.toml": spec.format(source="app")})
    assert [f.id for f in findings(tmp_path, ("APP011",))] == ["APP011"]


DEV_COMPOSE = """\
services:
  web:
    build: ./services/web
    command: python manage.py run -h 0.0.0.0
  db:
    image: postgres:13
    environment:
      - POSTGRES_PASSWORD=hello_flask
"""
PROD_COMPOSE = """\
services:
  web:
    build: ./services/web
    command: gunicorn -w 3 --bind 0.0.0.0:5000 manage:app
    restart: unless-stopped
  db:
    image: postgres:13
    restart: unless-stopped
    env_file: ./.env.prod.db
"""


def test_a_development_compose_file_beside_a_production_one_is_not_judged(
    tmp_path: Path,
) -> None:
    """flask-on-docker: docker-compose.yml is for development (flask run, a literal
    password), docker-compose.prod.yml a whole production deployment."""
    write(tmp_path, {"docker-compose.yml": DEV_COMPOSE, "docker-compose.prod.yml": PROD_COMPOSE})
    found = findings(tmp_path, ("CMP",), no_import=True)
    assert not [f for f in found if f.file == "docker-compose.yml"], [f.message for f in found]
    # the production file is still judged: drop its restart policy
    write(tmp_path, {"docker-compose.prod.yml": PROD_COMPOSE.replace("restart:", "x-restart:")})
    assert [f.file for f in findings(tmp_path, ("CMP005",), no_import=True)] == [
        "docker-compose.prod.yml"
    ]
    # a production file that only overrides the base one: the base is production too
    write(tmp_path, {"docker-compose.prod.yml": "services:\n  web:\n    restart: always\n"})
    assert "docker-compose.yml" in {f.file for f in findings(tmp_path, ("CMP",), no_import=True)}


def test_a_package_missing_from_the_projects_own_venv_is_a_warning(tmp_path: Path) -> None:
    """Imported with the project's own .venv, a missing package is the project's
    (production installs the same requirements); with flaskprod's Python, it says
    only that it could not import here."""
    import site
    import subprocess
    import sys

    app = "import flask\nimport flaskprod_missing_package  # noqa\napp = flask.Flask(__name__)\n"
    write(tmp_path, {"app.py": app, "Procfile": "web: gunicorn -w 3 app:app\n"})
    result = run_checks(CheckOptions(root=tmp_path, select=("APP000",)))
    (finding,) = result.findings
    assert (finding.level.name, finding.message.split(":")[0]) == (
        "INFO",
        "could not import the app here",
    )
    # the project's own venv: Flask there (through a .pth onto ours), the package not
    venv = tmp_path / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (next(venv.glob("lib/python*/site-packages")) / "ours.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    (finding,) = run_checks(CheckOptions(root=tmp_path, select=("APP000",))).findings
    assert finding.level.name == "WARNING"
    assert finding.message == (
        "the app does not import with the project's own virtualenv: "
        "ModuleNotFoundError: No module named 'flaskprod_missing_package'"
    )
