"""``flaskprod releases`` and ``flaskprod rollback``: a host's releases, and the way
back to an earlier one (no rebuild)."""

from __future__ import annotations

from pathlib import Path

import click

_PROJECT = click.argument(
    "project", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
_HOSTS = click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="DEST",
    help="OpenSSH destination ([user@]host[:port] or an ssh_config Host); repeatable.",
)
_SSH_CONFIG = click.option(
    "--ssh-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="ssh_config file to use instead of ~/.ssh/config.",
)
_ACCEPT = click.option(
    "--accept-new-host-key", is_flag=True, help="Trust a host's key seen for the first time."
)


def _spec_and_hosts(project: Path, hosts: tuple[str, ...]) -> tuple[object, list[str]]:
    from flaskprod.errors import UserError
    from flaskprod.spec.load import load_spec
    from flaskprod.spec.model import SPEC_FILENAME

    spec = load_spec(project / SPEC_FILENAME)
    chosen = list(hosts) or list(getattr(spec.deploy, "hosts", []) or [])
    if not chosen:
        raise UserError(
            f"no host: pass --host DEST (or list them in {SPEC_FILENAME} [deploy] hosts)"
        )
    return spec, chosen


@click.command("releases")
@_PROJECT
@_HOSTS
@_SSH_CONFIG
@_ACCEPT
def releases_command(
    project: Path, hosts: tuple[str, ...], ssh_config: Path | None, accept_new_host_key: bool
) -> None:
    """List a host's releases: id, revision, time, state (newest first)."""
    from flaskprod.deploy import ledger
    from flaskprod.deploy.remote import Remote
    from flaskprod.deploy.ship import host_releases
    from flaskprod.spec.model import Spec

    spec, chosen = _spec_and_hosts(project, hosts)
    assert isinstance(spec, Spec)
    for dest in chosen:
        remote = Remote(dest, ssh_config=ssh_config, accept_new_key=accept_new_host_key)
        try:
            entries = host_releases(remote, spec)
        finally:
            remote.close()
        if len(chosen) > 1:
            click.echo(f"{dest}:")
        if not entries:
            click.echo(f"{dest}: no release yet (flaskprod deploy makes the first)")
            continue
        for line in ledger.table(entries):
            click.echo(line)


@click.command("rollback")
@_PROJECT
@_HOSTS
@_SSH_CONFIG
@_ACCEPT
@click.option(
    "--to", "to", metavar="ID", help="The release to return to (default: the previous one)."
)
def rollback_command(
    project: Path,
    hosts: tuple[str, ...],
    ssh_config: Path | None,
    accept_new_host_key: bool,
    to: str | None,
) -> None:
    """Switch a host back to an earlier release still on it: no rebuild, no migration."""
    import time

    from flaskprod.deploy.remote import Remote
    from flaskprod.deploy.ship import rollback_host
    from flaskprod.spec.model import Spec

    spec, chosen = _spec_and_hosts(project, hosts)
    assert isinstance(spec, Spec)
    if not hosts and _rolled_back_through_the_balancer(spec, ssh_config, accept_new_host_key, to):
        return
    for dest in chosen:
        started = time.monotonic()
        remote = Remote(dest, ssh_config=ssh_config, accept_new_key=accept_new_host_key)
        try:
            rollback_host(remote, spec, click.echo, to=to)
        finally:
            remote.close()
        click.echo(f"{dest}: rolled back in {time.monotonic() - started:.1f}s")


def _rolled_back_through_the_balancer(
    spec: object, ssh_config: Path | None, accept_new_key: bool, to: str | None
) -> bool:
    """Several hosts by role: the app hosts rolled back one at a time, each out of the
    balancer meanwhile (as a rolling release). False: one server, nothing done."""
    import time

    from flaskprod.deploy.roles import Topology
    from flaskprod.deploy.rolling import rollback_all
    from flaskprod.deploy.several import balancer_for, connected, place
    from flaskprod.spec.model import Spec

    assert isinstance(spec, Spec)
    topology = Topology.of(spec)
    if topology is None:
        return False
    started = time.monotonic()
    with connected(topology, ssh_config, accept_new_key) as remotes:
        placement = place(topology, remotes, click.echo)
        balancer = balancer_for(placement, remotes, spec, click.echo)
        apps = {host: remotes[host] for host in topology.app_hosts}
        rollback_all(apps, balancer, click.echo, to=to)
    hosts = len(topology.app_hosts)
    click.echo(f"rolled back {hosts} app hosts in {time.monotonic() - started:.1f}s")
    return True
