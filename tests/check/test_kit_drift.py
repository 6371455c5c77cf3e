"""KIT001: ``check`` reports the kit that no longer matches flaskprod.toml, the same
files ``flaskprod render --check`` lists (one computation: kit.commands.plan_render)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from check_helpers import FIXTURES, render_kit_into
from flaskprod_cli import run_flaskprod

from flaskprod.check.model import Level
from flaskprod.check.runner import CheckOptions, run_checks


def kit_findings(root: Path) -> list[tuple[str | None, str, str]]:
    result = run_checks(CheckOptions(root=root, select=("KIT",), no_import=True))
    return [(f.file, f.level.name, f.message) for f in result.findings]


def project(tmp_path: Path, *, rendered: bool) -> Path:
    root = tmp_path / "app"
    shutil.copytree(FIXTURES / "KIT001" / "pass", root)
    (root / "RENDER_KIT").unlink()
    if rendered:
        (root / "RENDER_KIT").write_text("")
        render_kit_into(root)
    return root


def test_a_spec_without_a_rendered_kit_is_said_once_at_info(tmp_path: Path) -> None:
    found = kit_findings(project(tmp_path, rendered=False))
    assert [(file, level) for file, level, _ in found] == [("flaskprod.toml", "INFO")], found
    assert "never rendered" in found[0][2]


def test_a_spec_changed_after_the_render_lists_what_render_check_lists(tmp_path: Path) -> None:
    root = project(tmp_path, rendered=True)
    assert kit_findings(root) == []
    spec = root / "flaskprod.toml"
    spec.write_text(spec.read_text().replace("workers = 2", "workers = 5"))
    found = kit_findings(root)
    assert found, "a stale kit gives no finding"
    assert all(level == Level.WARNING.name for _, level, _ in found), found
    assert all("differs from a fresh render" in message for _, _, message in found), found
    checked = run_flaskprod("render", "--check", "--no-import", str(root))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    listed = {
        line.strip().partition(":")[0]
        for line in checked.stdout.splitlines()
        if line.startswith("  ")
    }
    assert listed == {file for file, _, _ in found}, (listed, found)
    assert "deploy/gunicorn.conf.py" in listed  # where the worker count is written


def test_hand_edit_missing_file_and_lost_mode_in_the_json_report(tmp_path: Path) -> None:
    root = project(tmp_path, rendered=True)
    (root / "deploy/Procfile").unlink()
    (root / "deploy/scripts/deploy.sh").chmod(0o644)
    nginx = root / "deploy/nginx/app.conf"
    nginx.write_text(nginx.read_text() + "# tuned by hand\n")
    done = run_flaskprod("check", str(root), "--no-import", "--select", "KIT", "--format", "json")
    assert done.returncode == 1, done.stderr  # warnings fail the default --fail-level
    report = {f["file"]: f["message"] for f in json.loads(done.stdout)["findings"]}
    assert set(report) == {"deploy/Procfile", "deploy/scripts/deploy.sh", "deploy/nginx/app.conf"}
    assert report["deploy/Procfile"].startswith("missing")
    assert report["deploy/scripts/deploy.sh"].startswith("mode 0644, expected 0755")
    assert report["deploy/nginx/app.conf"].startswith("edited by hand since the last render")


def test_a_spec_that_cannot_be_rendered_is_said_not_crashed(tmp_path: Path) -> None:
    """app.target names no module: render --check fails, and check says why at info
    instead of a rule crash (FP000)."""
    root = project(tmp_path, rendered=True)
    spec = root / "flaskprod.toml"
    spec.write_text(spec.read_text().replace('"wsgi:app"', '"nowhere:app"'))
    found = kit_findings(root)
    assert [(file, level) for file, level, _ in found] == [("flaskprod.toml", "INFO")], found
    assert "no module 'nowhere'" in found[0][2]
