"""The placeholders init's import gets for the settings an app requires
(spec/stand_ins.py): one per name read with os.environ["NAME"], of its kind, never for
what the environment already gives."""

from __future__ import annotations

from pathlib import Path

from flaskprod.spec.stand_ins import STAND_IN, stand_ins

CONFIG = """\
import os

SECRET_KEY = os.environ["SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["DATABASE_URL"]
CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
API_BASE_URL = os.environ["API_BASE_URL"]
REGION = os.environ["REGION"]
LOG_LEVEL = os.environ["LOG_LEVEL"]
MAIL_SERVER = os.environ.get("MAIL_SERVER")  # has a default: needs nothing
"""


def test_each_required_name_gets_a_placeholder_of_its_kind(tmp_path: Path) -> None:
    config = tmp_path / "config.py"
    config.write_text(CONFIG)
    (tmp_path / ".env.example").write_text("LOG_LEVEL=info\nSECRET_KEY=changeme-in-sample\n")
    found = stand_ins(tmp_path, [config], {"REGION": "eu-west-1"})
    assert sorted(found) == [
        "API_BASE_URL", "CELERY_BROKER_URL", "DATABASE_URL", "LOG_LEVEL", "SECRET_KEY",
    ]  # fmt: skip
    assert found["DATABASE_URL"] == "sqlite://"
    assert found["CELERY_BROKER_URL"] == "redis://127.0.0.1:9/0"
    assert found["API_BASE_URL"] == "http://127.0.0.1:9/"
    assert found["LOG_LEVEL"] == "info"  # the sample's plain value
    # a secret is a fresh random token, never the sample's value
    assert len(found["SECRET_KEY"]) >= 32 and "changeme" not in found["SECRET_KEY"]
    assert STAND_IN not in found.values()


def test_a_name_without_a_kind_or_a_sample_is_the_marker(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text('import os\nPAGE_SIZE = int(os.environ["PAGE_SIZE"])\n')
    assert stand_ins(tmp_path, [app], {}) == {"PAGE_SIZE": STAND_IN}
