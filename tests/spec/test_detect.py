"""Detecting the Flask app of differently shaped projects, made here, for real.

Introspection imports each app in a real child process (the same Python as the
suite, which has Flask, Flask-SQLAlchemy and Flask-Migrate installed).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from flaskprod.errors import EnvironmentProblem, ExitCode, ProjectError
from flaskprod.kit.artifacts import PROJECT_DEFAULTS
from flaskprod.spec.detect import ProjectInfo, detect_project

SINGLE = {
    "app.py": """
        from flask import Flask

        app = Flask(__name__)
        app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024

        @app.get("/")
        def index():
            return "hello"

        @app.get("/health")
        def health():
            return "ok"
    """,
    "static/site.css": "body {}",
    "requirements.txt": "flask\n",
    "requirements-dev.txt": "pytest\n",
}

PACKAGE = {
    "blog/__init__.py": """
        from flask import Flask
        from flask_migrate import Migrate
        from flask_sqlalchemy import SQLAlchemy

        db = SQLAlchemy()

        def create_app():
            app = Flask(__name__, static_url_path="/assets")
            app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
            db.init_app(app)
            Migrate(app, db)

            @app.route("/posts")
            def posts():
                return "[]"

            return app
    """,
    "blog/static/app.js": "",
    "migrations/env.py": "# alembic",
    "pyproject.toml": '[project]\nname = "blog"\ndependencies = ["flask"]\n',
    "poetry.lock": "",
}


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def project_error(root: Path, app: str | None = None, **options: object) -> str:
    with pytest.raises(ProjectError) as caught:
        detect_project(root, app, **options)  # type: ignore[arg-type]
    assert caught.value.exit_code == ExitCode.USAGE
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_single_module_app(tmp_path: Path) -> None:
    info = detect_project(make(tmp_path / "hello-world", SINGLE))
    assert info.target == "app:app"
    assert info.app_file == "app.py"
    assert info.name == "hello-world"
    assert info.static_dir == "static" and info.static_url == "/static/"
    assert info.routes == ("/", "/health", "/static/<path:filename>")
    assert info.max_content_length == 16 * 1024 * 1024
    assert info.requirements_file == "requirements.txt"
    assert info.dependency_files == ("requirements-dev.txt", "requirements.txt")
    assert not (info.uses_sqlalchemy or info.uses_migrate or info.uses_redis or info.migrations)
    assert info.imported
    assert not list(tmp_path.rglob("__pycache__")), "detection must not write into the project"


def test_package_with_a_factory(tmp_path: Path) -> None:
    info = detect_project(make(tmp_path, PACKAGE))
    assert info.target == "blog:create_app()"
    assert info.app_file == "blog/__init__.py"
    assert info.static_dir == "blog/static" and info.static_url == "/assets/"
    assert "/posts" in info.routes
    assert info.uses_sqlalchemy and info.uses_migrate
    assert info.migrations_present and info.migrations
    assert info.requirements_file is None  # installed from pyproject.toml
    assert info.dependency_files == ("poetry.lock", "pyproject.toml")


def test_wsgi_entry_point_importing_the_package_is_not_a_rival(tmp_path: Path) -> None:
    make(tmp_path, {**PACKAGE, "wsgi.py": "from blog import create_app\napp = create_app()\n"})
    info = detect_project(tmp_path)
    assert info.target == "wsgi:app"
    assert info.static_dir == "blog/static"
    # Statically too, with the target given: the Flask(...) call is in the imported package.
    static = detect_project(tmp_path, "wsgi:app", introspect=False)
    assert (static.static_dir, static.static_url) == ("blog/static", "/assets/")


def test_static_only_detection_reads_the_source(tmp_path: Path) -> None:
    info = detect_project(make(tmp_path, PACKAGE), introspect=False)
    assert info.target == "blog:create_app()"
    assert info.static_dir == "blog/static" and info.static_url == "/assets/"
    assert info.uses_sqlalchemy and info.uses_migrate
    assert not info.imported and info.routes == ()


def test_two_candidates_ask_for_app(tmp_path: Path) -> None:
    make(tmp_path, {**SINGLE, "application.py": "from flask import Flask\napp = Flask('x')\n"})
    assert project_error(tmp_path) == (
        f"several Flask apps found in {tmp_path}: app:app (app.py), application:app "
        "(application.py) (choose one with --app)"
    )
    assert detect_project(tmp_path, "application").target == "application:app"
    assert detect_project(tmp_path, "app:app").target == "app:app"


LIGHT_PACKAGE = {
    "blog/__init__.py": """
        from flask import Flask

        def create_app():
            return Flask(__name__, static_url_path="/assets")
    """,
}


def test_app_option_in_flask_syntax(tmp_path: Path) -> None:
    make(tmp_path, LIGHT_PACKAGE)
    assert detect_project(tmp_path, "blog").target == "blog:create_app()"
    assert detect_project(tmp_path, "blog:create_app()").routes[0] == "/assets/<path:filename>"
    assert project_error(tmp_path, "blog:nope") == (
        "cannot import the app blog:nope: blog/__init__.py: NoAppException: Failed to find "
        "attribute 'nope' in 'blog'. (fix it, or pass --no-import to detect without importing)"
    )
    assert project_error(tmp_path, "shop") == (
        f"--app shop: no module 'shop' in {tmp_path} (looked for shop.py and shop/__init__.py, "
        "at the root and in src/)"
    )
    assert project_error(tmp_path, "not a target!").startswith("--app 'not a target!': not a")


def test_an_empty_directory_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/__init__.py").write_text("X = 1\n")
    assert project_error(tmp_path) == (
        f"no Flask app found in {tmp_path} (looked in wsgi.py, app.py, application.py, "
        "lib/__init__.py and the __init__.py of every top-level package, at the root and in "
        "src/, for a Flask(...) instance or a create_app() factory) (pass --app module:app)"
    )


def test_a_syntax_error_gives_file_and_line(tmp_path: Path) -> None:
    make(tmp_path, {"app.py": "from flask import Flask\napp = Flask(__name__\n"})
    assert project_error(tmp_path) == (
        "app.py:2: SyntaxError: '(' was never closed (fix it, then run the command again)"
    )


def test_an_import_error_gives_its_first_line_and_where(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "app.py": "from flask import Flask\nimport helpers\napp = Flask(__name__)\n",
            "helpers.py": "x = 1\nimport not_installed_anywhere\n",
        },
    )
    assert project_error(tmp_path) == (
        "cannot import the app app:app: helpers.py:2: ModuleNotFoundError: No module named "
        "'not_installed_anywhere' (fix it, or pass --no-import to detect without importing)"
    )
    # Static detection still works without importing.
    assert detect_project(tmp_path, introspect=False).target == "app:app"


def test_a_factory_that_raises(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "shop/__init__.py": """
                from flask import Flask

                def create_app():
                    raise RuntimeError("DATABASE_URL is not set\\nsecond line")
            """
        },
    )
    assert project_error(tmp_path) == (
        "cannot import the app shop:create_app(): shop/__init__.py:4: RuntimeError: "
        "DATABASE_URL is not set (fix it, or pass --no-import to detect without importing)"
    )


def test_an_app_that_exits_or_prints_at_import(tmp_path: Path) -> None:
    make(
        tmp_path, {"app.py": "import sys\nfrom flask import Flask\nsys.exit(3)\napp = Flask('a')\n"}
    )
    assert "the app exited while importing (exit status 3)" in project_error(tmp_path)
    make(tmp_path, {"app.py": "from flask import Flask\nprint('{noise')\napp = Flask('a')\n"})
    assert detect_project(tmp_path).target == "app:app"


def test_an_unguarded_app_run_does_not_serve(tmp_path: Path) -> None:
    make(tmp_path, {"app.py": "from flask import Flask\napp = Flask('a')\napp.run(port=1)\n"})
    assert detect_project(tmp_path, timeout=20).imported


def test_an_app_that_hangs_at_import_is_cut_off(tmp_path: Path) -> None:
    make(
        tmp_path,
        {"app.py": "import time\nfrom flask import Flask\ntime.sleep(60)\napp = Flask('a')\n"},
    )
    message = project_error(tmp_path, timeout=1)
    assert message.startswith("importing app:app took more than 1 s")


def test_detection_runs_the_app_in_development(tmp_path: Path) -> None:
    # A production fail-fast (no SECRET_KEY) must not block detection.
    make(
        tmp_path,
        {
            "app.py": """
                import os
                from flask import Flask

                if os.environ.get("FLASKPROD_ENV") != "development":
                    raise SystemExit("SECRET_KEY is not set")
                app = Flask(__name__)
            """
        },
    )
    assert detect_project(tmp_path).imported


def test_redis_from_the_source_or_the_config(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "app.py": "import os\nfrom flask import Flask\napp = Flask('a')\n"
            "URL = os.environ.get('REDIS_URL')\n"
        },
    )
    assert detect_project(tmp_path, introspect=False).uses_redis
    make(
        tmp_path,
        {
            "app.py": "from flask import Flask\napp = Flask('a')\n"
            "app.config['SESSION_TYPE'] = 'redis'\n"
        },
    )
    info = detect_project(tmp_path)
    assert info.uses_redis


def test_project_info_is_the_mapping_the_kit_reads(tmp_path: Path) -> None:
    info = detect_project(make(tmp_path, SINGLE), introspect=False)
    assert isinstance(info, ProjectInfo)
    # Every fact the kit has a default for is provided by detection.
    assert set(PROJECT_DEFAULTS) <= set(info)
    # The local folder is not a fact the rendered files may depend on.
    assert "root" not in info
    assert dict(info)["target"] == "app:app"


def test_the_app_is_imported_by_the_projects_own_virtualenv(tmp_path: Path) -> None:
    project = make(tmp_path / "p", {"app.py": "from flask import Flask\napp = Flask('a')\n"})
    marker = tmp_path / "used"
    python = project / ".venv/bin/python"
    python.parent.mkdir(parents=True)
    # A stand-in for the project's interpreter: it says it was used, then runs Python.
    python.write_text(f'#!/bin/sh\ntouch "{marker}"\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    assert detect_project(project).imported
    assert marker.exists()


def test_a_broken_project_virtualenv_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """A .venv copied from another machine: its python cannot be executed. Detection
    says so in one line (exit 3, the machine lacks a working interpreter) instead of
    an OSError traceback."""
    project = make(tmp_path / "p", {"app.py": "from flask import Flask\napp = Flask('a')\n"})
    python = project / ".venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("not a program\n")
    python.chmod(0o755)
    with pytest.raises(EnvironmentProblem) as caught:
        detect_project(project)
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert str(caught.value) == (
        "the project's Python .venv/bin/python: cannot be run: Exec format error "
        "(recreate it: python3 -m venv --clear .venv && .venv/bin/pip install -r "
        "requirements.txt, or pass --python PATH)"
    )
    assert detect_project(project, introspect=False).target == "app:app"


SRC_LAYOUT = {
    "pyproject.toml": '[project]\nname = "notes"\ndependencies = ["flask"]\n',
    "src/notes/__init__.py": """
        import os

        from flask import Flask

        from notes.views import bp

        def create_app():
            app = Flask(__name__)
            app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
            app.register_blueprint(bp)
            return app
    """,
    "src/notes/views.py": """
        from flask import Blueprint

        bp = Blueprint("notes", __name__)

        @bp.get("/notes")
        def notes():
            return []
    """,
    "src/notes/static/site.css": "h1 {}",
    "tests/test_notes.py": "def test_x():\n    pass\n",
}


def test_the_src_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyPA's src layout: the package is in src/ and the project is not installed in
    the interpreter that imports it. Detection finds it, imports it with src/ on the
    path (the package imports itself by name), and the target is the package's name:
    what gunicorn imports once the project is installed (the kit's image and CI run
    'pip install .' for a pyproject.toml project)."""
    make(tmp_path, SRC_LAYOUT)
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    info = detect_project(tmp_path)
    assert info.target == "notes:create_app()"
    assert info.app_file == "src/notes/__init__.py"
    assert info.static_dir == "src/notes/static" and info.static_url == "/static/"
    assert "/notes" in info.routes and info.imported
    assert info.requirements_file is None and info.dependency_files == ("pyproject.toml",)
    for app in ("notes", "notes:create_app()", "src/notes/__init__.py"):
        assert detect_project(tmp_path, app, introspect=False).target == "notes:create_app()"


