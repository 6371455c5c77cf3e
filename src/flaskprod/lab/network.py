"""A private network between lab hosts: a bridge inside a network namespace of the
lab's own, nothing routed out (the namespace has no uplink and no default route).

Hosts booted on it get a ``host0`` interface on the bridge with an address the test
gives; they reach each other as servers in one data centre do, by private address.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flaskprod.errors import EnvironmentProblem

BRIDGE = "br0"
#: The lab's private range (RFC 1918); hosts get .11, .12, ... unless a test says.
SUBNET = "10.77.0"
PREFIX = 24


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EnvironmentProblem(f"lab network: ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass
class PrivateNetwork:
    namespace: str

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.namespace

    @classmethod
    def create(cls) -> PrivateNetwork:
        # Named after this process: two test runs never share (or delete) one.
        network = cls(f"flaskprod-lab-{os.getpid()}")
        if network.path.exists():
            _ip("netns", "delete", network.namespace)
        _ip("netns", "add", network.namespace)
        _ip("-n", network.namespace, "link", "set", "lo", "up")
        _ip("-n", network.namespace, "link", "add", BRIDGE, "type", "bridge")
        _ip("-n", network.namespace, "link", "set", BRIDGE, "up")
        return network

    def enter(self) -> list[str]:
        """The prefix that runs nspawn inside the namespace (``ip netns exec`` would
        remount /sys, and nspawn then fails to tell the cgroup hierarchy)."""
        return ["nsenter", f"--net={self.path}", "--"]

    def delete(self) -> None:
        if self.path.exists():
            _ip("netns", "delete", self.namespace)
