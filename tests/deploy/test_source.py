"""What a release ships: the committed revision of the project folder (also a
subfolder of a repository), a dirty tree refused naming the files, and flaskprod's
own wheel when the app's requirements name it."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from flaskprod.deploy.source import host_requirements, local_wheels, read_source
from flaskprod.errors import ExitCode, Refused, UserError


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    app = root / "services" / "web"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "__init__.py").write_text("x = 1\n")
    (app / "requirements.txt").write_text("flask==3.1.3\nflaskprod[postgres]==0.1.0  # ours\n")
    (root / "README").write_text("outside the project\n")
    (root / ".gitignore").write_text(".venv/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one")
    return app


def names(archive: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def test_the_committed_revision_of_the_project_folder(repo: Path) -> None:
    source = read_source(repo)
    assert source.revision == git(repo, "rev-parse", "HEAD")
    assert names(source.archive) == {"pkg/__init__.py", "requirements.txt"}
    assert source.requirements == "requirements.txt"
    (repo / ".venv").mkdir()
    (repo / ".venv" / "junk").write_text("ignored files are not changes\n")
    assert read_source(repo).revision == source.revision


def test_a_dirty_tree_is_refused_naming_the_files(repo: Path) -> None:
    (repo / "pkg" / "__init__.py").write_text("x = 2\n")
    (repo / "new.py").write_text("y = 1\n")
    with pytest.raises(Refused) as caught:
        read_source(repo)
    message = str(caught.value)
    assert "services/web/pkg/__init__.py" in message and "services/web/new.py" in message
    assert "--allow-dirty" in message and caught.value.exit_code == ExitCode.REFUSED
    shipped = read_source(repo, allow_dirty=True)
    assert shipped.revision.endswith("-dirty")
    assert names(shipped.archive) == {"pkg/__init__.py", "new.py", "requirements.txt"}
    with tarfile.open(fileobj=io.BytesIO(shipped.archive)) as tar:
        member = tar.extractfile("pkg/__init__.py")
        assert member is not None and member.read() == b"x = 2\n"


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not in a git repository"):
        read_source(tmp_path)


def test_flaskprod_is_shipped_as_a_wheel_when_the_app_requires_it(repo: Path) -> None:
    source = read_source(repo)
    wheels = local_wheels(source.requirements_text)
    assert set(wheels) == {"flaskprod"}
    with zipfile.ZipFile(wheels["flaskprod"]) as wheel:
        assert "flaskprod/kit/deploy_site.py" in wheel.namelist()
    text = host_requirements(source.requirements_text, {"flaskprod": "/srv/x/.wheels/f.whl"})
    assert text.splitlines() == [
        "flask==3.1.3",
        "flaskprod[postgres] @ file:///srv/x/.wheels/f.whl",
    ]
    assert local_wheels("flask==3.1.3\n") == {}
