"""``check --host DEST`` runs the host checks on the server itself, over SSH, from
flaskprod's host tools; its report and exit status come back unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from flaskprod_cli import FLASKPROD

from flaskprod.lab import Lab, LabHost

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLASKPROD, "check", str(SHOP), *args], capture_output=True, text=True, timeout=600
    )


def test_host_checks_run_on_the_server_and_report_what_it_lacks(
    lab: Lab, lab_host: LabHost
) -> None:
    # A fresh server: nothing of the shop is there yet.
    done = _check("--host", lab_host.name, "--ssh-config", str(lab.ssh_config), "--format", "json")
    assert done.returncode == 1, done.stderr
    findings = {f["id"]: f for f in json.loads(done.stdout)["findings"]}
    assert "no enabled nginx site for shop" in findings["HST002"]["message"]
    assert "installing flaskprod's host tools" in done.stderr
    # What ran was the server's view: its nginx is absent, this machine's is not.
    assert lab_host.run("test -x /opt/flaskprod/venv/bin/flaskprod", check=False).returncode == 0
    assert lab_host.run("ls /tmp", check=False).stdout.count("flaskprod-check.") == 0

    # The server gets nginx: the same check now finds it (and the tools are not reinstalled).
    lab_host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null")
    again = _check("--host", lab_host.name, "--ssh-config", str(lab.ssh_config), "--format", "json")
    assert again.returncode == 1
    assert "installing" not in again.stderr
    messages = " ".join(f["message"] for f in json.loads(again.stdout)["findings"])
    assert "/etc/nginx/nginx.conf does not exist" not in messages
    assert "/etc/nginx/nginx.conf does not exist" in " ".join(
        findings[i]["message"] for i in findings
    )


def test_remote_check_input_errors(lab: Lab, tmp_path: Path) -> None:
    unknown = _check("--host", "nohost", "--ssh-config", str(lab.ssh_config))
    assert unknown.returncode == 7
    assert unknown.stderr.strip().splitlines()[-1].startswith("flaskprod: error: nohost: connect:")
    both = _check("--host", "web", "--url", "https://example.org/")
    assert both.returncode == 2 and "--url and --host DEST run in different places" in both.stderr
    not_a_project = subprocess.run(
        [FLASKPROD, "check", str(tmp_path), "--host", "web"], capture_output=True, text=True
    )
    assert not_a_project.returncode == 2 and "no flaskprod.toml" in not_a_project.stderr