def test_a_package_importing_its_own_submodules_is_still_found(tmp_path: Path) -> None:
    """blog/__init__.py with a top-level 'from blog.views import bp' imports 'blog': it
    is not an entry point of some other candidate, and must not rule itself out."""
    make(
        tmp_path,
        {
            "blog/__init__.py": "from flask import Flask\n\nfrom blog.views import bp\n\n"
            "def create_app():\n    app = Flask(__name__)\n    app.register_blueprint(bp)\n"
            "    return app\n",
            "blog/views.py": "from flask import Blueprint\n\nbp = Blueprint('b', __name__)\n",
        },
    )
    assert detect_project(tmp_path, introspect=False).target == "blog:create_app()"


def test_an_environment_variable_read_at_import_is_named_with_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The articles' factory reads os.environ["DATABASE_URL"] when it runs: in a shell
    without production's environment, the error says which variable and how to go on."""
    make(
        tmp_path,
        {
            "app/__init__.py": "import os\n\nfrom flask import Flask\n\n\ndef create_app():\n"
            "    app = Flask(__name__)\n"
            '    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]\n'
            "    return app\n",
            "wsgi.py": "from app import create_app\n\napp = create_app()\n",
        },
    )
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert project_error(tmp_path) == (
        "cannot import the app wsgi:app: app/__init__.py:8: KeyError: 'DATABASE_URL' (if the "
        "app reads DATABASE_URL from the environment when it is imported, set it for this "
        "command (DATABASE_URL=... flaskprod ...) or pass --no-import)"
    )
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    assert detect_project(tmp_path).target == "wsgi:app"
