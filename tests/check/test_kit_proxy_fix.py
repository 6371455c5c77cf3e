"""APP010 and the kit agree: behind the kit's nginx, the kit's entry module
(flaskprod_wsgi.py, http.health_source = "kit") gives an app without ProxyFix one, so
``check`` right after ``init`` does not report it; an entry module rendered without it
(an older kit) is reported, since the app then sees nginx's address."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from project_files import write

from flaskprod.check.runner import CheckOptions, run_checks
from flaskprod.cli import cli

APP = {
    "app.py": "from flask import Flask\napp = Flask(__name__)\n\n\n@app.get('/')\n"
    "def home():\n    return 'hi'\n",
    "requirements.txt": "flask==3.1.2\ngunicorn==23.0.0\n",
}


def app010(root: Path) -> list[str]:
    result = run_checks(CheckOptions(root=root, select=("APP010",)))
    assert result.context.app is not None, result.context.app_error
    return [f.message for f in result.findings if f.id == "APP010"]


def test_the_kits_entry_module_supplies_proxy_fix(tmp_path: Path) -> None:
    root = write(tmp_path / "proj", APP)
    done = CliRunner().invoke(cli, ["init", str(root), "--no-import"])
    assert done.exit_code == 0, done.output
    entry = root / "flaskprod_wsgi.py"
    assert "\napp = behind_proxies(app, 1)\n" in entry.read_text()
    assert app010(root) == []
    entry.write_text(entry.read_text().replace("\napp = behind_proxies(app, 1)\n", "\n"))
    assert app010(root) == [
        "1 reverse proxy is in front but the app has no ProxyFix: request.remote_addr is "
        "the proxy's address"
    ]
