"""The kit's Kubernetes manifests pass check's own image-tag rule (K8S008): ``init``
writes the commit it ran at as ``container.tag`` (the image CI builds for that commit,
github.sha), so the manifests name an image that does not move, and check agrees.
Outside a git repository there is no commit to name: ``latest`` stays, pulled every
time, and K8S008 says so at info (a rollback cannot name the previous image)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from check_helpers import git_repo
from click.testing import CliRunner
from project_files import write

from flaskprod.check.model import Level
from flaskprod.check.runner import CheckOptions, run_checks
from flaskprod.cli import cli
from flaskprod.spec.load import load_spec

APP = {
    "app.py": "from flask import Flask\napp = Flask(__name__)\n\n\n@app.get('/')\n"
    "def home():\n    return 'hi'\n",
    "requirements.txt": "flask==3.1.2\ngunicorn==23.0.0\n",
}


def init(root: Path) -> None:
    result = CliRunner().invoke(cli, ["init", str(root), "--no-import"])
    assert result.exit_code == 0, result.output


def k8s008(root: Path) -> list[tuple[Level, str]]:
    found = run_checks(CheckOptions(root=root, no_import=True, select=("K8S",))).findings
    return [(f.level, f.message) for f in found if f.id == "K8S008"]


def test_init_in_a_repository_pins_the_image_to_its_commit(tmp_path: Path) -> None:
    root = git_repo(write(tmp_path / "proj", APP), list(APP))
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    init(root)
    assert load_spec(root / "flaskprod.toml").container.tag == head
    deployment = (root / "deploy" / "k8s" / "deployment.yaml").read_text()
    assert f"image: ghcr.io/your-org/proj:{head}\n" in deployment
    assert "imagePullPolicy: IfNotPresent" in deployment
    assert k8s008(root) == []


def test_outside_a_repository_latest_stays_and_is_info(tmp_path: Path) -> None:
    root = write(tmp_path / "proj", APP)
    init(root)
    assert load_spec(root / "flaskprod.toml").container.tag == "latest"
    found = k8s008(root)
    assert found and {level for level, _ in found} == {Level.INFO}


def test_the_shop_kit_has_no_moving_tag() -> None:
    shop = Path(__file__).resolve().parents[2] / "examples" / "shop"
    assert k8s008(shop) == []
