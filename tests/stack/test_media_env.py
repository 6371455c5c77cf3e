"""``up`` gives the app the uploads setting it reads (paths.media_env), like the kit."""

from __future__ import annotations

from pathlib import Path

from flaskprod.spec.model import Spec
from flaskprod.stack.gunicorn import app_environment


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
