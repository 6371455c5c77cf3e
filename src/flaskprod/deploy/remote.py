"""A server reached over SSH: the user's own OpenSSH, so ssh_config applies in full
(Host aliases, ProxyCommand/ProxyJump, IdentityFile, Port, agent), with one
multiplexed connection per host (ControlMaster) so that each command costs a round
trip, not a handshake.

Host keys are always verified: an unknown key is accepted only when the user says so
(``accept_new_key``), a changed one never. Every failure becomes one line naming the
host and the step (:class:`DeployError`).
"""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flaskprod.errors import DeployError

CONNECT_TIMEOUT = 10
#: Seconds a command may run unless the caller says otherwise (apt, pip: long).
COMMAND_TIMEOUT = 900.0
#: Distributions flaskprod provisions (os-release ID or ID_LIKE).
SUPPORTED_OS = ("debian", "ubuntu")


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class HostFacts:
    """What the first connection learns about the host."""

    user: str
    is_root: bool
    os_id: str
    os_version: str
    os_pretty: str


class Remote:
    """Commands and files on one host, as root (directly or through ``sudo -n``)."""

    def __init__(
        self,
        destination: str,
        *,
        ssh_config: Path | None = None,
        accept_new_key: bool = False,
        connect_timeout: int = CONNECT_TIMEOUT,
    ) -> None:
        self.destination = destination
        self._target = ssh_destination(destination)
        self.ssh_config = ssh_config
        self.accept_new_key = accept_new_key
        self.connect_timeout = connect_timeout
        self._control = tempfile.TemporaryDirectory(prefix="flaskprod-ssh-")
        self.facts: HostFacts | None = None

    @property
    def label(self) -> str:
        return self.destination

    # ---- ssh itself -----------------------------------------------------------------
    def ssh_argv(self, *, batch: bool = True) -> list[str]:
        argv = ["ssh"]
        if self.ssh_config is not None:
            argv += ["-F", str(self.ssh_config)]
        options = {
            "BatchMode": "yes" if batch else "no",
            "ConnectTimeout": str(self.connect_timeout),
            "StrictHostKeyChecking": "accept-new" if self.accept_new_key else "yes",
            "ControlMaster": "auto",
            "ControlPath": f"{self._control.name}/%C",
            "ControlPersist": "120",
            "ServerAliveInterval": "15",
            "ServerAliveCountMax": "4",
            "LogLevel": "ERROR",
        }
        for key, value in options.items():
            argv += ["-o", f"{key}={value}"]
        return argv

    def connect(self) -> HostFacts:
        """Open the connection and learn who we are there and what the system is;
        refuse hosts flaskprod cannot provision (not Debian/Ubuntu, no root, no sudo)."""
        if self.facts is not None:
            return self.facts
        probe = (
            "id -un; id -u; . /etc/os-release 2>/dev/null; "
            'echo "${ID:-unknown} ${ID_LIKE:-}"; echo "${VERSION_ID:-}"; echo "${PRETTY_NAME:-}"; '
            'if [ "$(id -u)" = 0 ]; then echo root; '
            "elif sudo -n true 2>/dev/null; then echo sudo; else echo nosudo; fi"
        )
        result = self._ssh(probe, step="connect", sudo=False, timeout=self.connect_timeout + 20)
        lines = result.stdout.splitlines()
        if len(lines) < 6:
            raise DeployError(f"{self.label}: connect: unexpected answer {result.stdout!r}")
        user, uid, os_ids, version, pretty, power = lines[:6]
        ids = os_ids.split()
        if not any(i in SUPPORTED_OS for i in ids):
            raise DeployError(
                f"{self.label}: connect: {pretty or ids[0]} is not Debian or Ubuntu",
                hint="flaskprod provisions Debian 12+ and Ubuntu 22.04+ servers",
            )
        if power == "nosudo":
            raise DeployError(
                f"{self.label}: connect: {user} is not root and cannot use sudo without a password",
                hint=f"connect as root, or allow {user} 'NOPASSWD: ALL' in /etc/sudoers.d/",
            )
        self.facts = HostFacts(user, uid == "0", ids[0], version, pretty)
        return self.facts

    def _ssh(
        self,
        command: str,
        *,
        step: str,
        sudo: bool = True,
        input: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> Completed:
        remote = command
        if sudo and self.facts is not None and not self.facts.is_root:
            remote = "sudo -n -H bash -c " + shlex.quote(command)
        else:
            remote = "bash -c " + shlex.quote(command)
        try:
            result = subprocess.run(
                [*self.ssh_argv(), self._target, remote],
                input=input if input is not None else b"",
                capture_output=True,
                timeout=timeout or COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise DeployError(
                f"{self.label}: {step}: no answer after {error.timeout:.0f}s"
            ) from None
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        if result.returncode == 255:
            raise self._ssh_failure(step, stderr)
        if check and result.returncode != 0:
            raise DeployError(
                f"{self.label}: {step} failed (exit {result.returncode}): "
                f"{last_lines(stderr or stdout)}"
            )
        return Completed(result.returncode, stdout, stderr)

    def _ssh_failure(self, step: str, stderr: str) -> DeployError:
        """OpenSSH's own failures (exit 255), each told how to fix."""
        host = self.label
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            fingerprint = _fingerprint(stderr)
            return DeployError(
                f"{host}: {step}: the host key changed ({fingerprint}); refusing to connect",
                hint="if the server was reinstalled, check the new fingerprint with its "
                f"provider, then run: ssh-keygen -R {_hostname(host)}",
            )
        if "Host key verification failed" in stderr or "No ED25519 host key is known" in stderr:
            return DeployError(
                f"{host}: {step}: the host key is not known yet",
                hint="check its fingerprint, then run again with --accept-new-host-key",
            )
        if "Permission denied" in stderr:
            return DeployError(
                f"{host}: {step}: the server refused our SSH key ({last_lines(stderr)})",
                hint="check the IdentityFile in ssh_config and the server's authorized_keys",
            )
        if "Could not resolve hostname" in stderr:
            return DeployError(
                f"{host}: {step}: unknown host name",
                hint="check the destination or its Host block in ssh_config",
            )
        return DeployError(f"{host}: {step}: cannot reach the host over SSH ({last_lines(stderr)})")

    # ---- what the provisioning and the release use ---------------------------------
    def run(
        self,
        command: str | Sequence[str],
        *,
        step: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> Completed:
        """Run ``command`` as root on the host (a shell line, or an argv quoted for it)."""
        self.connect()
        line = command if isinstance(command, str) else shlex.join(command)
        data = input.encode() if isinstance(input, str) else input
        return self._ssh(line, step=step, input=data, check=check, timeout=timeout)

    def put(
        self,
        data: str | bytes,
        path: str,
        *,
        mode: str = "0644",
        owner: str = "root:root",
        step: str | None = None,
    ) -> None:
        """Write ``data`` to ``path`` atomically (a temporary file renamed into place)."""
        quoted = shlex.quote(path)
        self.run(
            f'set -e; mkdir -p "$(dirname {quoted})"; '
            f'tmp=$(mktemp {quoted}.XXXXXX); cat > "$tmp"; chmod {mode} "$tmp"; '
            f'chown {shlex.quote(owner)} "$tmp"; mv -f "$tmp" {quoted}',
            step=step or f"write {path}",
            input=data,
        )

    def put_tar(self, archive: bytes, folder: str, *, step: str) -> None:
        """Unpack a tar archive into ``folder`` (created)."""
        quoted = shlex.quote(folder)
        self.run(f"set -e; mkdir -p {quoted}; tar -x -C {quoted}", step=step, input=archive)

    def read(self, path: str, *, step: str | None = None) -> str | None:
        """A file's text, None when it does not exist."""
        quoted = shlex.quote(path)
        result = self.run(
            f"if [ -e {quoted} ]; then cat {quoted}; else exit 3; fi",
            step=step or f"read {path}",
            check=False,
        )
        if result.returncode == 3:
            return None
        if result.returncode != 0:
            raise DeployError(f"{self.label}: read {path}: {last_lines(result.stderr)}")
        return result.stdout

    def close(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [*self.ssh_argv(), "-O", "exit", self._target],
                capture_output=True,
                timeout=10,
                check=False,
            )
        self._control.cleanup()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def ssh_destination(destination: str) -> str:
    """``[user@]host:port`` (the form users write) as OpenSSH takes it
    (``ssh://[user@]host:port``); aliases and plain hosts unchanged."""
    match = re.fullmatch(r"((?:[^@/]+@)?)([^:@/\[\]]+):(\d+)", destination)
    if match is None:
        return destination
    return f"ssh://{match.group(1)}{match.group(2)}:{match.group(3)}"


def last_lines(text: str, count: int = 2) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) if lines else "no output"


def _fingerprint(stderr: str) -> str:
    match = re.search(r"(SHA256:[A-Za-z0-9+/=]+)", stderr)
    return match.group(1) if match else "fingerprint not shown"


def _hostname(destination: str) -> str:
    host = destination.rpartition("@")[2]
    if host.startswith("[") or host.count(":") != 1:
        return host
    name, _, port = host.partition(":")
    return f"[{name}]:{port}" if port.isdigit() else host
