"""``.dockerignore`` is shared with the project: its lines are kept, the kit's are added
in a marked block (issue #12, item 12: CTFd's secret key file and data were dropped)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner, Result

from flaskprod.check.rules.project import _ignore_patterns, ignored_by
from flaskprod.cli import cli
from flaskprod.kit.merge import BEGIN, END, merge_block
from flaskprod.kit.write import plan_kit, write_plan

#: What CTFd's own .dockerignore keeps out of its image (abridged, its order).
CTFD_IGNORE = """\
CTFd/logs/*.log
CTFd/static/uploads
CTFd/uploads
.data/
.ctfd_secret_key
.*.swp
# things people add
!CTFd/uploads/.gitkeep
"""

APP = {
    "app.py": "from flask import Flask\n\napp = Flask(__name__)\n",
    "requirements.txt": "flask\n",
    ".dockerignore": CTFD_IGNORE,
}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def make(root: Path) -> Path:
    root.mkdir()
    for name, text in APP.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_merging_keeps_every_project_line_in_place_and_is_idempotent() -> None:
    merged = merge_block(CTFD_IGNORE, ".git\n.env\n.data/\n")
    assert merged.startswith(CTFD_IGNORE)  # untouched, in its order
    assert merged[len(CTFD_IGNORE) :] == f"\n{BEGIN}\n.git\n.env\n{END}\n"  # .data/ was there
    assert merge_block(merged, ".git\n.env\n.data/\n") == merged
    # A changed kit replaces its block only; the project's lines stay.
    assert merge_block(merged, ".git\n") == f"{CTFD_IGNORE}\n{BEGIN}\n.git\n{END}\n"
    assert merge_block(None, ".git\n") == f"{BEGIN}\n.git\n{END}\n"


def test_a_project_line_added_after_a_render_survives_the_next(tmp_path: Path) -> None:
    write_plan(plan_kit(tmp_path, {".dockerignore": ".git\n"}, {}))
    (tmp_path / ".dockerignore").write_text("secrets/\n" + (tmp_path / ".dockerignore").read_text())
    plan = plan_kit(tmp_path, {".dockerignore": ".git\n.venv\n"}, {})
    assert [(c.action, c.detail) for c in plan.changes] == [
        ("update", "the project's lines kept, the kit's block updated")
    ]
    write_plan(plan)
    assert (tmp_path / ".dockerignore").read_text() == f"secrets/\n\n{BEGIN}\n.git\n.venv\n{END}\n"


def test_init_merges_a_ctfd_like_dockerignore(tmp_path: Path) -> None:
    root = make(tmp_path / "ctfd")
    result = run("init", str(root), "--no-import")
    assert result.exit_code == 0, result.output  # it exited 5 (refused) before
    assert "  updated    .dockerignore  (the project's lines kept, the kit's block updated)" in (
        result.output.splitlines()
    )
    text = (root / ".dockerignore").read_text()
    assert text.startswith(CTFD_IGNORE)
    patterns = _ignore_patterns(text)
    for secret in (".ctfd_secret_key", ".data/ctfd.db", "CTFd/uploads/a.png", ".env", ".git/HEAD"):
        assert ignored_by(patterns, secret), secret
    assert not ignored_by(patterns, "app.py")
    check = run("render", str(root), "--check", "--no-import")
    assert check.exit_code == 0, check.output
    assert run("render", str(root), "--no-import").exit_code == 0
    assert (root / ".dockerignore").read_text() == text  # idempotent on disk too


def test_a_whole_file_rendered_before_the_block_is_replaced_not_kept(tmp_path: Path) -> None:
    # A kit rendered by an older flaskprod owned the whole file (the manifest's sha).
    from flaskprod.kit.write import MANIFEST, manifest_text

    (tmp_path / ".dockerignore").write_text(".git\n.venv\n")
    (tmp_path / "deploy").mkdir()
    (tmp_path / MANIFEST).write_text(manifest_text({".dockerignore": ".git\n.venv\n"}))
    write_plan(plan_kit(tmp_path, {".dockerignore": ".git\n.venv\n"}, {}))
    assert (tmp_path / ".dockerignore").read_text() == f"{BEGIN}\n.git\n.venv\n{END}\n"


def test_a_dockerignore_that_is_not_utf8_is_a_one_line_error(tmp_path: Path) -> None:
    root = make(tmp_path / "latin")
    (root / ".dockerignore").write_bytes(b"caf\xe9/\n")
    result = run("init", str(root), "--no-import")
    assert result.exit_code == 2
    assert result.output == (
        "flaskprod: error: .dockerignore: not UTF-8 text, so the kit cannot add its lines "
        "to it (save it as UTF-8, then run the command again)\n"
    )
    assert sorted(p.name for p in root.iterdir()) == [".dockerignore", "app.py", "requirements.txt"]
