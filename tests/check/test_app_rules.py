"""App rules judged in context: what production's environment is known to be, the
spec, the proxies in front."""

from __future__ import annotations

import time
from pathlib import Path

from project_files import write

from flaskprod.check.app_loader import probe
from flaskprod.check.model import Finding, Level
from flaskprod.check.runner import CheckOptions, run_checks


def app_findings(root: Path) -> list[Finding]:
    result = run_checks(CheckOptions(root=root, select=("APP",)))
    assert result.context.app is not None, result.context.app_error
    return [f for f in result.findings if f.ignored_reason is None]


APP = """\
import os

from flask import Flask

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY")
app.config["MAX_CONTENT_LENGTH"] = 5 * 1024 * 1024
{extra}

@app.get("/health")
def health():
    return "ok"
"""


def test_server_only_environment_is_not_judged_as_if_known(tmp_path: Path) -> None:
    """The EnvironmentFile lives on the server; the template's FLASK_DEBUG=1 is for
    laptops and its missing SECRET_KEY may be set there: no critical finding."""
    write(
        tmp_path,
        {
            "app.py": APP.format(extra=""),
            "app.service": "[Service]\nEnvironmentFile=/etc/app/app.env\n"
            "ExecStart=/v/bin/gunicorn app:app\n",
            ".env.example": "FLASK_DEBUG=1\nDATABASE_URL=\n",
        },
    )
    found = {f.id: f for f in app_findings(tmp_path)}
    assert "APP001" not in found
    assert found["APP002"].level is Level.INFO
    assert "make sure production's environment sets it" in found["APP002"].message


def test_known_environment_without_secret_key_is_critical(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": APP.format(extra=""),
            "app.service": "[Service]\nWorkingDirectory=/srv/app\n"
            "EnvironmentFile=/srv/app/prod.env\nExecStart=/v/bin/gunicorn app:app\n",
            "prod.env": "DATABASE_URL=postgresql://db/app\n",
        },
    )
    found = {f.id: f for f in app_findings(tmp_path)}
    assert found["APP002"].level is Level.CRITICAL
    assert found["APP002"].message == "SECRET_KEY is not set"


def test_body_limit_must_match_the_spec_and_proxyfix_the_proxy_count(tmp_path: Path) -> None:
    extra = (
        "from werkzeug.middleware.proxy_fix import ProxyFix\n\n"
        "app.wsgi_app = ProxyFix(app.wsgi_app, x_for=2, x_proto=1)"
    )
    write(
        tmp_path,
        {
            "app.py": APP.format(extra=extra),
            "flaskprod.toml": '[app]\ntarget = "app:app"\nname = "x"\n'
            '[http]\nmax_body = "10M"\ntrusted_proxies = 1\n',
            "prod.env": "SECRET_KEY=" + "k3Y-" * 12 + "\n",
        },
    )
    result = run_checks(
        CheckOptions(root=tmp_path, select=("APP007", "APP010"), env_file=tmp_path / "prod.env")
    )
    found = {f.id: f for f in result.findings}
    assert "flaskprod.toml says max_body = 10M (10485760 bytes)" in found["APP007"].message
    assert found["APP010"].level is Level.ERROR
    assert "trusts 2 X-Forwarded-For hops but 1 proxy is in front" in found["APP010"].message


def test_flaskform_routes_carry_their_own_csrf_token(tmp_path: Path) -> None:
    extra = """
from flask import request
from flask_wtf import FlaskForm
from wtforms import StringField


class NameForm(FlaskForm):
    name = StringField()


@app.route("/name", methods=["GET", "POST"])
def name():
    form = NameForm()
    if form.validate_on_submit():
        return form.name.data
    return "<form method=post>{}</form>".format(form.csrf_token)


@app.post("/raw")
def raw():
    return request.form["x"]
"""
    write(
        tmp_path,
        {
            "app.py": APP.format(extra=extra),
            "prod.env": "SECRET_KEY=" + "k3Y-" * 12 + "\n",
        },
    )
    result = run_checks(
        CheckOptions(root=tmp_path, select=("APP004",), env_file=tmp_path / "prod.env")
    )
    messages = [f.message for f in result.findings]
    assert messages == ["routes take form posts without CSRF protection: /raw"]


def test_an_app_that_leaves_threads_running_is_still_described(tmp_path: Path) -> None:
    extra = (
        "import threading\nimport time\n\n"
        "threading.Thread(target=time.sleep, args=(600,)).start()  # not a daemon"
    )
    write(tmp_path, {"app.py": APP.format(extra=extra)})
    started = time.monotonic()
    result = probe(tmp_path, "app:app", {"SECRET_KEY": "x"}, timeout=20)
    assert result.info is not None, result.error
    assert time.monotonic() - started < 15


def test_an_app_that_hangs_at_import_is_stopped(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "import time\n\ntime.sleep(600)\n"})
    result = probe(tmp_path, "app:app", {}, timeout=3)
    assert result.info is None
    assert result.error == "importing app:app did not finish in 3 s"


def test_spec_health_and_ready_paths_must_be_served(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.py": APP.format(extra=""),
            "flaskprod.toml": '[app]\ntarget = "app:app"\nname = "x"\n'
            '[http]\nhealth_path = "/health"\nready_path = "/ready"\n',
            "prod.env": "SECRET_KEY=x\n",
        },
    )
    options = CheckOptions(root=tmp_path, select=("APP011",), env_file=tmp_path / "prod.env")
    assert [f.message for f in run_checks(options).findings] == [
        "the spec's ready_path /ready is not served"
    ]
    ready = '@app.get("/ready")\ndef ready():\n    return "ready"\n'
    (tmp_path / "app.py").write_text(APP.format(extra=ready))
    assert run_checks(options).findings == []


