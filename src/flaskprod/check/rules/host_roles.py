"""Host rules of a deploy over several hosts (layer ``host``): between the hosts, least
privilege — each private port open only to the hosts that need it, Redis on no public
address and never without its password, pg_hba admitting the app hosts only.

Each has one shape, carried by :func:`_read_then_compare`: read what this host has (its
firewall, a configuration file; ``options["host_root"]`` for a stand-in /etc), then
compare it with what the spec's roles allow (:mod:`flaskprod.check.host.roles`); what
cannot be read is said as an info finding, never passed over.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

from flaskprod.check.context import Context
from flaskprod.check.host import host_target
from flaskprod.check.host.firewall import ANYWHERE, Allowed, ufw_allowed, ufw_status
from flaskprod.check.host.probes import CannotCheck
from flaskprod.check.host.roles import host_roles
from flaskprod.check.host.target import etc
from flaskprod.check.model import Finding, Level, Rule, rule
from flaskprod.deploy.roles import APP, BALANCER, DATABASE, REDIS, STORAGE
from flaskprod.spec.model import S3_PORT
from flaskprod.spec.pgbouncer import PORT as PGBOUNCER_PORT

_HOST = "host"
_Seen = TypeVar("_Seen")


def _cannot(owner: Rule, why: object) -> Finding:
    return owner.finding(f"could not check: {why}", level=Level.INFO)


def _read_then_compare(
    owner: Rule, read: Callable[[], _Seen], compare: Callable[[_Seen], Iterable[Finding]]
) -> Iterator[Finding]:
    """The rules' one shape: ``read`` what the host has, then ``compare`` it with what the
    roles allow. ``read`` raises :class:`CannotCheck` to say what it could not see: that
    is the rule's (info) finding, and nothing is compared."""
    try:
        seen = read()
    except CannotCheck as why:
        yield _cannot(owner, why)
        return
    yield from compare(seen)


def _private_ports(ctx: Context) -> dict[str, tuple[str, list[str] | None]]:
    """port -> (what it serves, the addresses that may reach it; None: unknown)."""
    held = host_roles(ctx)
    spec = ctx.spec
    ports: dict[str, tuple[str, list[str] | None]] = {}
    if held.topology is None or spec is None:
        return ports  # one server: nothing listens for other hosts
    if held.has(APP) and not held.has(BALANCER):
        balancer = held.balancer_address
        ports["80"] = ("the app host's site", [balancer] if balancer else None)
    if held.has(DATABASE) and spec.database.engine == "postgresql":
        ports["5432"] = ("PostgreSQL", held.app_addresses)
        if spec.database.pgbouncer:
            ports[str(PGBOUNCER_PORT)] = ("PgBouncer", held.app_addresses)
    if held.has(REDIS) and spec.redis.enabled:
        ports["6379"] = ("Redis", held.app_addresses)
    if held.has(STORAGE) and spec.storage.kind == "s3":
        ports[str(S3_PORT)] = ("SeaweedFS's S3 gateway", held.storage_clients)
    return ports


@rule(
    "HST013",
    layer=_HOST,
    level=Level.ERROR,
    roles=(APP, DATABASE, REDIS, STORAGE),
    title="A private port is open to more than the hosts that need it",
    help="Between hosts, the firewall admits each private port from the hosts that use it "
    "only: an app host's 80 from the balancer, PostgreSQL's 5432 and Redis' 6379 from the "
    "app hosts, the storage host's S3 gateway (8333) from the other hosts. 'ufw status "
    "numbered', then 'ufw delete N' the wider rule (e.g. "
    "'5432/tcp ALLOW Anywhere'); 'flaskprod deploy' adds the narrow ones.",
    example="ufw allow 5432  # on the database host: PostgreSQL open to anyone",
    level_reason="An error: the service is one step (its password, or none) from anyone "
    "who reaches the host.",
    requires=("spec",),
)
def private_port_sources(ctx: Context) -> Iterator[Finding]:
    ports = _private_ports(ctx)
    if ports:
        yield from _read_then_compare(
            private_port_sources, lambda: ufw_allowed(ufw_status()), partial(_wider, ports)
        )


def _wider(
    ports: dict[str, tuple[str, list[str] | None]], allowed: list[Allowed]
) -> Iterator[Finding]:
    """For each private port, the ufw rules admitting more than the hosts that need it."""
    for port, (what, sources) in ports.items():
        wider = sorted(
            {
                a.source
                for a in allowed
                if a.covers(port) and (a.source == ANYWHERE or sources is None or
                                       not _within(a.source, sources))
            }
        )  # fmt: skip
        if sources is None and wider:
            yield _cannot(private_port_sources, f"{port}: the other hosts' addresses are unknown")
        elif wider:
            needed = ", ".join(sources or []) or "none"
            yield private_port_sources.finding(
                f"ufw admits {what} (port {port}) from {', '.join(wider)}; only {needed} need it"
            )


def _within(source: str, addresses: list[str]) -> bool:
    """The rule's source (an address or a network) admits nothing but ``addresses``."""
    try:
        network = ipaddress.ip_network(source, strict=False)
    except ValueError:
        return False
    return network.num_addresses == 1 and str(network.network_address) in addresses


def _redis_settings(conf: Path, seen: set[Path] | None = None) -> dict[str, str]:
    """The effective settings of redis.conf and what it includes (the last wins)."""
    seen = seen if seen is not None else set()
    if conf in seen:
        return {}
    seen.add(conf)
    settings: dict[str, str] = {}
    for line in conf.read_text(errors="replace").splitlines():
        key, _, value = line.strip().partition(" ")
        if not key or key.startswith("#"):
            continue
        if key.lower() == "include":
            included = Path(value.strip())
            if not included.is_absolute() or not included.is_file():
                included = conf.parent / included.name  # a stand-in tree
            if included.is_file():
                settings.update(_redis_settings(included, seen))
            continue
        settings[key.lower()] = value.strip()
    return settings


