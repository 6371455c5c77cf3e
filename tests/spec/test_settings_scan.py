"""The app's own settings and its uploads setting, read from its files (issue #12,
item 9): Python reads of the environment, env samples, compose; real projects too."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from real_projects import REAL_PROJECTS

from flaskprod.spec.detect import _python_files
from flaskprod.spec.settings_scan import REQUIRED, AppSettings, is_secret, scan_settings

REAL = REAL_PROJECTS  # the shared folder beside the checkout


def scan(root: Path) -> AppSettings:
    return scan_settings(root, _python_files(root))


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def test_python_reads_with_their_defaults(tmp_path: Path) -> None:
    found = scan(
        make(
            tmp_path,
            {
                "config.py": """
                    import os
                    from os import environ, getenv

                    class Config:
                        API_BASE = os.environ["API_BASE"]
                        MAIL_PORT = int(os.environ.get("MAIL_PORT", 25))
                        FEATURE = getenv("FEATURE", "on")
                        STRIPE_KEY = environ.get("STRIPE_KEY", "sk_live_real")
                        DEBUG_TOOL = os.getenv("DEBUG_TOOL")
                        SECRET_KEY = os.environ.get("SECRET_KEY", "dev")
                        UPLOAD_FOLDER = os.environ.get("UPLOAD_FOLDER", "/tmp/up")
                """,
                "app/__init__.py": """
                    from flask import Flask
                    app = Flask(__name__)
                    app.config.from_prefixed_env()
                """,
            },
        )
    )
    assert found.settings == {
        "API_BASE": REQUIRED,  # read without a default: the app cannot start without it
        "DEBUG_TOOL": "",
        "FEATURE": "on",
        "MAIL_PORT": "25",
        "STRIPE_KEY": "",  # a secret's default never travels into the kit
    }  # SECRET_KEY is flaskprod's own; UPLOAD_FOLDER is set to media_dir
    assert found.media_env == ["UPLOAD_FOLDER"]
    assert found.prefixed_env == "FLASK"
    assert found.sources == ["config.py"]


def test_samples_and_compose_names_without_their_secrets(tmp_path: Path) -> None:
    found = scan(
        make(
            tmp_path,
            {
                # read through a loader (python-decouple): the names are in quotes
                "settings.py": """
                    from decouple import config
                    NAMES = ["S3_BUCKET", "AWS_SECRET_ACCESS_KEY", "WEBHOOK_URL", "SITE_NAME"]
                    SETTINGS = {name: config(name) for name in NAMES}
                    SMTP = config("SMTP_HOST"), config("API_TOKEN")
                """,
                ".env.example": "S3_BUCKET=media\nAWS_SECRET_ACCESS_KEY=abc123real\n"
                "WEBHOOK_URL=https://user:pw@hooks.example\n",
                ".env.prod-sample": "export SITE_NAME='Shop'\nFLASK_DEBUG=0\nPOSTGRES_USER=x\n",
                "docker-compose.yml": "services:\n  web:\n    environment:\n"
                "      - SMTP_HOST=mail\n      - API_TOKEN\n",
            },
        )
    )
    assert found.settings == {
        "API_TOKEN": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "S3_BUCKET": "media",
        "SITE_NAME": "Shop",
        "SMTP_HOST": "",
        "WEBHOOK_URL": "",  # a URL with credentials: the name only
    }


def test_sample_names_the_app_never_reads_are_no_settings(tmp_path: Path) -> None:
    """docker-flask-example's .env.example: Docker and compose knobs with development
    values next to the two settings its config reads."""
    found = scan(
        make(
            tmp_path,
            {
                "config/settings.py": """
                    import os
                    SECRET_KEY = os.environ["SECRET_KEY"]
                    SERVER_NAME = os.getenv("SERVER_NAME", "localhost:8000")
                    MODE = os.getenv("APP_MODE")
                """,
                "config/gunicorn.py": """
                    import os
                    reload = os.getenv("WEB_RELOAD", "false")
                """,
                "app.py": "from flask import Flask\napp = Flask(__name__)\n"
                "app.config.from_prefixed_env()\n",
                ".env.example": """
                    export DOCKER_BUILDKIT=1
                    export COMPOSE_PROJECT_NAME=helloflask
                    export COMPOSE_PROFILES=postgres,redis,assets,web,worker
                    export SECRET_KEY=insecure_key_for_dev
                    export NODE_ENV=development
                    export WEB_RELOAD=true
                    export APP_MODE=development
                    export FLASK_MAIL_SENDER=shop
                    export DOCKER_WEB_VOLUME=.:/app
                    export DOCKER_WEB_PORT_FORWARD=8000
                """,
                "compose.yaml": "services:\n  web:\n    environment:\n"
                "      - NODE_ENV\n      - DOCKER_RESTART_POLICY=no\n",
            },
        )
    )
    assert found.settings == {
        "APP_MODE": "",  # read by the app; "development" is no production value
        "FLASK_MAIL_SENDER": "shop",  # under from_prefixed_env's FLASK_ prefix
        "SERVER_NAME": "localhost:8000",
        "WEB_RELOAD": "false",  # the code's default, not the sample's development "true"
    }


def test_an_app_reading_the_whole_environment_keeps_every_sample_name(tmp_path: Path) -> None:
    found = scan(
        make(
            tmp_path,
            {
                "config.py": """
                    from pydantic_settings import BaseSettings
                    class Settings(BaseSettings):
                        site_name: str = "shop"
                """,
                ".env.example": "SITE_NAME=Shop\n",
            },
        )
    )
    assert found.settings == {"SITE_NAME": "Shop"}  # pydantic reads it by the field's name


@pytest.mark.parametrize(
    ("name", "secret"),
    [("MAIL_PASSWORD", True), ("MS_TRANSLATOR_KEY", True), ("API_TOKEN", True),
     ("MAIL_SERVER", False), ("ELASTICSEARCH_URL", False)],
)  # fmt: skip
def test_secrets_by_name(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


def test_microblog(tmp_path: Path) -> None:
    root = tmp_path / "microblog"
    shutil.copytree(REAL / "microblog", root)
    found = scan(root)
    # its logs go to stdout (journald, the container's log), not to logs/ in its code
    assert found.settings.pop("LOG_TO_STDOUT") == "1"
    assert found.settings == dict.fromkeys(
        [
            "ELASTICSEARCH_URL",
            "MAIL_PASSWORD",
            "MAIL_PORT",
            "MAIL_SERVER",
            "MAIL_USERNAME",
            "MAIL_USE_TLS",
            "MS_TRANSLATOR_KEY",
            "SERVER_NAME",
        ],
        "",  # all optional: unset unless given (MAIL_USE_TLS is tested 'is not None')
    )
    assert found.media_env == [] and found.media_from is None


def test_flask_on_docker_uploads_follow_app_folder(tmp_path: Path) -> None:
    root = tmp_path / "fod"
    shutil.copytree(REAL / "flask-on-docker", root)
    web = scan(root / "services/web")
    # MEDIA_FOLDER = f"{os.getenv('APP_FOLDER')}/project/media": APP_FOLDER is the code
    assert web.media_from == ("APP_FOLDER", "{root}", "/project/media")
    assert web.settings == {"APP_FOLDER": "{root}"}
    whole = scan(root)  # from the repository's root: the app is in services/web
    assert whole.media_from == ("APP_FOLDER", "{root}/services/web", "/project/media")
    assert whole.settings["APP_FOLDER"] == "{root}/services/web"
    assert set(whole.sources) >= {".env.dev-sample", ".env.prod-sample"}


def test_an_uploads_folder_fixed_in_the_code_and_url_defaults(tmp_path: Path) -> None:
    found = scan(
        make(
            tmp_path,
            {
                "config.py": """
                    import os
                    basedir = os.path.dirname(__file__)

                    class Config:
                        UPLOAD_FOLDER = os.path.join(basedir, "uploads")
                        BROKER = os.environ.get("BROKER", "redis://user:pw@localhost:6379/0")
                """,
            },
        )
    )
    assert found.media_fixed == ["UPLOAD_FOLDER (config.py:5)"]  # init says how to fix it
    assert found.media_env == []
    assert found.settings == {"BROKER": ""}  # a URL default never travels


def test_variables_of_the_python_image_are_settings_the_kit_gives(tmp_path: Path) -> None:
    """docker-flask-example reads os.environ["PYTHON_VERSION"] (the python:* image's ENV):
    listed with the value the image gives ({python}: the Python that runs the app);
    the interpreter's own switches (PYTHONPATH, ...) are not the app's settings."""
    found = scan(
        make(
            tmp_path,
            {
                "hello/page/views.py": """
                    import os

                    def home():
                        return os.environ["PYTHON_VERSION"], os.getenv("LANG")
                """,
                "config.py": """
                    import os
                    PATHS = os.environ.get("PYTHONPATH", "")
                    UNBUFFERED = os.environ.get("PYTHONUNBUFFERED")
                """,
            },
        )
    )
    assert found.settings == {"LANG": "C.UTF-8", "PYTHON_VERSION": "{python}"}


CTFD_CONFIG = """
    import configparser
    import os

    class EnvInterpolation(configparser.BasicInterpolation):
        def before_get(self, parser, section, option, value, defaults):
            envvar = os.getenv(option)
            return envvar if value == "" and envvar else value

    config_ini = configparser.ConfigParser(interpolation=EnvInterpolation())
    config_ini.read(os.path.join(os.path.dirname(__file__), "config.ini"))

    class ServerConfig:
        UPLOAD_FOLDER: str = config_ini["uploads"]["UPLOAD_FOLDER"] \\
            or os.path.join(os.path.dirname(os.path.abspath(__file__)), "uploads")
"""


def test_an_uploads_setting_read_through_an_env_interpolated_ini(tmp_path: Path) -> None:
    """CTFd: each ini option falls back to the variable of its name (os.getenv(option));
    its uploads folder is UPLOAD_FOLDER, annotated in a config class."""
    found = scan(
        make(
            tmp_path,
            {
                "CTFd/config.py": CTFD_CONFIG,
                "CTFd/config.ini": "[uploads]\nUPLOAD_FOLDER =\n",
                "docker-compose.yml": "services:\n  ctfd:\n    environment:\n"
                "      - UPLOAD_FOLDER=/var/uploads\n",
            },
        )
    )
    assert found.media_env == ["UPLOAD_FOLDER"]
    assert "UPLOAD_FOLDER" not in found.settings  # the kit sets it to media_dir
    # where names are not read from the environment by name, an ini value is fixed
    fixed = scan(
        make(
            tmp_path / "fixed",
            {
                "config.py": 'import os\nDEBUG = os.getenv("DEBUG")\n'
                'UPLOAD_FOLDER: str = ini["uploads"]["UPLOAD_FOLDER"]\n'
            },
        )
    )
    assert fixed.media_env == [] and fixed.media_fixed == ["UPLOAD_FOLDER (config.py:3)"]
