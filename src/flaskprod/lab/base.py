"""The lab's base root filesystem: a minimal Debian 12 as a fresh VPS has it, built once
with debootstrap and cached, keyed by everything that goes into it.

Hosts boot from it with ``--volatile=overlay``, so it is never written after the build:
every boot is a fresh server. The build goes to a temporary folder renamed into place
at the end (an interrupted build leaves nothing a later run would trust) under a lock
(parallel test runs build it once).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flaskprod.errors import EnvironmentProblem

#: Bump when the recipe below changes in a way the key does not see.
RECIPE_VERSION = "4"
SUITE = "bookworm"
#: What a fresh Debian cloud server has, and nothing flaskprod would install itself.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "sudo",
    "ca-certificates",
    "procps",
    "iproute2",
    "curl",
)
#: Inside every host a proxy to the machine's own network listens here (see proxy.py).
PROXY_PORT = 3128
#: CA certificates the machine's TLS egress is re-signed with; the hosts must trust them
#: as the machine does, or pip and apt over HTTPS fail verification.
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")


def cache_root() -> Path:
    return Path(os.environ.get("FLASKPROD_LAB_CACHE", "/var/cache/flaskprod-lab"))


@dataclass(frozen=True)
class Base:
    """A built base: its root filesystem, the lab's SSH key that root accepts, and the
    hosts' public host key (the same in every host booted from this base)."""

    rootfs: Path
    key: Path
    host_key: str

    @property
    def apt_archives(self) -> Path:
        """Downloaded packages shared by every host (a warm package cache)."""
        return self.rootfs.parent / f"{self.rootfs.name}-apt-archives"

    @property
    def pip_cache(self) -> Path:
        """pip's cache of root on every host (wheels downloaded or built once)."""
        return self.rootfs.parent / f"{self.rootfs.name}-pip-cache"


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CA_DIR.glob("*.crt")) if LOCAL_CA_DIR.is_dir() else []


def base_key() -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_VERSION, SUITE, *PACKAGES, str(PROXY_PORT)):
        digest.update(part.encode() + b"\0")
    for ca in _local_cas():
        digest.update(ca.name.encode() + b"\0" + ca.read_bytes())
    return digest.hexdigest()[:16]


def require_tools() -> None:
    missing = [
        t
        for t in ("debootstrap", "systemd-nspawn", "socat", "tinyproxy", "nsenter")
        if shutil.which(t) is None
    ]
    if missing:
        raise EnvironmentProblem(
            f"lab: missing {', '.join(missing)}",
            hint="run scripts/bootstrap.sh as root (Debian packages debootstrap, "
            "systemd-container, socat, tinyproxy)",
        )
    if os.geteuid() != 0:
        raise EnvironmentProblem("lab: booting hosts needs root (systemd-nspawn)")


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_base(echo: Callable[[str], None] | None = None) -> Base:
    """The cached base for the current recipe, built first if missing (about 1 min)."""
    require_tools()
    root = cache_root()
    key = base_key()
    rootfs = root / f"base-{key}"
    with _lock(root / f"base-{key}.lock"):
        if not (rootfs / ".flaskprod-lab-complete").exists():
            if echo is not None:
                echo(f"lab: building the Debian {SUITE} base in {rootfs} (once, ~1 min)")
            _build(rootfs)
    ssh_key = rootfs.parent / f"base-{key}-ssh" / "id_ed25519"
    host_key = (rootfs / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    return Base(rootfs=rootfs, key=ssh_key, host_key=" ".join(host_key[:2]))


def _run(argv: list[str], step: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise EnvironmentProblem(f"lab: {step} failed: {' / '.join(tail)}")


def _build(rootfs: Path) -> None:
    building = rootfs.with_name(rootfs.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(rootfs, ignore_errors=True)
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(building),
        ],
        "debootstrap",
    )
    _configure(building)
    keys = rootfs.parent / f"{rootfs.name}-ssh"
    shutil.rmtree(keys, ignore_errors=True)
    keys.mkdir(mode=0o700)
    _run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "flaskprod-lab",
            "-f",
            str(keys / "id_ed25519"),
        ],
        "ssh-keygen",
    )
    ssh_dir = building / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text((keys / "id_ed25519.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    (building / ".flaskprod-lab-complete").write_text(base_key() + "\n")
    building.rename(rootfs)


def _configure(rootfs: Path) -> None:
    """What the lab adds to a stock install: the machine's CAs, the package proxy, an
    empty machine-id (each boot makes its own)."""
    cas = _local_cas()
    if cas:
        target = rootfs / "usr/local/share/ca-certificates"
        target.mkdir(parents=True, exist_ok=True)
        for ca in cas:
            shutil.copy2(ca, target / ca.name)
        _run(["chroot", str(rootfs), "update-ca-certificates"], "update-ca-certificates")
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    (rootfs / "etc/apt/apt.conf.d/90flaskprod-lab-proxy").write_text(
        f'Acquire::http::Proxy "{proxy}";\nAcquire::https::Proxy "{proxy}";\n'
    )
    # Read by sshd's PAM: commands run over SSH (pip, curl, certbot) get the proxy; never
    # for the host's own addresses (health checks, a local ACME server).
    (rootfs / "etc/environment").write_text(
        f"http_proxy={proxy}\nhttps_proxy={proxy}\nHTTP_PROXY={proxy}\nHTTPS_PROXY={proxy}\n"
        "no_proxy=localhost,127.0.0.1,::1\nNO_PROXY=localhost,127.0.0.1,::1\n"
    )
    (rootfs / "etc/machine-id").write_text("")
    # debootstrap copies this machine's name; without the file a host is named after
    # its machine name (-M), as a VPS is after its instance.
    (rootfs / "etc/hostname").unlink(missing_ok=True)
    # A downloaded package kept for the next host (apt deletes them after install).
    (rootfs / "etc/apt/apt.conf.d/90flaskprod-lab-keep-debs").write_text(
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
    )
