"""A serving shop never imports what only commands need (Alembic, Flask-Migrate, Pillow:
~14 MiB per gunicorn worker), and the commands still work: ``flask db upgrade`` on a
fresh database through the CLI, readiness's migrations check before and after it, an
image upload.

Each step runs in a fresh interpreter: the test process has long imported them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shop_helpers import SECRET, SHOP_DIR, png_bytes

from flaskprod.stack.postgres import PostgresCluster

NEVER_SERVING = ["alembic", "flask_migrate", "mako", "pygments", "PIL"]

#: Builds the app as gunicorn does (wsgi.py), serves a few pages, prints the readiness
#: answer and which of NEVER_SERVING were imported.
SERVE = """
import json, sys
sys.path.insert(0, ".")
from wsgi import app
client = app.test_client()
for path in ("/", "/api/products", "/products/1", "/login", "/health"):
    client.get(path)
ready = client.get("/health/ready")
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1:]))
print(json.dumps({"ready": ready.status_code, "checks": ready.get_json()["checks"],
                  "loaded": loaded}))
"""


def _env(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FLASKPROD_"))}
    env.pop("REDIS_URL", None)
    return env | {
        "FLASKPROD_ENV": "production",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": database_url,
        "TRUSTED_PROXIES": "0",
        "FLASKPROD_MEDIA_ROOT": str(tmp_path / "media"),
        **extra,
    }


def _serve(env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SERVE, *NEVER_SERVING],
        cwd=SHOP_DIR, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    last: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return last


def _flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=SHOP_DIR, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_serving_imports_no_migration_tool_and_flask_db_still_works(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    name = f"shop_lazy_imports_{os.getpid()}"
    postgres_cluster.drop_database(name)
    url = postgres_cluster.create_database(name)
    try:
        env = _env(url, tmp_path)
        behind = _serve(env)
        assert behind["loaded"] == []
        assert behind["ready"] == 503
        assert behind["checks"]["migrations"] == {"status": "fail", "error": "MigrationsBehind"}  # type: ignore[index]

        listed = _flask(env, "--help")
        assert "Perform database migrations." in listed.stdout
        upgrade = _flask(env, "db", "upgrade")
        assert upgrade.returncode == 0, upgrade.stderr
        current = _flask(env, "db", "current")
        assert current.returncode == 0 and "(head)" in current.stdout, current.stderr

        at_head = _serve(env)
        assert at_head["loaded"] == []
        assert at_head["ready"] == 200
        assert at_head["checks"]["migrations"]["status"] == "ok"  # type: ignore[index]
    finally:
        postgres_cluster.drop_database(name)


UPLOAD = """
import json, sys
sys.path.insert(0, ".")
from wsgi import app
from shop.media import NotAnImage, store_image
before = "PIL" in sys.modules
name = store_image(bytes.fromhex(sys.argv[1]), app)
try:
    store_image(b"not an image", app)
    refused = False
except NotAnImage:
    refused = True
print(json.dumps({"before": before, "after": "PIL" in sys.modules, "name": name,
                  "refused": refused}))
"""


def test_pillow_is_imported_by_the_first_upload(tmp_path: Path) -> None:
    env = _env(f"sqlite:///{tmp_path / 'shop.db'}", tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", UPLOAD, png_bytes().hex()],
        cwd=SHOP_DIR, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    upload = json.loads(result.stdout.strip().splitlines()[-1])
    assert upload["before"] is False and upload["after"] is True
    assert upload["refused"] is True
    assert (tmp_path / "media" / upload["name"]).is_file()
