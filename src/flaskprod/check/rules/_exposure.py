"""An exposure score for a systemd service, in the spirit of
``systemd-analyze security``: each hardening setting has a weight (the same relative
weights systemd 252 shows), the score is the weighted share of what is left open,
0.0 (locked down) to 10.0 (nothing restricted). It is computed from the unit file
alone, so it runs anywhere, and tracks systemd's own figure within about one point.
"""

from __future__ import annotations

from collections.abc import Callable

from flaskprod.launch.systemd import Unit

#: Capabilities systemd weighs, with weights (tenths of a point as systemd shows them).
_CAPABILITIES = {
    "CAP_SYS_TIME": 2, "CAP_SYS_PACCT": 1, "CAP_KILL": 1, "CAP_WAKE_ALARM": 1,
    "CAP_DAC_OVERRIDE": 2, "CAP_LINUX_IMMUTABLE": 1, "CAP_IPC_LOCK": 1,
    "CAP_SYS_MODULE": 2, "CAP_BPF": 1, "CAP_SYS_TTY_CONFIG": 1, "CAP_SYS_BOOT": 1,
    "CAP_SYS_CHROOT": 1, "CAP_BLOCK_SUSPEND": 1, "CAP_LEASE": 1, "CAP_MKNOD": 1,
    "CAP_CHOWN": 2, "CAP_SETUID": 3, "CAP_MAC_ADMIN": 1, "CAP_SYS_RAWIO": 2,
    "CAP_SYS_PTRACE": 3, "CAP_SYS_NICE": 1, "CAP_NET_ADMIN": 2, "CAP_NET_BIND_SERVICE": 1,
    "CAP_AUDIT_WRITE": 1, "CAP_SYS_ADMIN": 3, "CAP_SYSLOG": 1,
}  # fmt: skip
_SYSCALL_GROUPS = {
    "@clock": 2, "@cpu-emulation": 1, "@debug": 2, "@module": 2, "@mount": 2,
    "@obsolete": 1, "@privileged": 2, "@raw-io": 2, "@reboot": 2, "@resources": 2,
    "@swap": 2,
}  # fmt: skip
_NAMESPACES = {"user": 3, "pid": 1, "net": 1, "uts": 1, "mnt": 1, "cgroup": 1, "ipc": 1}
_FAMILIES_WEIGHT = 6  # AF_PACKET, AF_NETLINK, other families (a web app needs INET/UNIX)
_ALWAYS_OPEN = 5 + 3 + 1  # PrivateNetwork, AF_INET, AF_UNIX: a web app cannot close them
#: Checks systemd counts that pass unless a unit opens them on purpose
#: (AmbientCapabilities=, KeyringMode=, Delegate=, NotifyAccess=, RemoveIPC=, ...).
_CLOSED_BY_DEFAULT = 5

_TRUE = ("yes", "true", "on", "1")


def _yes(unit: Unit, key: str) -> bool:
    return unit.value("Service", key).lower() in _TRUE


def _set(unit: Unit, key: str, *accepted: str) -> bool:
    value = unit.value("Service", key).lower()
    return value in accepted if accepted else value not in ("", "no", "false", "off", "0")


def _user_ok(unit: Unit) -> bool:
    user = unit.value("Service", "User")
    return _yes(unit, "DynamicUser") or user not in ("", "root", "0")


def _capabilities_open(unit: Unit) -> int:
    values = [a.value for a in unit.all("Service", "CapabilityBoundingSet")]
    if not values:
        declared = any(a.key == "CapabilityBoundingSet" for a in unit.assignments)
        return 0 if declared else sum(_CAPABILITIES.values())  # empty: no capabilities
    kept: set[str] = set()
    dropped: set[str] = set()
    for value in values:
        if value.startswith("~"):
            dropped.update(value[1:].split())
        else:
            kept.update(value.split())
    if dropped and not kept:
        return sum(w for cap, w in _CAPABILITIES.items() if cap not in dropped)
    return sum(w for cap, w in _CAPABILITIES.items() if cap in kept)


def _syscalls_open(unit: Unit) -> int:
    values = [a.value for a in unit.all("Service", "SystemCallFilter")]
    if not values:
        return sum(_SYSCALL_GROUPS.values())
    allowed: set[str] = set()
    denied: set[str] = set()
    for value in values:
        if value.startswith("~"):
            denied.update(value[1:].split())
        else:
            allowed.update(value.split())
    if allowed:  # an allow list: groups it does not name are closed
        open_groups = {g for g in _SYSCALL_GROUPS if g in allowed}
        return sum(_SYSCALL_GROUPS[g] for g in open_groups - denied)
    return sum(w for g, w in _SYSCALL_GROUPS.items() if g not in denied)


