"""Several hosts by role: who is the balancer, the app hosts, the database and Redis
host, and the private address each is reached by (docs/deploy.md, "Several hosts").

A spec without ``[deploy.balancer]``/``[deploy.database]`` is one server holding every
role (:meth:`Topology.of` returns None): the single-host deploy, unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flaskprod.errors import DeployError

if TYPE_CHECKING:
    from flaskprod.deploy.remote import Remote
    from flaskprod.spec.model import Spec

APP, BALANCER, DATABASE, REDIS = "app", "balancer", "database", "redis"
#: SeaweedFS, the uploads' and the backups' object store (``[deploy.storage]``).
STORAGE = "storage"

#: What a private address may be: RFC 1918, and IPv6 unique local addresses (RFC 4193).
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


@dataclass(frozen=True)
class Topology:
    """The hosts of a deploy over several hosts, in the spec's words."""

    app_hosts: tuple[str, ...]
    balancer: str
    database: str
    redis: str
    #: The object store's host (None: uploads on each app host, or an S3 elsewhere).
    storage: str | None = None
    #: host -> private address (from the spec; the others are discovered).
    private: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: Spec) -> Topology | None:
        deploy = spec.deploy
        if deploy.balancer is None or deploy.database is None:
            return None
        return cls(
            app_hosts=tuple(deploy.hosts),
            balancer=deploy.balancer.host,
            database=deploy.database.host,
            redis=(deploy.redis or deploy.database).host,
            storage=deploy.storage.host if deploy.storage else None,
            private=dict(deploy.private),
        )

    @property
    def hosts(self) -> list[str]:
        """Every host once: the database (and Redis) host first, then the app hosts,
        then the balancer and the storage host when they are hosts of their own."""
        ordered = [self.database, self.redis, *self.app_hosts, self.balancer]
        ordered += [self.storage] if self.storage else []
        return list(dict.fromkeys(ordered))

    def roles(self, host: str) -> frozenset[str]:
        held = set()
        if host in self.app_hosts:
            held.add(APP)
        if host == self.balancer:
            held.add(BALANCER)
        if host == self.database:
            held.add(DATABASE)
        if host == self.redis:
            held.add(REDIS)
        if host == self.storage:
            held.add(STORAGE)
        return frozenset(held)


def is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in PRIVATE_NETWORKS)


#: Global-scope addresses of the host, one per line ("inet 10.0.0.5/24 ...").
_ADDRESSES = "ip -o addr show scope global | awk '{print $4}'"


def discover_private_address(remote: Remote, host: str) -> str:
    """The host's one private (RFC 1918 / ULA) address; none or several: one line asking
    to name it in the spec (exit 7)."""
    done = remote.run(_ADDRESSES, step="private address", check=False)
    found = []
    for line in done.stdout.split():
        address = line.split("/")[0]
        try:
            if is_private(address):
                found.append(address)
        except ValueError:
            continue
    if len(found) == 1:
        return found[0]
    what = "no private (RFC 1918 / ULA) address" if not found else "several: " + ", ".join(found)
    raise DeployError(
        f"{host}: private address: {what}",
        hint=f'set it in flaskprod.toml, under [deploy.private]: {host} = "ADDRESS"',
    )


@dataclass(frozen=True)
class Placement:
    """Everything a host must know of the others (private addresses by role)."""

    topology: Topology
    addresses: dict[str, str]  # host -> private address

    def address(self, host: str) -> str:
        return self.addresses[host]

    @property
    def app_addresses(self) -> list[str]:
        return [self.addresses[h] for h in self.topology.app_hosts]

    @property
    def balancer_address(self) -> str:
        return self.addresses[self.topology.balancer]

    @property
    def database_address(self) -> str:
        return self.addresses[self.topology.database]

    @property
    def redis_address(self) -> str:
        return self.addresses[self.topology.redis]

    @property
    def storage_address(self) -> str | None:
        storage = self.topology.storage
        return self.addresses[storage] if storage else None

    def clients_of_storage(self) -> list[str]:
        """Who reaches the object store: the app hosts (uploads), the balancer (it
        streams media from it) and the database host (it copies its backups there)."""
        topology = self.topology
        hosts = [*topology.app_hosts, topology.balancer, topology.database]
        return list(dict.fromkeys(self.addresses[h] for h in hosts if h != topology.storage))

    def placed_spec(self, spec: Spec) -> Spec:
        """``spec`` as the hosts see it: uploads at the storage host's private address
        (storage.endpoint names 127.0.0.1 in the project, for ``up``)."""
        from flaskprod.spec.model import S3_PORT

        address = self.storage_address
        if address is None:
            return spec
        host = f"[{address}]" if ":" in address else address
        storage = spec.storage.model_copy(update={"endpoint": f"http://{host}:{S3_PORT}"})
        return spec.model_copy(update={"storage": storage})


@dataclass(frozen=True)
class HostPlan:
    """One host of several: its roles and what it must know of the others."""

    host: str
    roles: frozenset[str]
    placement: Placement
    #: The database host's secrets file, read there over SSH (waits until it is made;
    #: None: a dry run before it exists). Only app hosts ask for it.
    shared_secrets: Callable[[], str | None] | None = None
    #: Called on the database host once its secrets exist (the app hosts wait for it).
    secrets_made: Callable[[], None] | None = None
    #: Called on the storage host once the object store serves the bucket.
    storage_made: Callable[[], None] | None = None
    #: Waits for that (the database host, before its first backup copies off the host).
    storage_wait: Callable[[], None] | None = None

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def address(self) -> str:
        return self.placement.address(self.host)
