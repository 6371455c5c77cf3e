"""Bad input to `flaskprod deploy`: one line naming the host and the step, exit 7 (2 for
a command line that cannot run), no traceback — and the host is left as it was.

Every case fails before provisioning changes the host, so they share one fresh host.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from shop_project import shop_copy

from flaskprod.cli import cli
from flaskprod.lab import Lab, LabHost

HOST = "bad1"


@pytest.fixture(scope="module")
def host(lab: Lab) -> Iterator[LabHost]:
    booted = lab.boot(HOST)
    try:
        yield booted
    finally:
        booted.kill()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shop_copy(tmp_path_factory.mktemp("bad"))


def variant(lab: Lab, folder: Path, alias: str, **options: str) -> Path:
    """An ssh_config with a Host ``alias``: the lab's block for the host, ``options``
    replacing its lines (IdentityFile, User, UserKnownHostsFile, ProxyCommand)."""
    text = lab.ssh_config.read_text()
    block = re.search(rf"^Host {HOST}\n(?:  .*\n?)+", text, re.MULTILINE)
    assert block is not None, text
    lines = [f"Host {alias}"]
    for line in block.group(0).splitlines()[1:]:
        key = line.split()[0]
        lines.append(f"  {key} {options.pop(key)}" if key in options else line)
    lines += [f"  {key} {value}" for key, value in options.items()]
    config = folder / f"{alias}.ssh_config"
    config.write_text("\n".join(lines) + "\n")
    return config


def deploy(project: Path, ssh_config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["deploy", str(project), "--ssh-config", str(ssh_config), *args])


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("flaskprod: error:")]
    assert len(errors) == 1, result.output
    print(errors[0])  # shown with -s: the lines docs/deploy.md quotes
    return errors[0]


def untouched(host: LabHost) -> None:
    """Provisioning never got to change the host."""
    assert host.run("test -e /etc/nginx", check=False).returncode == 1
    assert host.run("getent passwd shop", check=False).returncode == 2


def test_no_host_given_is_a_usage_error(project: Path, lab: Lab) -> None:
    line = one_line_error(deploy(project, lab.ssh_config), 2)
    assert "no host to deploy to" in line
    assert "[deploy] hosts" in line


def test_unreachable_host(project: Path, lab: Lab, host: LabHost, tmp_path: Path) -> None:
    nowhere = f"nsenter -t {host.leader_pid} -n socat STDIO TCP:127.0.0.1:2222"
    config = variant(lab, tmp_path, "gone", ProxyCommand=nowhere)
    line = one_line_error(deploy(project, config, "--host", "gone"), 7)
    assert line.startswith("flaskprod: error: gone: connect: cannot reach the host over SSH")


def test_wrong_key(project: Path, lab: Lab, host: LabHost, tmp_path: Path) -> None:
    key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = variant(lab, tmp_path, "wrongkey", IdentityFile=str(key))
    line = one_line_error(deploy(project, config, "--host", "wrongkey"), 7)
    assert "wrongkey: connect: the server refused our SSH key" in line
    untouched(host)


def test_changed_host_key(project: Path, lab: Lab, host: LabHost, tmp_path: Path) -> None:
    other = tmp_path / "hostkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"{HOST} {other.with_suffix('.pub').read_text()}")
    config = variant(lab, tmp_path, "moved", HostKeyAlias=HOST, UserKnownHostsFile=str(known))
    line = one_line_error(deploy(project, config, "--host", "moved"), 7)
    assert "moved: connect: the host key changed (SHA256:" in line
    assert "ssh-keygen -R" in line
    untouched(host)


def test_not_debian_or_ubuntu(project: Path, lab: Lab, host: LabHost) -> None:
    host.run(
        "cp /etc/os-release /root/os-release.saved && rm /etc/os-release && "
        "printf 'ID=fedora\\nPRETTY_NAME=\"Fedora Linux 40\"\\n' > /etc/os-release"
    )
    try:
        line = one_line_error(deploy(project, lab.ssh_config, "--host", HOST), 7)
    finally:
        host.run("rm /etc/os-release && ln -s ../usr/lib/os-release /etc/os-release")
    assert f"{HOST}: connect: Fedora Linux 40 is not Debian or Ubuntu" in line
    untouched(host)


def test_no_sudo(project: Path, lab: Lab, host: LabHost, tmp_path: Path) -> None:
    host.run(
        "useradd -m deployer && mkdir -p ~deployer/.ssh && "
        "cp /root/.ssh/authorized_keys ~deployer/.ssh/ && chown -R deployer ~deployer/.ssh"
    )
    config = variant(lab, tmp_path, "nosudo", User="deployer", HostKeyAlias=HOST)
    line = one_line_error(deploy(project, config, "--host", "nosudo"), 7)
    assert "nosudo: connect: deployer is not root and cannot use sudo" in line
    untouched(host)


def test_a_spec_the_host_cannot_satisfy(project: Path, lab: Lab, host: LabHost) -> None:
    spec = project / "flaskprod.toml"
    original = spec.read_text()
    spec.write_text(
        original.replace('python_version = "3.11"', 'python_version = "3.12"').replace(
            "python:3.11.11-slim-bookworm", "python:3.12.8-slim-bookworm"
        )
    )
    try:
        line = one_line_error(deploy(project, lab.ssh_config, "--host", HOST), 7)
    finally:
        spec.write_text(original)
    assert f"{HOST}: preflight: the spec asks for Python 3.12" in line
    assert "the host has 3.11" in line
    untouched(host)


def test_a_fleet_over_the_connection_budget_is_refused_before_any_host(
    project: Path, lab: Lab, host: LabHost
) -> None:
    # The shop with 2 granian workers x (pool 4 + overflow 1) and its RQ worker: one
    # host (16 with the reserve) fits 30, three hosts do not.
    spec = project / "flaskprod.toml"
    original = spec.read_text()
    spec.write_text(
        original.replace("hosts = []", f'hosts = ["{HOST}", "web2", "web3"]')
        .replace("max_connections = 100", "max_connections = 30")
        .replace("# workers = 2", "workers = 2")
    )
    try:
        line = one_line_error(deploy(project, lab.ssh_config, "--dry-run"), 2)
        pooled = spec.read_text().replace("local = true\n", "local = true\npgbouncer = true\n", 1)
        spec.write_text(pooled)
        through_pgbouncer = deploy(project, lab.ssh_config, "--dry-run", "--host", HOST)
    finally:
        spec.write_text(original)
    assert (
        "flaskprod.toml: connection budget exceeded: 3 hosts x 2 workers x (pool 4 + overflow 1)"
        " + 3 hosts x 1 process connections = 33 app connections + 5 reserved = 38 > "
        "database.max_connections = 30" in line
    )
    assert "set database.pgbouncer = true" in line
    assert through_pgbouncer.exit_code == 0, through_pgbouncer.output
    # the single-host provisioning puts PgBouncer beside PostgreSQL (dry run: listed)
    assert "  PgBouncer (transaction pooling, SCRAM): would change" in through_pgbouncer.output
    untouched(host)


def test_port_80_held_by_another_program(project: Path, lab: Lab, host: LabHost) -> None:
    host.run("systemd-run --unit=squatter python3 -m http.server 80")
    try:
        line = one_line_error(deploy(project, lab.ssh_config, "--host", HOST), 7)
    finally:
        host.run("systemctl stop squatter")
    assert f"{HOST}: preflight: port 80 is held by python3" in line
    untouched(host)


def test_dry_run_on_a_fresh_host_from_the_spec_lists_and_changes_nothing(
    project: Path, lab: Lab, host: LabHost
) -> None:
    spec = project / "flaskprod.toml"
    original = spec.read_text()
    spec.write_text(original.replace("hosts = []", f'hosts = ["{HOST}"]'))
    snapshot = "find /etc /srv /var/lib /usr/local -xdev | sort | md5sum"
    before = host.run(snapshot).stdout
    try:
        result = deploy(project, lab.ssh_config, "--dry-run")
    finally:
        spec.write_text(original)
    assert result.exit_code == 0, result.output
    assert f"{HOST}: what would change" in result.output
    assert "  packages: would change (packages: nginx python3-venv" in result.output
    assert "  secrets (generated on the host): would change" in result.output
    assert re.search(rf"{HOST}: \d+ of \d+ steps would change \(dry run", result.output)
    untouched(host)
    assert host.run(snapshot).stdout == before
