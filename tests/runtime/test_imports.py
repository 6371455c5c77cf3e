"""The runtime runs in every worker: it must not drag in what the app did not ask for."""

from __future__ import annotations

import os
import subprocess
import sys

from runtime_helpers import GOOD_KEY

CHILD = """
import sys
from flask import Flask
from flaskprod import Production

app = Flask("lean")
Production(app)
client = app.test_client()
for path in ("/", "/health", "/health/ready", "/api/x"):
    client.get(path)
heavy = ("sqlalchemy", "flask_sqlalchemy", "psycopg", "redis", "sentry_sdk", "dotenv",
         "rich", "pydantic", "jinja2.sandbox", "flaskprod.cli", "flaskprod.spec",
         "flaskprod.check", "flaskprod.kit", "flaskprod.stack")
print(sorted(name for name in heavy if name in sys.modules))
"""


def test_production_imports_only_flask() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "FLASKPROD_", "SENTRY_")) and k != "REDIS_URL"
    }
    env |= {"FLASKPROD_ENV": "production", "SECRET_KEY": GOOD_KEY}
    env |= {"FLASK_DATABASE_REQUIRED": "false"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
