"""The lab's hosts are real, fresh servers; Remote reaches them through ssh_config and
turns every way a connection can fail into one line naming the host and the step."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from flaskprod.deploy.remote import Remote, ssh_destination
from flaskprod.errors import DeployError, EnvironmentProblem, ExitCode
from flaskprod.lab import Lab, LabHost


def connect_error(remote: Remote) -> str:
    with pytest.raises(DeployError) as caught:
        remote.connect()
    assert caught.value.exit_code == ExitCode.DEPLOY
    return str(caught.value)


def test_a_host_is_a_booted_debian_reached_by_its_alias(lab: Lab, lab_host: LabHost) -> None:
    with Remote(lab_host.name, ssh_config=lab.ssh_config) as remote:
        facts = remote.connect()
        assert (facts.user, facts.is_root, facts.os_id) == ("root", True, "debian")
        assert facts.os_version == "12"
        assert remote.run("hostname", step="t").stdout.strip() == lab_host.name
        state = remote.run("systemctl is-system-running", step="t", check=False).stdout
        assert state.strip() in ("running", "degraded")
        assert remote.run("systemctl is-active ssh", step="t").stdout.strip() == "active"
        # Packages come through the lab's proxy, as from a provider's mirror.
        remote.run("apt-get update -q", step="apt-get update", timeout=120)
    # A port of the host reached from this machine: sshd's banner through the relays.
    port = lab_host.forward(22)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        assert conn.recv(64).startswith(b"SSH-2.0-OpenSSH")


def test_every_boot_is_a_fresh_server(lab: Lab) -> None:
    first = lab.boot("fresh1")
    try:
        first.run("echo used > /root/marker")
        assert first.run("cat /root/marker").stdout == "used\n"
    finally:
        first.kill()
    second = lab.boot("fresh1")
    try:
        assert second.run("test -e /root/marker", check=False).returncode == 1
    finally:
        second.kill()
    assert not second.nspawn.alive()


def test_a_persistent_host_keeps_its_writes_across_a_reboot_and_the_base_stays_untouched(
    lab: Lab, lab_host: LabHost
) -> None:
    host = lab.boot("disk1", persistent=True)
    try:
        assert host.disk is not None
        host.run("echo kept > /root/kept; sync")
        boot_id = host.run("cat /proc/sys/kernel/random/boot_id").stdout
        leader = host.leader_pid
        started = time.monotonic()
        host.reboot()
        print(f"reboot of a bare persistent host: {time.monotonic() - started:.1f} s")
        assert host.run("cat /proc/sys/kernel/random/boot_id").stdout != boot_id
        assert host.leader_pid != leader and host.nspawn.alive()
        assert host.run("cat /root/kept").stdout == "kept\n"
        # the same alias, a rewritten ProxyCommand, the same host key: plain ssh works
        with Remote(host.name, ssh_config=lab.ssh_config) as remote:
            assert remote.run("cat /root/kept", step="t").stdout == "kept\n"
        # the writes are on the host's disk, not in the base the other hosts boot from
        assert (host.disk / "root" / "kept").read_text() == "kept\n"
        assert not (lab.base.rootfs / "root" / "kept").exists()
    finally:
        host.kill()
    assert not host.disk.exists()
    # a volatile host cannot reboot: everything would be lost
    with pytest.raises(EnvironmentProblem, match="persistent=True"):
        lab_host.reboot()
    assert lab_host.run("true").returncode == 0  # and it was left running


def test_put_writes_atomically_with_mode_and_owner_and_read(lab: Lab, lab_host: LabHost) -> None:
    with Remote(lab_host.name, ssh_config=lab.ssh_config) as remote:
        remote.put("SECRET=1\n", "/etc/demo/demo.env", mode="0600", owner="root:daemon")
        assert lab_host.run("stat -c '%a %U %G' /etc/demo/demo.env").stdout.split() == [
            "600",
            "root",
            "daemon",
        ]
        assert remote.read("/etc/demo/demo.env") == "SECRET=1\n"
        assert remote.read("/etc/demo/missing") is None
        # No temporary file left beside it.
        assert lab_host.run("ls /etc/demo").stdout.split() == ["demo.env"]


def test_a_failing_command_names_host_step_and_its_error(lab: Lab, lab_host: LabHost) -> None:
    with (
        Remote(lab_host.name, ssh_config=lab.ssh_config) as remote,
        pytest.raises(DeployError) as caught,
    ):
        remote.run("echo 'E: no such package' >&2; exit 100", step="install packages")
    message = str(caught.value)
    assert message.startswith(f"{lab_host.name}: install packages failed (exit 100)")
    assert "E: no such package" in message
    assert caught.value.exit_code == ExitCode.DEPLOY
    assert int(ExitCode.DEPLOY) == 7  # documented in the README


def test_unknown_host_key_is_refused_unless_accepted(lab: Lab) -> None:
    host = lab.boot("newkey", trust_host_key=False)
    try:
        with Remote(host.name, ssh_config=lab.ssh_config) as remote:
            message = connect_error(remote)
        assert "host key is not known yet" in message and "--accept-new-host-key" in message
        with Remote(host.name, ssh_config=lab.ssh_config, accept_new_key=True) as remote:
            assert remote.connect().is_root
        # Accepted once: known from now on, without the flag.
        with Remote(host.name, ssh_config=lab.ssh_config) as remote:
            assert remote.connect().is_root
    finally:
        host.kill()


def test_changed_host_key_is_refused_with_its_fingerprint(lab: Lab, lab_host: LabHost) -> None:
    # The server "reinstalled": new host keys.
    lab_host.run("rm /etc/ssh/ssh_host_*; ssh-keygen -A >/dev/null; systemctl restart ssh")
    new = lab_host.run("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    with Remote(lab_host.name, ssh_config=lab.ssh_config, accept_new_key=True) as remote:
        message = connect_error(remote)
    assert "host key changed" in message and new in message
    assert f"ssh-keygen -R {lab_host.name}" in message


def _config_with(lab: Lab, tmp_path: Path, host: str, replace: dict[str, str]) -> Path:
    text = lab.ssh_config.read_text()
    block = text[text.index(f"Host {host}\n") :].split("\n\n")[0]
    for key, value in replace.items():
        block = re.sub(rf"(?m)^  {key} .*$", f"  {key} {value}", block)
    path = tmp_path / "ssh_config"
    path.write_text(block + "\n")
    return path


def test_wrong_key_and_unreachable_host(lab: Lab, lab_host: LabHost, tmp_path: Path) -> None:
    other_key = tmp_path / "other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    wrong = _config_with(lab, tmp_path, lab_host.name, {"IdentityFile": str(other_key)})
    with Remote(lab_host.name, ssh_config=wrong) as remote:
        message = connect_error(remote)
    assert message.startswith(f"{lab_host.name}: connect: the server refused our SSH key")
    nowhere = _config_with(
        lab, tmp_path, lab_host.name, {"ProxyCommand": "socat STDIO TCP:127.0.0.1:1"}
    )
    with Remote(lab_host.name, ssh_config=nowhere, connect_timeout=5) as remote:
        message = connect_error(remote)
    assert message.startswith(f"{lab_host.name}: connect: cannot reach the host")


def test_not_debian_and_no_sudo_are_refused(lab: Lab, lab_host: LabHost, tmp_path: Path) -> None:
    lab_host.run(
        "useradd -m deployer && mkdir -m 700 ~deployer/.ssh && "
        "cp /root/.ssh/authorized_keys ~deployer/.ssh/ && chown -R deployer ~deployer/.ssh"
    )
    as_deployer = _config_with(lab, tmp_path, lab_host.name, {"User": "deployer"})
    with Remote(lab_host.name, ssh_config=as_deployer) as remote:
        assert "deployer is not root and cannot use sudo" in connect_error(remote)
    lab_host.run("echo 'deployer ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deployer")
    with Remote(lab_host.name, ssh_config=as_deployer) as remote:
        assert not remote.connect().is_root
        assert remote.run("id -u", step="t").stdout.strip() == "0"  # through sudo
    lab_host.run(
        "rm /etc/os-release && "
        "printf 'ID=fedora\\nPRETTY_NAME=\"Fedora Linux 41\"\\n' > /etc/os-release"
    )
    with Remote(lab_host.name, ssh_config=lab.ssh_config) as remote:
        assert "Fedora Linux 41 is not Debian or Ubuntu" in connect_error(remote)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("web1", "web1"),
        ("deploy@203.0.113.7", "deploy@203.0.113.7"),
        ("deploy@203.0.113.7:2222", "ssh://deploy@203.0.113.7:2222"),
        ("example.org:22", "ssh://example.org:22"),
        ("ssh://root@example.org:2200", "ssh://root@example.org:2200"),
    ],
)
def test_destinations_as_users_write_them(given: str, expected: str) -> None:
    assert ssh_destination(given) == expected


def test_hosts_on_the_private_network_reach_each_other_and_nothing_else(lab: Lab) -> None:
    app = lab.boot("app1", private_address="10.77.0.11")
    db = lab.boot("db1", private_address="10.77.0.12")
    try:
        db.run(
            "python3 -c 'import socket,time; s=socket.socket(); "
            's.bind(("10.77.0.12", 5432)); s.listen(); time.sleep(30)\' &>/dev/null &'
        )
        reach = (
            "for i in $(seq 50); do timeout 1 bash -c '</dev/tcp/10.77.0.12/5432' && exit 0; "
            "sleep 0.1; done; exit 1"
        )
        assert app.run(reach, check=False).returncode == 0
        # No route out of the lab: only the private subnet (and the host's own lo).
        assert app.run("ip -4 route").stdout.split() == [
            "10.77.0.0/24",
            "dev",
            "host0",
            "proto",
            "kernel",
            "scope",
            "link",
            "src",
            "10.77.0.11",
        ]
        # A host without a private address stays alone in its namespace.
        lone = lab.boot("lone1")
        try:
            assert lone.run("ip -4 -o addr show host0", check=False).returncode != 0
        finally:
            lone.kill()
    finally:
        app.kill()
        db.kill()
