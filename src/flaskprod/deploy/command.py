"""``flaskprod deploy``: provision each host, release the app to it, check the result.

    flaskprod deploy [PROJECT] --host DEST [--host DEST ...] [--ssh-config FILE]
                     [--dry-run] [--accept-new-host-key]

Hosts come from ``--host`` or the spec's ``[deploy] hosts``; each is an OpenSSH
destination reached through the user's ssh_config. Exit status: 0 deployed, 7 a step
failed on a host (one line naming the host and the step; the release serving before
keeps serving), 8 deployed but the checks of the live site or of the hosts (each for
its roles) found errors.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from flaskprod.errors import DeployError, ExitCode, UserError

if TYPE_CHECKING:
    from flaskprod.deploy.provision import Kit, TlsFiles
    from flaskprod.deploy.remote import Remote
    from flaskprod.spec.model import Spec

Echo = Callable[[str], None]


def _echo(line: str) -> None:
    click.echo(line, err=True)


@click.command("deploy")
@click.argument("project", required=False, default=".", type=click.Path(path_type=Path))
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="DEST",
    help="[user@]host[:port] or a Host of your ssh_config (repeat for more; default: the "
    "spec's deploy.hosts).",
)
@click.option(
    "--ssh-config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Use this ssh_config instead of ~/.ssh/config.",
)
@click.option(
    "--dry-run", is_flag=True, help="List what would change on each host; change nothing."
)
@click.option(
    "--accept-new-host-key",
    is_flag=True,
    help="Trust a host key seen for the first time (a changed key is always refused).",
)
@click.option(
    "--provision-only",
    is_flag=True,
    help="Provision the hosts and stop: no release, no post-deploy check.",
)
@click.option(
    "--allow-dirty",
    is_flag=True,
    help="Release the working tree even with uncommitted changes (else refused, naming them).",
)
@click.option(
    "--release",
    "release_commands",
    multiple=True,
    metavar="CMD",
    help="Also run CMD in each new release's step, after the migrations (repeatable; "
    "e.g. --release 'flask seed').",
)
@click.option(
    "--certificate",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="tls.mode = 'own': the certificate chain (PEM) to install.",
)
@click.option(
    "--certificate-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="tls.mode = 'own': its private key (PEM).",
)
@click.option(
    "--check-url",
    metavar="URL",
    help="Where the post-deploy check reaches the site (default: https://<first domain>/).",
)
@click.option(
    "--check-ca",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A CA the post-deploy check trusts (a private ACME server's certificates).",
)
def deploy_command(
    project: Path,
    hosts: tuple[str, ...],
    ssh_config: Path | None,
    dry_run: bool,
    accept_new_host_key: bool,
    provision_only: bool,
    allow_dirty: bool,
    release_commands: tuple[str, ...],
    certificate: Path | None,
    certificate_key: Path | None,
    check_url: str | None,
    check_ca: Path | None,
) -> None:
    """Provision servers over SSH and deploy the app to them (from flaskprod.toml)."""
    from flaskprod.deploy.provision import Kit, TlsFiles
    from flaskprod.deploy.roles import Topology
    from flaskprod.deploy.several import deploy_several
    from flaskprod.spec.load import load_spec
    from flaskprod.spec.model import SPEC_FILENAME

    root = project.resolve()
    spec = load_spec(root / SPEC_FILENAME)
    destinations = list(hosts) or list(spec.deploy.hosts)
    if not destinations:
        raise UserError(
            "no host to deploy to",
            hint=f"pass --host DEST, or list them in {SPEC_FILENAME}: [deploy] hosts = [...]",
        )
    _check_budget(spec)
    if ssh_config is not None and not ssh_config.is_file():
        raise UserError(f"--ssh-config {ssh_config}: no such file")
    if (certificate is None) != (certificate_key is None):
        raise UserError("--certificate and --certificate-key go together")
    kit = Kit.read(spec, root)
    tls_files = TlsFiles(certificate, certificate_key)
    topology = Topology.of(spec)
    if topology is not None:
        if hosts:
            raise UserError(
                "--host: the spec names its hosts by role ([deploy] hosts, "
                "[deploy.balancer], [deploy.database]); deploy takes them all"
            )
        released = deploy_several(
            topology,
            spec=spec,
            kit=kit,
            project=root,
            ssh_config=ssh_config,
            accept_new_key=accept_new_host_key,
            dry_run=dry_run,
            tls_files=tls_files,
            allow_dirty=allow_dirty,
            release_commands=release_commands,
            provision_only=provision_only,
            echo=_echo,
        )
        if released is None:
            return
        live = _live_check(spec, root, check_url, check_ca, _echo)
        on_hosts = _hosts_check(
            spec, root, released.addresses, ssh_config, accept_new_host_key, _echo
        )
        if live or on_hosts:
            sys.exit(int(ExitCode.DEPLOYED_WITH_FINDINGS))
        return
    findings = False
    for destination in destinations:
        findings |= deploy_host(
            destination,
            spec=spec,
            kit=kit,
            project=root,
            ssh_config=ssh_config,
            accept_new_key=accept_new_host_key,
            dry_run=dry_run,
            allow_dirty=allow_dirty,
            release_commands=release_commands,
            provision_only=provision_only,
            tls_files=tls_files,
            check_url=check_url,
            check_ca=check_ca,
            echo=_echo,
        )
    if findings:
        sys.exit(int(ExitCode.DEPLOYED_WITH_FINDINGS))


def _check_budget(spec: Spec) -> None:
    """Refuse, before any host is touched, a fleet whose pools PostgreSQL cannot serve:
    under load it would answer 'too many clients' (check's PRJ015)."""
    from flaskprod.errors import SpecError
    from flaskprod.spec.budget import FIX, connection_budget
    from flaskprod.spec.model import SPEC_FILENAME

    if spec.database.engine != "postgresql":
        return
    budget = connection_budget(spec)
    if not budget.fits:
        raise SpecError(
            f"{SPEC_FILENAME}: connection budget exceeded: {budget.describe()}", hint=FIX
        )


def deploy_host(
    destination: str,
    *,
    spec: Spec,
    kit: Kit,
    project: Path,
    ssh_config: Path | None,
    accept_new_key: bool,
    dry_run: bool,
    tls_files: TlsFiles,
    allow_dirty: bool = False,
    release_commands: Sequence[str] = (),
    provision_only: bool = False,
    check_url: str | None,
    check_ca: Path | None,
    echo: Echo,
) -> bool:
    """One host: provision, release, check. True when the checks found errors."""
    from flaskprod.deploy.engine import Engine, StepFailed
    from flaskprod.deploy.provision import Provisioner
    from flaskprod.deploy.remote import Remote

    started = time.monotonic()
    echo(f"{destination}: {'what would change' if dry_run else 'provisioning'}")
    with Remote(destination, ssh_config=ssh_config, accept_new_key=accept_new_key) as remote:
        engine = Engine(remote, dry_run=dry_run)
        try:
            result = Provisioner(engine, spec, kit, echo, tls_files).run()
        except StepFailed as failed:
            raise DeployError(f"{destination}: {failed.step}: {failed.reason}") from None
        except KeyboardInterrupt:
            raise DeployError(
                f"{destination}: {engine.current}: interrupted",
                hint="every step is idempotent and files are replaced whole: run the same "
                "deploy again to resume",
            ) from None
        finally:
            engine.close()
        changed = len(result.changed)
        seconds = time.monotonic() - started
        if dry_run:
            echo(
                f"{destination}: {changed} of {len(result.steps)} steps would change "
                f"(dry run, nothing changed; {seconds:.1f}s)"
            )
            return False
        summary = f"{changed} of {len(result.steps)} steps changed" if changed else "no change"
        echo(f"{destination}: provisioned: {summary} ({seconds:.1f}s)")
        if provision_only:
            return False
        try:
            _release(
                remote, spec, project, echo, allow_dirty=allow_dirty, commands=release_commands
            )
        except KeyboardInterrupt:
            # the pipeline stopped the new slot and marked the release failed first
            raise DeployError(
                f"{destination}: release: interrupted; the release that was serving keeps serving",
                hint="run the same deploy again: it provisions what is missing and releases",
            ) from None
        live = _live_check(spec, project, check_url, check_ca, echo)
        return _host_check(remote, project, echo) or live


def _release(
    remote: Remote,
    spec: Spec,
    project: Path,
    echo: Echo,
    *,
    allow_dirty: bool,
    commands: Sequence[str],
) -> bool:
    from flaskprod.deploy.ship import release_to_host

    release_to_host(remote, spec, project, echo, allow_dirty=allow_dirty, release_commands=commands)
    return True


def _live_check(spec: Spec, project: Path, url: str | None, ca: Path | None, echo: Echo) -> bool:
    """``check --url`` against the deployed site; True when it found errors."""
    from flaskprod.check.model import Level
    from flaskprod.check.runner import CheckOptions, run_checks
    from flaskprod.check.summary import summarize

    target = url or f"https://{spec.app.domains[0]}/"
    options = CheckOptions(root=project, no_import=True, layers=("live",))
    options.options.update(url=target, crawl=0, timeout=10.0)
    if ca is not None:
        options.options["ca"] = str(ca)
    result = run_checks(options)
    summary = summarize(result, Level.ERROR)
    counts = summary["counts"]
    echo(
        f"check --url {target}: "
        + ", ".join(f"{counts[str(level)]} {level}" for level in reversed(Level))
    )
    for finding in result.findings:
        if finding.level >= Level.ERROR and finding.ignored_reason is None:
            echo(f"  {finding.id} ({finding.level}): {finding.message}")
    return bool(summary["exit_code"])


def _host_check(remote: Remote, project: Path, echo: Echo) -> bool:
    """The host checks, run on the server (``check --host DEST``); True on errors."""
    import json

    from flaskprod.deploy.remote_check import check_over_ssh

    done = check_over_ssh(remote, project, ["--format", "json", "--fail-level", "error"], echo)
    report = json.loads(done.report)
    counts = report["summary"]["counts"]
    levels = ("critical", "error", "warning", "info")
    echo(f"check --host {remote.label}: " + ", ".join(f"{counts[lv]} {lv}" for lv in levels))
    for finding in report["findings"]:
        if finding["level"] in ("critical", "error") and not finding.get("ignored_reason"):
            echo(f"  {finding['id']} ({finding['level']}): {finding['message']}")
    return done.exit_code != 0


def _hosts_check(
    spec: Spec,
    project: Path,
    addresses: dict[str, str],
    ssh_config: Path | None,
    accept_new_key: bool,
    echo: Echo,
) -> bool:
    """Several hosts: the host checks on every host, each for its roles, in parallel
    (``check --hosts``); True when one found errors or could not be checked."""
    from flaskprod.deploy.remote_check import check_hosts

    started = time.monotonic()
    reports = check_hosts(
        project,
        spec,
        ["--fail-level", "error"],
        echo,
        ssh_config=ssh_config,
        accept_new_key=accept_new_key,
        addresses=addresses,
    )
    for report in reports:
        if report.error is not None:
            echo(f"check --host {report.host}: could not be checked: {report.error}")
            continue
        _echo_counts(report.host, report.findings, echo)
    echo(f"host checks on {len(reports)} hosts in {time.monotonic() - started:.1f}s")
    return any(report.exit_code != 0 for report in reports)


def _echo_counts(host: str, findings: list[dict[str, object]], echo: Echo) -> None:
    active = [f for f in findings if not f.get("ignored_reason")]
    levels = ("critical", "error", "warning", "info")
    counts = {level: sum(f["level"] == level for f in active) for level in levels}
    echo(f"check --host {host}: " + ", ".join(f"{counts[lv]} {lv}" for lv in levels))
    for finding in active:
        if finding["level"] in ("critical", "error"):
            echo(f"  {finding['id']} ({finding['level']}): {finding['message']}")
