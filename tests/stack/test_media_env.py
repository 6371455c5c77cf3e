"""``up`` gives the app the uploads setting it reads (paths.media_env), like the kit, and
its own settings (app.settings) with ``{root}`` as the project folder."""

from __future__ import annotations

from pathlib import Path

from flaskprod.spec.model import Spec
from flaskprod.stack.app_settings import local_settings, media_folder
from flaskprod.stack.gunicorn import app_environment
from flaskprod.stack.state import StateDir


def test_every_media_env_variable_is_the_local_media_folder(tmp_path: Path) -> None:
    spec = Spec.model_validate(
        {
            "app": {"target": "app:app", "name": "up"},
            "paths": {"media_env": ["UPLOAD_FOLDER", "MEDIA_FOLDER"]},
        }
    )
    env = app_environment(
        spec,
        {"UPLOAD_FOLDER": "/elsewhere"},
        secret_key="k" * 40,
        database_url="sqlite:///x",
        redis_url=None,
        media_root=tmp_path / "media",
    )
    assert env["UPLOAD_FOLDER"] == env["MEDIA_FOLDER"] == str(tmp_path / "media")


def _settings_spec(settings: dict[str, str], media_dir: str = "/var/lib/{name}/media") -> Spec:
    return Spec.model_validate(
        {
            "app": {"target": "app:app", "name": "up", "settings": settings},
            "paths": {"media_dir": media_dir},
        }
    )


def test_up_passes_the_apps_own_settings_with_root_as_the_project(tmp_path: Path) -> None:
    spec = _settings_spec(
        {
            "APP_FOLDER": "{root}",
            "LOG_TO_STDOUT": "1",
            "MAIL_SERVER": "",
            "API_TOKEN": "CHANGE-ME",
            "ELASTICSEARCH_URL": "CHANGE-ME",
            "LANG_CODE": "en",
        }
    )
    dirs = StateDir(tmp_path / ".flaskprod")
    found = local_settings(spec, tmp_path, dirs, {"LANG_CODE": "fr"})
    assert found.env["APP_FOLDER"] == str(tmp_path)
    assert found.env["LOG_TO_STDOUT"] == "1"
    assert "MAIL_SERVER" not in found.env  # optional without a value: unset
    assert "LANG_CODE" not in found.env  # the environment up runs with gives it
    assert found.generated == ["API_TOKEN"] and len(found.env["API_TOKEN"]) >= 32
    assert found.missing == ["ELASTICSEARCH_URL"] and "ELASTICSEARCH_URL" not in found.env
    # the generated secret is kept: the next up gives the same one
    again = local_settings(spec, tmp_path, dirs, {})
    assert again.env["API_TOKEN"] == found.env["API_TOKEN"]
    assert (dirs.root / "secrets/API_TOKEN").stat().st_mode & 0o077 == 0
    env = app_environment(
        spec,
        {"LANG_CODE": "fr"},
        secret_key="k" * 40,
        database_url="sqlite:///x",
        redis_url=None,
        media_root=tmp_path / "media",
        settings=found.env,
    )
    assert env["APP_FOLDER"] == str(tmp_path) and env["LANG_CODE"] == "fr"


def test_a_media_dir_inside_the_code_is_the_projects_own_folder(tmp_path: Path) -> None:
    dirs = StateDir(tmp_path / ".flaskprod")
    inside = _settings_spec({"APP_FOLDER": "{root}"}, media_dir="{root}/project/media")
    assert media_folder(inside, tmp_path, dirs) == tmp_path / "project/media"
    outside = _settings_spec({})
    assert media_folder(outside, tmp_path, dirs) == dirs.media
