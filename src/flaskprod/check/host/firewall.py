"""What the firewall admits, read from ``ufw status``: (port, source) per ALLOW rule.

80/tcp                     ALLOW       10.77.0.10
22/tcp (v6)                ALLOW       Anywhere (v6)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANYWHERE = "Anywhere"
_PORT = re.compile(r"^(\d+(?:[:,]\d+)*)(?:/\w+)?$")


@dataclass(frozen=True)
class Allowed:
    port: str  # "5432", "60000:61000", "80,443"
    source: str  # an address or network, or ANYWHERE

    def covers(self, port: str) -> bool:
        for part in self.port.split(","):
            low, _, high = part.partition(":")
            if low == port or (high and int(low) <= int(port) <= int(high)):
                return True
        return False


def ufw_allowed(status: str) -> list[Allowed]:
    """The ALLOW rules of ``ufw status`` (incoming; IPv6 twins read like the IPv4 ones)."""
    found = []
    for line in status.splitlines():
        to, verb, rest = line.partition(" ALLOW ")
        if not verb:
            continue
        source = rest.replace("(v6)", "").split()
        if source and source[0] in ("IN", "FWD"):
            if source[0] == "FWD":
                continue  # routed, not to this host
            source = source[1:]
        ports = [t for t in to.replace("(v6)", "").split() if _PORT.match(t)]
        if not ports or not source:
            continue
        found.append(Allowed(_PORT.match(ports[-1]).group(1), source[0]))  # type: ignore[union-attr]
    return found


def ufw_status() -> str:
    """``ufw status`` as printed; CannotCheck when it is missing, refused or inactive."""
    from flaskprod.check.host import probes

    result = probes.run(["ufw", "status"])
    if result.returncode != 0:
        raise probes.CannotCheck(f"ufw status: {result.stderr.strip()[:120]}")
    if "inactive" in result.stdout:
        raise probes.CannotCheck("ufw is inactive")
    return result.stdout
