"""Which roles the checked host holds in a deploy over several hosts, and the private
addresses of the others (the firewall and pg_hba rules compare sources with them).

A spec without roles is one server holding them all. With roles, the host is named by
``options["host_name"]`` (``check --host DEST`` passes DEST to the check it runs there),
else by this machine's hostname when it is one of the spec's hosts; the addresses come
from ``options["host_addresses"]`` (what deploy found), else ``[deploy.private]``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from flaskprod.check.context import Context
from flaskprod.check.model import HOST_ROLES
from flaskprod.deploy.roles import Placement, Topology
from flaskprod.errors import UserError
from flaskprod.spec.model import Spec

EVERY_ROLE = frozenset(HOST_ROLES)


@dataclass(frozen=True)
class HostRoles:
    #: The spec's name of this host; None: one server (every role).
    name: str | None
    roles: frozenset[str]
    topology: Topology | None = None
    #: host -> private address, as far as known.
    addresses: dict[str, str] = field(default_factory=dict)

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def app_addresses(self) -> list[str] | None:
        """The app hosts' private addresses; None when one is unknown."""
        if self.topology is None:
            return None
        found = [self.addresses.get(h) for h in self.topology.app_hosts]
        return None if None in found else [a for a in found if a]

    @property
    def balancer_address(self) -> str | None:
        return self.addresses.get(self.topology.balancer) if self.topology else None

    def placed_spec(self, spec: Spec) -> Spec:
        """``spec`` as deploy placed it on the hosts (:meth:`Placement.placed_spec`)."""
        if self.topology is None or self.topology.storage is None:
            return spec
        if self.topology.storage not in self.addresses:
            return spec
        return Placement(self.topology, self.addresses).placed_spec(spec)

    @property
    def storage_clients(self) -> list[str] | None:
        """Who reaches the object store (app hosts, balancer, database host) but the
        storage host itself; None when an address is unknown."""
        if self.topology is None:
            return None
        topology = self.topology
        hosts = [*topology.app_hosts, topology.balancer, topology.database]
        found = [self.addresses.get(h) for h in dict.fromkeys(hosts) if h != self.name]
        return None if None in found else list(dict.fromkeys(a for a in found if a))


def roles_of(spec: Spec | None, name: str | None, addresses: dict[str, str]) -> HostRoles:
    """The roles of host ``name`` of the spec (None: this machine's hostname). One line
    naming the hosts when it is none of them (exit 2)."""
    topology = Topology.of(spec) if spec is not None else None
    if topology is None:
        return HostRoles(None, EVERY_ROLE)
    if name is None:
        here = socket.gethostname()
        name = here if here in topology.hosts else None
    if name is None or name not in topology.hosts:
        hosts = ", ".join(topology.hosts)
        raise UserError(
            f"flaskprod.toml: {name or socket.gethostname()} is none of the spec's hosts ({hosts})",
            hint="check it from your machine: flaskprod check --host DEST (one of them) "
            "or --hosts (all)",
        )
    known = {**topology.private, **addresses}
    return HostRoles(name, topology.roles(name), topology, known)


def host_roles(ctx: Context) -> HostRoles:
    if "host_roles" not in ctx.cache:
        name = ctx.options.get("host_name")
        addresses = ctx.options.get("host_addresses") or {}
        ctx.cache["host_roles"] = roles_of(ctx.spec, name, dict(addresses))
    found: HostRoles = ctx.cache["host_roles"]
    return found
