"""The rendered units pass ``systemd-analyze verify`` with nothing on stderr (it exits 0
even for unknown keys and bad values), and their exposure score stays low."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kit_tools import ToolFinder

#: Measured when written: app 1.1, backup 1.1 ("OK"). The app keeps UMask=0007 (nginx
#: reaches the socket through the group) and needs the network: it cannot reach 0.
MAX_EXPOSURE = 2.0


def units(kit: Any) -> list[Path]:
    name = kit.spec.app.name
    folder = kit.path("deploy/systemd")
    return [folder / f"{name}.service", folder / f"{name}-backup.service",
            folder / f"{name}-backup.timer"]  # fmt: skip


def verify(analyze: Path, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(analyze), "verify", "--man=no", unit.name],
        cwd=unit.parent,  # the timer finds its service next to it
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def analyze(tool: ToolFinder) -> Path:
    return tool("systemd-analyze", "apt-get install systemd")


@pytest.mark.parametrize("index", [0, 1, 2], ids=["app", "backup", "timer"])
def test_verify_is_silent(kit: Any, analyze: Path, index: int) -> None:
    unit = units(kit)[index]
    result = verify(analyze, unit)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_verify_would_complain(analyze: Path, tmp_path: Path) -> None:
    """The harness can fail: an unknown key and a missing binary reach stderr."""
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nExecStart=/nonexistent/bin/app\nFrobnicate=yes\n")
    result = verify(analyze, unit)
    assert "Frobnicate" in result.stderr


def exposure(analyze: Path, unit: Path) -> float:
    result = subprocess.run(
        [str(analyze), "security", "--offline=true", "--no-pager", unit.name],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


@pytest.mark.parametrize("index", [0, 1], ids=["app", "backup"])
def test_exposure_score(kit: Any, analyze: Path, index: int) -> None:
    unit = units(kit)[index]
    score = exposure(analyze, unit)
    print(f"systemd-analyze security --offline=true {unit.name}: {score}")
    assert score <= MAX_EXPOSURE, f"{unit.name}: exposure {score} > {MAX_EXPOSURE}"


def test_units_name_the_rendered_paths(kit: Any) -> None:
    """ExecStart runs the venv's gunicorn with the rendered config; the backup runs the
    rendered script; the runtime directory holds the socket."""
    spec = kit.spec
    app = units(kit)[0].read_text()
    root = spec.app.install_dir
    assert (
        f"ExecStart={spec.resolve(spec.deploy.venv)}/bin/gunicorn -c {root}/deploy/gunicorn.conf.py"
        f" {spec.app.target}\n" in app
    )
    assert f"EnvironmentFile={spec.resolve(spec.deploy.env_file)}\n" in app
    assert "User=root" not in app and f"User={spec.resolve(spec.deploy.user)}\n" in app
    backup = units(kit)[1].read_text()
    assert f"ExecStart={root}/deploy/scripts/backup.sh\n" in backup
    timer = units(kit)[2].read_text()
    assert f"OnCalendar={spec.backup.schedule}\n" in timer and "Persistent=true" in timer


def test_backup_schedule_is_a_calendar_systemd_understands(kit: Any, analyze: Path) -> None:
    timer = units(kit)[2].read_text()
    (schedule,) = [
        line[len("OnCalendar=") :] for line in timer.splitlines() if "OnCalendar=" in line
    ]
    good = subprocess.run(
        [str(analyze), "calendar", schedule], capture_output=True, text=True, timeout=30
    )
    assert good.returncode == 0, good.stderr
    assert "Next elapse:" in good.stdout
    bad = subprocess.run(
        [str(analyze), "calendar", "every other tuesday"], capture_output=True, timeout=30
    )
    assert bad.returncode != 0


def test_an_app_writing_its_instance_folder(make_kit: Any, analyze: Path, tmp_path: Path) -> None:
    """flaskr's shape (SQLite in app.instance_path): the unit creates the instance
    folder for the app user before the sandbox starts and keeps it writable."""
    kit = make_kit(tmp_path, {"database": {"engine": "sqlite"}}, {"instance_folder": True})
    unit = units(kit)[0]
    result = verify(analyze, unit)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = unit.read_text().splitlines()
    instance = f"{kit.spec.app.install_dir}/instance"
    user = kit.spec.resolve(kit.spec.deploy.user)
    pre = f"ExecStartPre=+/usr/bin/install -d -o {user} -g {user} -m 0750 {instance}"
    assert pre in lines
    (writable,) = [line for line in lines if line.startswith("ReadWritePaths=")]
    assert instance in writable.removeprefix("ReadWritePaths=").split()
    assert exposure(analyze, unit) <= MAX_EXPOSURE  # "+" is the pre step's only
    # in containers the image gives it to the app user; compose keeps it in a volume
    dockerfile = kit.path("deploy/Dockerfile").read_text()
    assert f"&& chown {kit.spec.container.uid}:{kit.spec.container.uid} {instance}\n" in dockerfile
    compose = yaml.safe_load(kit.path("deploy/compose.yaml").read_text())
    assert f"instance:{instance}" in compose["services"]["web"]["volumes"]
    assert "instance" in compose["volumes"]


def slot_instance(kit: Any, tmp_path: Path) -> Path:
    """The slot template (``{name}@.service``) as systemd loads instance ``a``, with
    slot ``a`` laid out as on a host (verify checks that ExecStart's program exists)."""
    name = kit.spec.app.name
    slot = Path(kit.spec.app.install_dir) / "slots" / "a"
    slot.mkdir(parents=True, exist_ok=True)
    for link, to in ((".venv", Path(sys.prefix)), ("deploy", kit.path("deploy"))):
        if not (slot / link).exists():
            (slot / link).symlink_to(to)
    template = tmp_path / f"{name}@.service"
    template.write_text(kit.path(f"deploy/systemd/{name}@.service").read_text())
    return tmp_path / f"{name}@a.service"


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_slot_template_verifies_and_stays_hardened(
    make_kit: Any, analyze: Path, tmp_path: Path, server: str
) -> None:
    """deploy's template unit (one instance per release slot) passes verify silently,
    keeps the plain unit's exposure, and differs from it only where a slot must: the
    release's folder and venv through {root}/slots/%i, the socket in /run/{name}-%i."""
    kit = make_kit(tmp_path / "kit", {"server": {"kind": server}})
    unit = slot_instance(kit, tmp_path)
    result = verify(analyze, unit)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert exposure(analyze, unit) <= MAX_EXPOSURE
    spec = kit.spec
    name, root = spec.app.name, spec.app.install_dir
    text = unit.with_name(f"{name}@.service").read_text()
    lines = text.splitlines()
    assert f"WorkingDirectory={root}/slots/%i" in lines
    assert f"RuntimeDirectory={name}-%i" in lines
    (start,) = [line for line in lines if line.startswith("ExecStart=")]
    assert f"{root}/slots/%i/.venv/bin/{server}" in start
    if server == "granian":
        assert f"--uds /run/{name}-%i/granian.sock" in start
    else:
        assert f"Environment=GUNICORN_BIND=unix:/run/{name}-%i/gunicorn.sock" in lines
        assert f"-c {root}/slots/%i/deploy/gunicorn.conf.py" in start
    plain = kit.path(f"deploy/systemd/{name}.service").read_text().splitlines()
    same = {"User", "Group", "EnvironmentFile", "KillMode", "TimeoutStopSec", "After"}
    for key in same:
        assert [x for x in lines if x.startswith(key + "=")] == [
            x for x in plain if x.startswith(key + "=")
        ], key