def _namespaces_open(unit: Unit) -> int:
    value = unit.value("Service", "RestrictNamespaces").lower()
    if value in _TRUE:
        return 0
    if value in ("", "no", "false", "off", "0"):
        return sum(_NAMESPACES.values())
    if value.startswith("~"):
        return sum(w for n, w in _NAMESPACES.items() if n not in value[1:].split())
    return sum(w for n, w in _NAMESPACES.items() if n in value.split())


def _families_open(unit: Unit) -> int:
    value = unit.value("Service", "RestrictAddressFamilies")
    if not value or value.startswith("~"):
        return _FAMILIES_WEIGHT
    families = set(value.split())
    return (
        (2 if "AF_PACKET" in families else 0)
        + (1 if "AF_NETLINK" in families else 0)
        + (3 if families - {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"} else 0)
    )


_Check = Callable[[Unit], bool]
#: (setting, weight, passes?) for the yes/no style settings.
_SIMPLE: list[tuple[str, int, _Check]] = [
    ("User=/DynamicUser=", 4, _user_ok),
    ("NoNewPrivileges=", 2, lambda u: _yes(u, "NoNewPrivileges")),
    ("PrivateDevices=", 2, lambda u: _yes(u, "PrivateDevices")),
    ("ProtectClock=", 2, lambda u: _yes(u, "ProtectClock")),
    ("ProtectKernelLogs=", 2, lambda u: _yes(u, "ProtectKernelLogs")),
    ("ProtectControlGroups=", 2, lambda u: _yes(u, "ProtectControlGroups")),
    ("ProtectKernelModules=", 2, lambda u: _yes(u, "ProtectKernelModules")),
    ("ProtectKernelTunables=", 2, lambda u: _yes(u, "ProtectKernelTunables")),
    ("PrivateMounts=", 2, lambda u: _yes(u, "PrivateMounts")),
    ("SystemCallArchitectures=", 2, lambda u: _set(u, "SystemCallArchitectures", "native")),
    ("MemoryDenyWriteExecute=", 1, lambda u: _yes(u, "MemoryDenyWriteExecute")),
    ("RestrictSUIDSGID=", 2, lambda u: _yes(u, "RestrictSUIDSGID")),
    ("ProtectHostname=", 1, lambda u: _yes(u, "ProtectHostname")),
    ("LockPersonality=", 1, lambda u: _yes(u, "LockPersonality")),
    ("RestrictRealtime=", 1, lambda u: _yes(u, "RestrictRealtime")),
    (
        "DeviceAllow=",
        2,
        lambda u: bool(u.all("Service", "DeviceAllow")) or _yes(u, "PrivateDevices"),
    ),
    ("ProtectSystem=", 2, lambda u: _set(u, "ProtectSystem", "strict")),
    ("ProtectProc=", 2, lambda u: _set(u, "ProtectProc", "invisible", "noaccess")),
    ("ProcSubset=", 1, lambda u: _set(u, "ProcSubset", "pid")),
    ("ProtectHome=", 2, lambda u: _set(u, "ProtectHome", "yes", "true", "read-only", "tmpfs")),
    ("PrivateUsers=", 2, lambda u: _yes(u, "PrivateUsers")),
    ("PrivateTmp=", 2, lambda u: _yes(u, "PrivateTmp")),
    ("IPAddressDeny=", 2, lambda u: bool(u.value("Service", "IPAddressDeny"))),
    ("UMask=", 1, lambda u: u.value("Service", "UMask", "0022")[-1:] in ("7",)),
    ("RootDirectory=/RootImage=", 1, lambda u: bool(u.value("Service", "RootDirectory"))),
]


def exposure(unit: Unit) -> tuple[float, list[str]]:
    """(score 0.0-10.0, the heaviest open settings, most important first)."""
    total, open_weight = _ALWAYS_OPEN + _CLOSED_BY_DEFAULT, _ALWAYS_OPEN
    missing: list[tuple[int, str]] = []
    for name, weight, passes in _SIMPLE:
        total += weight
        if not passes(unit):
            open_weight += weight
            missing.append((weight, name))
    for name, maximum, measure in (
        ("CapabilityBoundingSet=", sum(_CAPABILITIES.values()), _capabilities_open),
        ("SystemCallFilter=", sum(_SYSCALL_GROUPS.values()), _syscalls_open),
        ("RestrictNamespaces=", sum(_NAMESPACES.values()), _namespaces_open),
        ("RestrictAddressFamilies=", _FAMILIES_WEIGHT, _families_open),
    ):
        total += maximum
        left = measure(unit)
        open_weight += left
        if left:
            missing.append((left, name))
    missing.sort(key=lambda item: -item[0])
    return round(10 * open_weight / total, 1), [name for _, name in missing]
