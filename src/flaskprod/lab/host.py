"""Real Debian hosts on this machine: systemd-nspawn containers booted from the cached
base, each in a network namespace of its own, reached by plain OpenSSH through a
ProxyCommand (so a deploy reaches them exactly as it reaches a server: via ssh_config).

Every process the lab starts (nspawn, relays, the package proxy) is recorded and stopped
by pid; a host's writes live in a tmpfs overlay and vanish with it, or, for a persistent
host, in a disk of its own (an overlay upper directory in the lab's workdir) that
outlives :meth:`LabHost.reboot`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flaskprod.errors import EnvironmentProblem, ServiceFailed
from flaskprod.lab.base import PROXY_PORT, Base, ensure_base
from flaskprod.lab.network import BRIDGE, PREFIX, PrivateNetwork
from flaskprod.lab.proxy import PackageProxy
from flaskprod.stack import process
from flaskprod.stack.ports import free_port

BOOT_TIMEOUT = 60.0
#: How long a clean poweroff may take (PostgreSQL, the app servers, the journal).
SHUTDOWN_TIMEOUT = 60.0
Echo = Callable[[str], None]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def _container_init(nspawn_pid: int) -> int | None:
    """The host's PID 1 (systemd), a child of nspawn once the intermediate process
    nspawn forks first has handed over (reading too early would find that one)."""
    for child in _children(nspawn_pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                return child
    return None


@dataclass
class LabHost:
    """One booted host. ``name`` is its ssh_config alias (and hostname)."""

    name: str
    lab: Lab
    nspawn: process.Process
    leader_pid: int
    #: Its address on the lab's private network, if it is on it.
    address: str | None = None
    #: A persistent host's disk: the overlay's upper directory over the read-only base
    #: (``None``: its writes live in a tmpfs and die with it).
    disk: Path | None = None
    _helpers: list[process.Process] = field(default_factory=list)

    # ---- for tests: look inside without SSH ------------------------------------------
    def nsenter(self, *, network_only: bool = False) -> list[str]:
        spaces = ["-n"] if network_only else ["-m", "-u", "-i", "-n", "-p"]
        return ["nsenter", "-t", str(self.leader_pid), *spaces, "--"]

    def run(
        self, command: str | Sequence[str], *, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as root inside the host (a shell line or an argv)."""
        argv = ["bash", "-c", command] if isinstance(command, str) else list(command)
        result = subprocess.run(
            [*self.nsenter(), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name}: {command!r} exited {result.returncode}: "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    @property
    def ssh_config(self) -> Path:
        return self.lab.ssh_config

    def forward(self, port: int) -> int:
        """A loopback port of this machine that reaches ``port`` on the host's own
        loopback (two relays joined by a unix socket, one in each namespace)."""
        relay = self.lab.workdir / f"{self.name}-{port}.sock"
        relay.unlink(missing_ok=True)
        inner = process.start(
            [
                *self.nsenter(network_only=True),
                "socat",
                f"UNIX-LISTEN:{relay},fork,mode=600",
                f"TCP:127.0.0.1:{port}",
            ],
            name=f"{self.name}-{port}-in",
            log_path=self.lab.workdir / "relays.log",
            die_with_parent=True,
        )
        self._helpers.append(inner)
        _wait_for(relay.exists, 5.0, f"{self.name}: relay for port {port}")
        local = free_port()
        outer = process.start(
            [
                "socat",
                f"TCP-LISTEN:{local},bind=127.0.0.1,reuseaddr,fork,backlog=512",
                f"UNIX-CONNECT:{relay}",
            ],
            name=f"{self.name}-{port}-out",
            log_path=self.lab.workdir / "relays.log",
            die_with_parent=True,
        )
        self._helpers.append(outer)
        _wait_for(lambda: _accepts(local), 5.0, f"{self.name}: forward of port {port}")
        return local

    def wait_running(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Until systemd says the boot finished and sshd listens."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if not self.nspawn.alive():
                raise ServiceFailed(
                    f"lab host {self.name}: systemd-nspawn exited: {self.nspawn.log_tail()}"
                )
            state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded") and self._sshd_listens():
                return
            time.sleep(0.2)
        raise ServiceFailed(f"lab host {self.name}: not booted after {timeout:.0f}s ({state})")

    def _sshd_listens(self) -> bool:
        return self.run(["ss", "-Hltn", "sport = :22"], check=False).stdout.strip() != ""

    # ---- lifecycle ------------------------------------------------------------------
    def kill(self) -> None:
        """Power loss: SIGKILL to the host's init takes the whole namespace down at once."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.leader_pid, signal.SIGKILL)
        self.stop()

    def power_cut(self) -> None:
        """Power loss that keeps a persistent host's disk: SIGKILL to its init (the
        namespace goes at once), nothing else; :meth:`power_on` boots it again."""
        if self.disk is None:
            raise EnvironmentProblem(
                f"lab host {self.name}: its writes live in a tmpfs, nothing would come back "
                "after a power cut; boot it with lab.boot(..., persistent=True)"
            )
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.leader_pid, signal.SIGKILL)
        self._shut_down(10.0)

    def power_on(self) -> None:
        """Boot a host after :meth:`power_cut`, from its disk, under the same name and
        address (what is enabled starts; nothing is run on it)."""
        assert self.disk is not None
        self.nspawn, self.leader_pid = self.lab.spawn(self.name, self.address, self.disk)
        self.lab.bring_up(self)
        self.lab.write_ssh_config()

    def stop(self, timeout: float = 20.0) -> None:
        """Shut the host down (SIGTERM to nspawn: a clean poweroff), then its relays; a
        persistent host's disk goes with it."""
        self._shut_down(timeout)
        if self in self.lab.hosts:
            self.lab.hosts.remove(self)
        self.lab.write_ssh_config()
        if self.disk is not None:
            shutil.rmtree(self.disk, ignore_errors=True)

    def reboot(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """A clean poweroff (SIGTERM to nspawn, waited for), then a boot from the same
        disk under the same name: what is enabled starts again, nothing else is done.
        The ssh_config entry is rewritten (the host has a new leader pid); the host key
        is on the disk, so known_hosts still holds. Relays (:meth:`forward`, and helpers
        such as Pebble) lived in the old network namespace: they are stopped, and a
        caller makes the forwards it needs again."""
        if self.disk is None:
            raise EnvironmentProblem(
                f"lab host {self.name}: its writes live in a tmpfs, a reboot would lose "
                "them all; boot it with lab.boot(..., persistent=True)"
            )
        self.nspawn.send(signal.SIGTERM, group=False)  # nspawn: poweroff inside the host
        deadline = time.monotonic() + timeout
        while self.nspawn.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        clean = not self.nspawn.alive()
        self._shut_down(5.0)
        if not clean:
            self.stop()
            raise ServiceFailed(
                f"lab host {self.name}: no clean poweroff within {timeout:.0f}s "
                f"(killed): {self.nspawn.log_tail()}"
            )
        self.nspawn, self.leader_pid = self.lab.spawn(self.name, self.address, self.disk)
        self.lab.bring_up(self)
        self.lab.write_ssh_config()

    def _shut_down(self, timeout: float) -> None:
        process.stop_pid(self.nspawn.pid, expected_start=self.nspawn.started, timeout=timeout)
        for helper in reversed(self._helpers):
            process.stop_pid(helper.pid, expected_start=helper.started, timeout=5.0)
        self._helpers.clear()
        self.lab.keep_downloads(self.name)


def _escape(path: Path) -> str:
    """A path in a colon-separated nspawn option (``\\:`` embeds a colon)."""
    return str(path).replace("\\", "\\\\").replace(":", "\\:")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise ServiceFailed(f"{what}: not ready after {timeout:.0f}s")


@dataclass
class Lab:
    """The base, the package proxy and the hosts booted from them, in ``workdir``."""

    workdir: Path
    base: Base
    proxy: PackageProxy
    hosts: list[LabHost] = field(default_factory=list)
    network: PrivateNetwork | None = None

    @classmethod
    def start(cls, workdir: Path, echo: Echo | None = None) -> Lab:
        base = ensure_base(echo)
        base.apt_archives.joinpath("partial").mkdir(parents=True, exist_ok=True)
        base.pip_cache.mkdir(parents=True, exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        lab = cls(workdir=workdir, base=base, proxy=PackageProxy.start(workdir / "proxy"))
        lab.known_hosts.write_text("")
        lab.write_ssh_config()
        return lab

    @property
    def ssh_config(self) -> Path:
        return self.workdir / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    def boot(
        self,
        name: str,
        *,
        trust_host_key: bool = True,
        private_address: str | None = None,
        persistent: bool = False,
    ) -> LabHost:
        """A fresh host named ``name``, booted and reachable over SSH as ``name``.
        ``trust_host_key``: its key goes into the lab's known_hosts, as a user who
        checked the fingerprint would have it (False: ssh meets an unknown key).
        ``private_address``: also on the lab's private network with this address
        (hosts that must reach each other: app, database, balancer).
        ``persistent``: its writes go to a disk of its own (``NAME-disk`` in the lab's
        workdir, the upper directory of an overlay over the read-only base) instead of
        a tmpfs, so that :meth:`LabHost.reboot` keeps them; the disk is deleted when the
        host stops."""
        if any(h.name == name for h in self.hosts):
            raise EnvironmentProblem(f"lab: a host named {name} is already running")
        if private_address is not None and self.network is None:
            self.network = PrivateNetwork.create()
        disk = None
        if persistent:
            disk = self.workdir / f"{name}-disk"
            shutil.rmtree(disk, ignore_errors=True)  # a fresh host: an empty disk
            disk.mkdir()
        nspawn, leader = self.spawn(name, private_address, disk)
        host = LabHost(
            name=name,
            lab=self,
            nspawn=nspawn,
            leader_pid=leader,
            address=private_address,
            disk=disk,
        )
        self.hosts.append(host)
        self.bring_up(host)
        if trust_host_key:
            with self.known_hosts.open("a") as handle:
                handle.write(f"{name} {self.base.host_key}\n")
        self.write_ssh_config()
        return host

    def spawn(
        self, name: str, private_address: str | None, disk: Path | None
    ) -> tuple[process.Process, int]:
        """Start systemd-nspawn booting the host; returns it and the host's PID 1."""
        network = (
            ["--private-network"]
            if private_address is None or self.network is None
            else [f"--network-bridge={BRIDGE}"]
        )
        enter = self.network.enter() if private_address and self.network else []
        # The base is the overlay's lower layer either way: never written to.
        writes = (
            ["--volatile=overlay"]
            if disk is None
            else [f"--overlay={_escape(self.base.rootfs)}:{_escape(disk)}:/"]
        )
        argv = [
            *enter,
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "--quiet",
            "-D",
            str(self.base.rootfs),
            *writes,
            *network,
            # The machine name keys state nspawn keeps outside the host
            # (/run/systemd/nspawn/propagate/NAME, removed when it exits): two labs in
            # different processes (parallel test workers) boot hosts of the same name, so
            # it gets this process's pid; the host's own name stays NAME.
            "-M",
            f"{name}-{os.getpid()}",
            f"--hostname={name}",
            f"--bind={self._host_archives(name)}:/var/cache/apt/archives",
            f"--bind={self.base.pip_cache}:/root/.cache/pip",
            "-b",
        ]
        nspawn = process.start(
            argv,
            name=f"lab-{name}",
            log_path=self.workdir / f"{name}.console.log",
            die_with_parent=True,
        )
        _wait_for(
            lambda: _container_init(nspawn.pid) is not None or not nspawn.alive(),
            10.0,
            f"lab host {name}",
        )
        leader = _container_init(nspawn.pid)
        if leader is None:
            process.stop_pid(nspawn.pid, expected_start=nspawn.started, timeout=5.0)
            raise ServiceFailed(f"lab host {name}: systemd-nspawn failed: {nspawn.log_tail()}")
        return nspawn, leader

    def bring_up(self, host: LabHost) -> None:
        """Its private address and package proxy relay, then until it is booted (killed
        when that fails)."""
        try:
            if host.address is not None:
                host.run(f"ip addr add {host.address}/{PREFIX} dev host0 && ip link set host0 up")
            host._helpers.append(self._proxy_relay(host))
            host.wait_running()
        except BaseException:
            host.kill()
            raise

    def _host_archives(self, name: str) -> Path:
        """The host's own apt archive folder, filled with hard links to the shared
        cache: apt locks its archive folder, so hosts installing at the same moment
        cannot share one (see :meth:`LabHost.stop`, which gives new downloads back)."""
        folder = self.workdir / f"{name}-apt-archives"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "partial").mkdir(parents=True)
        for deb in self.base.apt_archives.glob("*.deb"):
            with contextlib.suppress(FileExistsError):
                os.link(deb, folder / deb.name)
        return folder

    def keep_downloads(self, name: str) -> None:
        """Packages a host downloaded, linked into the shared cache for the next hosts."""
        folder = self.workdir / f"{name}-apt-archives"
        for deb in folder.glob("*.deb"):
            target = self.base.apt_archives / deb.name
            if not target.exists():
                temporary = target.with_name(f".{deb.name}.{os.getpid()}")
                with contextlib.suppress(OSError):
                    os.link(deb, temporary)
                    temporary.replace(target)
        shutil.rmtree(folder, ignore_errors=True)

    def _proxy_relay(self, host: LabHost) -> process.Process:
        return process.start(
            [
                *host.nsenter(network_only=True),
                "socat",
                f"TCP-LISTEN:{PROXY_PORT},bind=127.0.0.1,reuseaddr,fork",
                f"UNIX-CONNECT:{self.proxy.socket}",
            ],
            name=f"{host.name}-proxy",
            log_path=self.workdir / "relays.log",
            die_with_parent=True,
        )

    def write_ssh_config(self) -> None:
        blocks = [
            "\n".join(
                (
                    f"Host {host.name}",
                    f"  HostName {host.name}",
                    "  User root",
                    f"  IdentityFile {self.base.key}",
                    "  IdentitiesOnly yes",
                    f"  UserKnownHostsFile {self.known_hosts}",
                    "  ProxyCommand "
                    + shlex.join(
                        [*host.nsenter(network_only=True), "socat", "STDIO", "TCP:127.0.0.1:22"]
                    ),
                )
            )
            for host in self.hosts
        ]
        temporary = self.ssh_config.with_suffix(".tmp")
        temporary.write_text("# flaskprod lab hosts\n" + "\n\n".join(blocks) + "\n")
        temporary.replace(self.ssh_config)

    def stop(self) -> None:
        for host in list(self.hosts):
            host.kill()
        self.proxy.stop()
        if self.network is not None:
            self.network.delete()