def test_a_project_python_that_cannot_run_is_app000_not_a_traceback(tmp_path: Path) -> None:
    """The project's .venv/bin/python cannot be executed (copied from another
    machine): the app is not evaluated, and the report says why (APP000)."""
    write(tmp_path, {"app.py": "from flask import Flask\napp = Flask(__name__)\n"})
    python = tmp_path / ".venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("not a program\n")
    python.chmod(0o755)
    result = probe(tmp_path, "app:app", {})
    assert result.info is None
    assert result.error == (
        "the project's Python .venv/bin/python: cannot be run: Exec format error (recreate "
        "it: python3 -m venv --clear .venv && .venv/bin/pip install -r requirements.txt, "
        "or pass --python PATH)"
    )
    findings = run_checks(CheckOptions(root=tmp_path, select=("APP000",))).findings
    assert [f.id for f in findings] == ["APP000"]
    assert "Exec format error" in findings[0].message


def test_a_src_layout_app_is_imported_and_findings_name_its_file(tmp_path: Path) -> None:
    """No spec, no deploy files, the package in src/ and not installed: check finds the
    factory, imports it with src/ on the path, and points app findings at its file."""
    write(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "notes"\ndependencies = ["flask"]\n',
            "src/notes/__init__.py": """\
                from flask import Flask

                from notes.views import bp

                def create_app():
                    app = Flask(__name__)
                    app.config["SECRET_KEY"] = "dev"
                    app.register_blueprint(bp)
                    return app
            """,
            "src/notes/views.py": "from flask import Blueprint\n\nbp = Blueprint('n', __name__)\n",
        },
    )
    result = run_checks(CheckOptions(root=tmp_path, select=("APP",)))
    assert result.context.app is not None, result.context.app_error
    assert result.context.app.target == "notes:create_app()"
    weak = [f for f in result.findings if f.id == "APP002"]
    assert [f.file for f in weak] == ["src/notes/__init__.py"]


def test_an_app_without_health_routes_after_init_is_one_finding(tmp_path: Path) -> None:
    """The tutorial app after 'flaskprod init': no /health and no /health/ready (it does
    not use Production(app)). One cause, one finding: APP011 names both paths; the
    rendered Dockerfile's HEALTHCHECK on the spec's path is not reported again (DOC005),
    while a HEALTHCHECK on some other unserved path still is."""
    from flaskprod.kit.commands import render_files
    from flaskprod.spec.detect import detect_project
    from flaskprod.spec.load import load_spec

    write(
        tmp_path,
        {
            "app.py": "from flask import Flask\n\napp = Flask(__name__)\n\n\n"
            '@app.get("/")\ndef index():\n    return "hi"\n',
            "requirements.txt": "flask==3.1.1\n",
            "flaskprod.toml": '[app]\ntarget = "app:app"\nname = "tut"\n',
        },
    )
    files, _ = render_files(load_spec(tmp_path / "flaskprod.toml"), detect_project(tmp_path))
    write(tmp_path, {"deploy/Dockerfile": files["deploy/Dockerfile"]})
    options = CheckOptions(root=tmp_path, select=("APP011", "DOC005"))
    assert [(f.id, f.message) for f in run_checks(options).findings] == [
        (
            "APP011",
            "the spec's health_path /health answers 404 and its ready_path /health/ready "
            "is not served",
        )
    ]
    dockerfile = tmp_path / "deploy/Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(":8000/health", ":8000/healthz"))
    assert "DOC005" in [f.id for f in run_checks(options).findings]


CSRF_OFF = Path(__file__).parent / "fixtures" / "APP016" / "fail" / "app.py"


def test_csrf_switched_off_is_one_finding_when_the_app_shows_its_routes(tmp_path: Path) -> None:
    """Imported under an environment that sets the key, the factory's
    WTF_CSRF_ENABLED = False leaves /transfer open: APP004 names the route, and APP016
    (the line that caused it) does not say it a second time."""
    key = "k9" * 24
    write(
        tmp_path,
        {
            "app.py": CSRF_OFF.read_text(),
            "app.service": "[Service]\nEnvironment=SECRET_KEY=" + key + "\n"
            "ExecStart=/v/bin/gunicorn 'app:create_app()'\n",
        },
    )
    found = [(f.id, f.level) for f in app_findings(tmp_path) if f.id in ("APP004", "APP016")]
    assert found == [("APP004", Level.ERROR)], found


def test_a_main_block_in_a_dev_script_is_not_the_entry_module(tmp_path: Path) -> None:
    """APP014 judges the module production serves: run_dev.py (debug on 0.0.0.0, never
    named by a launcher) is a workstation's; the same lines in wsgi.py are an error."""
    main = '\nif __name__ == "__main__":\n    app.run(host="0.0.0.0", debug=True)\n'
    write(
        tmp_path,
        {
            "wsgi.py": APP.format(extra=""),
            "run_dev.py": "from wsgi import app\n" + main,
            "Procfile": "web: gunicorn wsgi:app\n",
        },
    )
    assert [f for f in app_findings(tmp_path) if f.id == "APP014"] == []
    write(tmp_path, {"wsgi.py": APP.format(extra="") + main})
    found = [(f.id, f.level, f.file) for f in app_findings(tmp_path) if f.id == "APP014"]
    assert found == [("APP014", Level.ERROR, "wsgi.py")], found
