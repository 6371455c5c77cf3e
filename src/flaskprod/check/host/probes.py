"""Read-only looks at this server: /proc, file modes, and commands that only report
(``nginx -t``, ``ufw status``, ``nft list ruleset``, ``systemctl show``).

A look that cannot be made raises :class:`CannotCheck` with the reason, which the
rules report as "could not check", never as a pass.
"""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT = 10.0


class CannotCheck(Exception):
    """Why a look at the system could not be made (a missing command, no permission)."""


def run(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which(argv[0]) or (argv[0] if Path(argv[0]).is_file() else None)
    if binary is None:
        raise CannotCheck(f"{argv[0]} is not installed here")
    try:
        return subprocess.run(
            [binary, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except PermissionError as error:
        raise CannotCheck(f"{argv[0]}: not permitted ({error.strerror})") from None
    except subprocess.TimeoutExpired:
        raise CannotCheck(f"{argv[0]} did not finish within {timeout:g}s") from None


def nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise CannotCheck("nginx is not installed here")


def nginx_test(conf: Path, prefix: Path | None) -> str | None:
    """None when ``nginx -t`` accepts the config, else its first error line."""
    argv = [nginx_binary(), "-t", "-q", "-c", str(conf)]
    if prefix is not None:
        argv += ["-p", str(prefix)]
    result = run(argv)
    if result.returncode == 0:
        return None
    lines = [ln for ln in result.stderr.splitlines() if "emerg" in ln or "crit" in ln]
    return (lines or result.stderr.splitlines() or [f"exit {result.returncode}"])[0]


# -- processes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def proc(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    groups = tuple(int(g) for g in fields.get("Groups", "").split())
    return Proc(
        pid=pid,
        name=fields["Name"].strip(),
        uid=int(fields["Uid"].split()[1]),  # effective
        gid=int(fields["Gid"].split()[1]),
        groups=groups,
    )


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError as error:
        raise CannotCheck(f"cannot read /proc/{pid}/fd ({error.strerror})") from None
    for fd in fds:
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _address(hex_address: str) -> str:
    address, _, port = hex_address.partition(":")
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        text = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        text = f"[{socket.inet_ntop(socket.AF_INET6, words)}]"
    return f"{text}:{int(port, 16)}"


def tcp_listeners() -> dict[int, str]:
    """Listening TCP sockets on this machine: inode -> "address:port"."""
    found: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A":  # LISTEN
                found[int(parts[9])] = _address(parts[1])
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("::1", "localhost")


# -- files ------------------------------------------------------------------------------


def can_reach(path: Path, who: Proc, *, write: bool) -> str | None:
    """None when ``who`` can connect to the socket at ``path`` (search on every parent,
    write on the socket), else the first obstacle."""
    if who.uid == 0:
        return None
    gids = {who.gid, *who.groups}
    for folder in [*reversed(path.parents)]:
        if not _allowed(folder, who.uid, gids, 0o1):
            return f"{folder} is not searchable by uid {who.uid}"
    if not _allowed(path, who.uid, gids, 0o2 if write else 0o4):
        mode = stat.filemode(path.stat().st_mode)
        return f"{path} ({mode}) is not writable by uid {who.uid}"
    return None


def _allowed(path: Path, uid: int, gids: set[int], bits: int) -> bool:
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & (bits << 6))
    if info.st_gid in gids:
        return bool(info.st_mode & (bits << 3))
    return bool(info.st_mode & bits)


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()
