"""Writing the kit: atomic, deterministic, and never over someone's edits without --force."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from flaskprod.errors import ExitCode, Refused
from flaskprod.kit.write import MANIFEST, plan_kit, read_manifest, sha256, write_atomic, write_plan

FILES = {
    "deploy/gunicorn.conf.py": "bind = 'unix:/run/shop/gunicorn.sock'\n",
    "deploy/scripts/backup.sh": "#!/bin/sh\necho backup\n",
    "Procfile": ".venv\n",
}
MODES = {"deploy/scripts/backup.sh": 0o755}


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def write(root: Path, files: dict[str, str] = FILES, *, force: bool = False) -> dict[str, str]:
    changes = write_plan(plan_kit(root, files, MODES), force=force)
    return {change.path: change.action for change in changes}


def test_first_write_creates_every_file_with_its_mode(tmp_path: Path) -> None:
    assert write(tmp_path) == dict.fromkeys(FILES, "create")
    for path, text in FILES.items():
        assert (tmp_path / path).read_text() == text
    assert stat.S_IMODE((tmp_path / "deploy/scripts/backup.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "deploy/gunicorn.conf.py").stat().st_mode) == 0o644
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["files"] == {path: sha256(text.encode()) for path, text in FILES.items()}
    assert not [p for p in tmp_path.rglob("*.tmp")], "no temporary file is left behind"


def test_writing_again_changes_nothing_byte_for_byte(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    write(tmp_path)
    first = snapshot(tmp_path)
    assert set(write(tmp_path).values()) == {"unchanged"}
    assert snapshot(tmp_path) == first
    other = tmp_path_factory.mktemp("other")
    write(other)
    assert snapshot(other) == first  # same input, same bytes, manifest included


def test_an_unedited_file_is_updated_when_the_render_changes(tmp_path: Path) -> None:
    write(tmp_path)
    changed = {**FILES, "deploy/gunicorn.conf.py": "bind = '127.0.0.1:8000'\n"}
    assert write(tmp_path, changed)["deploy/gunicorn.conf.py"] == "update"
    assert (tmp_path / "deploy/gunicorn.conf.py").read_text() == "bind = '127.0.0.1:8000'\n"
    assert read_manifest(tmp_path)["deploy/gunicorn.conf.py"] == sha256(
        b"bind = '127.0.0.1:8000'\n"
    )


def test_a_hand_edit_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "deploy/gunicorn.conf.py").write_text("workers = 99\n")
    before = snapshot(tmp_path)
    changed = {path: text + "# new\n" for path, text in FILES.items()}
    with pytest.raises(Refused) as caught:
        write(tmp_path, changed)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert str(caught.value) == (
        "would overwrite 1 file(s): deploy/gunicorn.conf.py (edited by hand since the last "
        "render) (move your edits into flaskprod.toml, or pass --force to overwrite)"
    )
    assert snapshot(tmp_path) == before  # not even the files that were safe to update


def test_force_overwrites_a_hand_edit(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "deploy/gunicorn.conf.py").write_text("workers = 99\n")
    assert write(tmp_path, force=True)["deploy/gunicorn.conf.py"] == "edited"
    assert (
        snapshot(tmp_path)["deploy/gunicorn.conf.py"] == FILES["deploy/gunicorn.conf.py"].encode()
    )
    assert set(write(tmp_path).values()) == {"unchanged"}


def test_a_file_flaskprod_never_wrote_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("node_modules\n")
    with pytest.raises(Refused, match=r"Procfile \(exists and was not written by flaskprod\)"):
        write(tmp_path)
    assert snapshot(tmp_path) == {"Procfile": b"node_modules\n"}


def test_a_file_already_identical_is_adopted(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(FILES["Procfile"])
    assert write(tmp_path)["Procfile"] == "unchanged"
    assert "Procfile" in read_manifest(tmp_path)  # ours from now on


def test_a_wrong_mode_is_drift_and_is_repaired(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "deploy/scripts/backup.sh").chmod(0o644)
    plan = plan_kit(tmp_path, FILES, MODES)
    assert [(c.path, c.detail) for c in plan.drift] == [
        ("deploy/scripts/backup.sh", "mode 0644, expected 0755")
    ]
    write_plan(plan)
    assert stat.S_IMODE((tmp_path / "deploy/scripts/backup.sh").stat().st_mode) == 0o755


def test_a_file_no_longer_rendered_is_removed_unless_edited(tmp_path: Path) -> None:
    write(tmp_path)
    fewer = {k: v for k, v in FILES.items() if k != "Procfile"}
    assert write(tmp_path, fewer)["Procfile"] == "remove"
    assert not (tmp_path / "Procfile").exists()
    write(tmp_path)
    (tmp_path / "Procfile").write_text("mine\n")
    assert write(tmp_path, fewer)["Procfile"] == "orphan"
    assert (tmp_path / "Procfile").read_text() == "mine\n"


def test_drift_lists_missing_changed_and_edited_files(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "Procfile").unlink()
    (tmp_path / "deploy/gunicorn.conf.py").write_text("edited\n")
    plan = plan_kit(tmp_path, FILES, MODES)
    assert [(c.path, c.action) for c in plan.drift] == [
        ("Procfile", "create"),
        ("deploy/gunicorn.conf.py", "edited"),
    ]


def test_a_damaged_manifest_counts_as_none(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    assert read_manifest(tmp_path) == {}
    assert set(write(tmp_path).values()) == {"unchanged"}  # identical files are safe
    assert read_manifest(tmp_path)  # and the manifest is rebuilt


def test_write_atomic_replaces_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "a/b.txt"
    write_atomic(target, "one\n")
    write_atomic(target, "two\n", 0o600)
    assert target.read_text() == "two\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/x").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "dir/x", "cannot replace a directory\n")
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["x"]