def _public(address: str) -> bool:
    """An address anyone may reach: a wildcard, or neither loopback nor private."""
    address = address.lstrip("-")  # "-::1": bind it if it exists
    if address in ("*", "0.0.0.0", "::", "::*"):
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True  # a name: whatever it resolves to
    return not (ip.is_loopback or ip.is_private)


@rule(
    "HST014",
    layer=_HOST,
    level=Level.ERROR,
    roles=(REDIS,),
    title="Redis is bound to a public address, or beyond loopback without a password",
    help="Bind Redis to loopback and the private address only ('bind 127.0.0.1 -::1 "
    "10.0.0.5'), with 'requirepass' and 'protected-mode yes': Redis answers any command of "
    "anyone who reaches it (CONFIG SET, FLUSHALL).",
    example="bind 0.0.0.0  # in /etc/redis/redis.conf",
    level_reason="An error: a reachable Redis without a password gives its data, and often "
    "the host, to anyone.",
    requires=("spec",),
)
def redis_bind(ctx: Context) -> Iterator[Finding]:
    if ctx.spec is None or not ctx.spec.redis.enabled or host_target(ctx).kind != "server":
        return
    conf = etc(ctx) / "redis" / "redis.conf"
    yield from _read_then_compare(
        redis_bind, partial(_read_redis_conf, conf), partial(_exposed_redis, conf)
    )


def _read_redis_conf(conf: Path) -> dict[str, str]:
    try:
        return _redis_settings(conf)
    except OSError as error:
        raise CannotCheck(f"{conf}: {error.strerror}") from None


def _exposed_redis(conf: Path, settings: dict[str, str]) -> Iterator[Finding]:
    """Public addresses Redis binds, and any beyond loopback without its password."""
    bind = settings.get("bind", "*").split()  # Redis without bind: every interface
    public = [a for a in bind if _public(a)]
    if public:
        yield redis_bind.finding(
            f"Redis binds {', '.join(public)} ({conf}, bind {' '.join(bind)})", file=str(conf)
        )
    beyond = [a for a in bind if not ipaddress_is_loopback(a)]
    if beyond and not settings.get("requirepass"):
        yield redis_bind.finding(
            f"Redis binds {', '.join(beyond)} without requirepass ({conf})", file=str(conf)
        )


def ipaddress_is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.lstrip("-")).is_loopback
    except ValueError:
        return address.lstrip("-") == "localhost"


_LOCAL = {"127.0.0.1/32", "::1/128", "samehost"}


@rule(
    "HST015",
    layer=_HOST,
    level=Level.ERROR,
    roles=(DATABASE,),
    title="pg_hba.conf admits more than the app hosts",
    help="Over the network PostgreSQL admits the app hosts only, each by its own address "
    "(/32), to the app's database as the app's role, with scram-sha-256: 'host shop shop "
    "10.0.0.11/32 scram-sha-256'. Remove wider 'host' lines (0.0.0.0/0, a whole subnet, "
    "'trust') and 'SELECT pg_reload_conf()'.",
    example="host all all 0.0.0.0/0 scram-sha-256",
    level_reason="An error: a wider line leaves only a password (or, with trust, nothing) "
    "between the data and any host that reaches the port.",
    requires=("spec",),
)
def pg_hba(ctx: Context) -> Iterator[Finding]:
    spec = ctx.spec
    if spec is None or spec.database.engine != "postgresql":
        return
    if host_target(ctx).kind != "server":
        return
    yield from _read_then_compare(pg_hba, partial(_pg_hba_files, ctx), _wider_hba_lines)


def _pg_hba_files(ctx: Context) -> tuple[list[Path], set[str]]:
    """The cluster's pg_hba.conf files, and the app hosts' addresses as pg_hba writes them."""
    files = sorted((etc(ctx) / "postgresql").glob("*/main/pg_hba.conf"))
    if not files:
        raise CannotCheck(f"no {etc(ctx)}/postgresql/*/main/pg_hba.conf")
    held = host_roles(ctx)
    apps = held.app_addresses
    if held.topology is not None and apps is None:
        raise CannotCheck("the app hosts' addresses are unknown")
    return files, {f"{a}/{'128' if ':' in a else '32'}" for a in apps or []}


def _network(address: str) -> str:
    """An address of pg_hba as CIDR (``10.0.0.5/255.255.255.255`` -> ``10.0.0.5/32``);
    a keyword or a host name as written."""
    try:
        return str(ipaddress.ip_network(address, strict=False))
    except ValueError:
        return address


def _wider_hba_lines(seen: tuple[list[Path], set[str]]) -> Iterator[Finding]:
    """pg_hba lines admitting other than loopback and the app hosts, or without a password."""
    files, admitted = seen
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if len(fields) < 5 or not fields[0].startswith("host"):
                continue
            address, method = fields[3], fields[4]
            if "/" not in address and len(fields) > 5 and "." in fields[4]:
                address, method = f"{address}/{fields[4]}", fields[5]  # address and mask
            address = _network(address)
            if method == "trust" and address not in _LOCAL:
                yield pg_hba.finding(
                    f"{path}:{number}: '{line.strip()}' admits {address} without a password",
                    file=str(path),
                    line=number,
                )
            elif address not in _LOCAL | admitted:
                yield pg_hba.finding(
                    f"{path}:{number}: '{line.strip()}' admits {address}, not an app host",
                    file=str(path),
                    line=number,
                )
