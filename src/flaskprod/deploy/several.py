"""``flaskprod deploy`` over several hosts by role (``[deploy.balancer]``,
``[deploy.database]``): private addresses, every host provisioned for its roles in
parallel (threads), then a rolling release through the balancer, then the live check.

The database host makes the secrets; the app hosts wait for them (read there over SSH
into memory, never printed) before writing their env files, so provisioning runs in
parallel and only that one step waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from flaskprod.deploy.remote import Remote
from flaskprod.deploy.roles import (
    APP,
    DATABASE,
    STORAGE,
    HostPlan,
    Placement,
    Topology,
    discover_private_address,
)
from flaskprod.errors import DeployError

if TYPE_CHECKING:
    from flaskprod.deploy.provision import Kit, Provisioned, TlsFiles
    from flaskprod.deploy.rolling import Balancer
    from flaskprod.spec.model import Spec

Echo = Callable[[str], None]


@contextmanager
def connected(
    topology: Topology, ssh_config: Path | None, accept_new_key: bool
) -> Iterator[dict[str, Remote]]:
    """One Remote (one SSH connection) per host, closed at the end."""
    remotes = {
        host: Remote(host, ssh_config=ssh_config, accept_new_key=accept_new_key)
        for host in topology.hosts
    }
    try:
        yield remotes
    finally:
        for remote in remotes.values():
            remote.close()


def place(topology: Topology, remotes: dict[str, Remote], echo: Echo) -> Placement:
    """Each host's private address: the spec's, else the one found on the host."""
    addresses = {}
    for host in topology.hosts:
        address = topology.private.get(host)
        if address is None:
            remotes[host].connect()
            address = discover_private_address(remotes[host], host)
        addresses[host] = address
        roles = ", ".join(sorted(topology.roles(host)))
        echo(f"{host}: {roles} at {address}")
    return Placement(topology, addresses)


def provision_all(
    placement: Placement,
    remotes: dict[str, Remote],
    *,
    spec: Spec,
    kit: Kit,
    tls_files: TlsFiles,
    dry_run: bool,
    echo: Echo,
    parallel: bool = True,
) -> dict[str, Provisioned]:
    """Every host provisioned for its roles, in parallel threads (``parallel=False``:
    one after the other, the database host first). Raises DeployError naming the
    first host and step that failed (the others finish what they were doing)."""
    from flaskprod.deploy.engine import Engine, StepFailed
    from flaskprod.deploy.provision import Provisioner

    topology = placement.topology
    database = topology.database
    spec = placement.placed_spec(spec)
    secrets: Future[str | None] = Future()
    storage: Future[None] = Future()  # the object store serves (or will never)
    secrets_path = f"{Path(spec.resolve(spec.deploy.env_file)).parent}/secrets.env"

    def shared() -> str | None:
        # an app host (and the storage host) waits for the database host's secrets step
        return secrets.result(timeout=900)

    def storage_wait() -> None:
        storage.result(timeout=900)  # raises the storage host's failure

    def one(host: str) -> Provisioned:
        roles = topology.roles(host)
        remote = remotes[host]

        def share() -> None:
            secrets.set_result(remote.read(secrets_path, step="secrets"))

        stores = STORAGE in roles
        plan = HostPlan(
            host,
            roles,
            placement,
            shared_secrets=shared if APP in roles or stores else None,
            secrets_made=share if DATABASE in roles else None,
            storage_made=(lambda: storage.set_result(None)) if stores else None,
            storage_wait=storage_wait if DATABASE in roles and topology.storage else None,
        )
        say: Echo = lambda line: echo(f"{host}: {line.strip()}")  # noqa: E731
        started = time.monotonic()
        engine = Engine(remote, dry_run=dry_run)
        try:
            result = Provisioner(engine, spec, kit, say, tls_files, plan).run()
        except StepFailed as failed:
            raise DeployError(f"{host}: {failed.step}: {failed.reason}") from None
        finally:
            engine.close()
            if DATABASE in roles and not secrets.done():
                secrets.set_exception(DeployError(f"{database}: secrets were not made"))
            if stores and not storage.done():
                storage.set_exception(DeployError(f"{host}: the object store was not made"))
        changed = len(result.changed)
        verb = "would change" if dry_run else "changed"
        summary = f"{changed} of {len(result.steps)} steps {verb}" if changed else "no change"
        seconds = time.monotonic() - started
        say(f"provisioned ({', '.join(sorted(roles))}): {summary} ({seconds:.1f}s)")
        return result

    hosts = topology.hosts  # the database host first
    if not parallel:
        # the database host's first backup waits for the storage host, which waits for
        # the database host's secrets: only threads can interleave the two
        if topology.storage:
            raise ValueError("a storage host is provisioned in parallel with the others only")
        return {host: one(host) for host in hosts}
    with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="provision") as pool:
        futures = {host: pool.submit(one, host) for host in hosts}
        results: dict[str, Provisioned] = {}
        first_error: BaseException | None = None
        for host, future in futures.items():
            try:
                results[host] = future.result()
            except BaseException as error:
                first_error = first_error or error
        if first_error is not None:
            raise first_error
    return results


def balancer_for(
    placement: Placement, remotes: dict[str, Remote], spec: Spec, echo: Echo
) -> Balancer:
    from flaskprod.deploy.rolling import Balancer

    return Balancer(remotes[placement.topology.balancer], spec, placement, echo)


def release_all(
    placement: Placement,
    remotes: dict[str, Remote],
    *,
    spec: Spec,
    project: Path,
    echo: Echo,
    allow_dirty: bool,
    release_commands: Sequence[str],
) -> dict[str, float]:
    """The committed revision, rolled over the app hosts (see :mod:`rolling`)."""
    from flaskprod.deploy.rolling import roll
    from flaskprod.deploy.ship import Shipment, release_to_host, rollback_host

    shipment = Shipment.read(project, allow_dirty=allow_dirty)
    apps = {host: remotes[host] for host in placement.topology.app_hosts}

    def release(remote: Remote, first: bool) -> object:
        return release_to_host(
            remote,
            spec,
            project,
            echo,
            release_commands=release_commands if first else (),
            shipment=shipment,
            release_step=first,
        )

    def undo(remote: Remote) -> object:
        return rollback_host(remote, spec, echo)

    balancer = balancer_for(placement, remotes, spec, echo)
    return roll(apps, balancer, release, echo, undo=undo)


def deploy_several(
    topology: Topology,
    *,
    spec: Spec,
    kit: Kit,
    project: Path,
    ssh_config: Path | None,
    accept_new_key: bool,
    dry_run: bool,
    tls_files: TlsFiles,
    allow_dirty: bool,
    release_commands: Sequence[str],
    provision_only: bool,
    echo: Echo,
) -> Placement | None:
    """Provision every host, then roll the release. Returns the placement once
    released (None: a dry run or --provision-only)."""
    started = time.monotonic()
    with connected(topology, ssh_config, accept_new_key) as remotes:
        placement = place(topology, remotes, echo)
        spec = placement.placed_spec(spec)
        provision_all(
            placement, remotes, spec=spec, kit=kit, tls_files=tls_files, dry_run=dry_run, echo=echo
        )
        done = "looked at (dry run, nothing changed)" if dry_run else "provisioned"
        echo(f"{len(remotes)} hosts {done} in {time.monotonic() - started:.1f}s")
        if dry_run or provision_only:
            return None
        began = time.monotonic()
        release_all(
            placement,
            remotes,
            spec=spec,
            project=project,
            echo=echo,
            allow_dirty=allow_dirty,
            release_commands=release_commands,
        )
        echo(f"rolled over {len(topology.app_hosts)} app hosts in {time.monotonic() - began:.1f}s")
        return placement
