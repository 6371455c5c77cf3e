"""``check --host DEST``: the host checks run where the host is, over SSH.

The host layer reads /proc, sockets, units and files of the machine it runs on, so it
runs on the server, from flaskprod's host tools (:mod:`host_tools`), against the
project's spec and kit uploaded to a temporary folder there (removed afterwards). The
report and the exit status are the remote check's own.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from flaskprod.deploy.host_tools import ensure_host_tools
from flaskprod.deploy.remote import Remote, last_lines
from flaskprod.deploy.roles import Topology
from flaskprod.errors import DeployError
from flaskprod.spec.model import SPEC_FILENAME, Spec
from flaskprod.spec.rendered import MANIFEST, read_manifest


@dataclass(frozen=True)
class RemoteCheck:
    exit_code: int
    report: str
    progress: str


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flaskprod"


def project_archive(project: Path) -> bytes:
    """The spec and the kit's files as last rendered: what the host checks compare the
    server with."""
    names = [SPEC_FILENAME, MANIFEST, *read_manifest(project)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            path = project / name
            if path.is_file():
                tar.add(path, arcname=name)
    return buffer.getvalue()


def check_over_ssh(
    remote: Remote,
    project: Path,
    check_args: Sequence[str],
    echo: Callable[[str], None],
) -> RemoteCheck:
    """Run ``flaskprod check --host`` on the host with ``check_args`` (format, levels,
    selections); the report comes back as the remote check printed it."""
    remote.connect()
    tool = ensure_host_tools(remote, cache_dir(), echo)
    folder = remote.run(
        "mktemp -d /tmp/flaskprod-check.XXXXXX", step="check: temporary folder"
    ).stdout.strip()
    try:
        remote.put_tar(project_archive(project), folder, step="check: upload the spec and kit")
        echo(f"{remote.label}: running the host checks")
        result = remote.run(
            shlex.join([tool, "check", folder, "--host", *check_args]),
            step="check --host",
            check=False,
            timeout=300,
        )
    finally:
        remote.run(f"rm -rf {shlex.quote(folder)}", step="check: clean up", check=False)
    if result.returncode not in (0, 1):
        raise DeployError(
            f"{remote.label}: check --host could not run (exit {result.returncode}): "
            f"{last_lines(result.stderr or result.stdout)}"
        )
    return RemoteCheck(result.returncode, result.stdout, result.stderr)


def role_args(host: str, addresses: dict[str, str]) -> list[str]:
    """What the check on ``host`` must be told: which of the spec's hosts it is, and
    the private addresses of all (its firewall and pg_hba are compared with them)."""
    args = ["--as-host", host]
    for name, address in sorted(addresses.items()):
        args += ["--peer", f"{name}={address}"]
    return args


@dataclass(frozen=True)
class HostReport:
    host: str
    findings: list[dict[str, object]]
    rules_run: int
    rules_skipped: dict[str, str]
    exit_code: int
    #: Why the host could not be checked (unreachable, a step failed); None: checked.
    error: str | None = None


def hosts_of(spec: Spec) -> list[str]:
    topology = Topology.of(spec)
    return topology.hosts if topology is not None else list(spec.deploy.hosts)


def check_hosts(
    project: Path,
    spec: Spec,
    check_args: Sequence[str],
    echo: Callable[[str], None],
    *,
    ssh_config: Path | None,
    accept_new_key: bool,
    addresses: dict[str, str] | None = None,
) -> list[HostReport]:
    """The host checks on every host of the spec, in parallel threads (one SSH
    connection each), with ``check_args`` (levels, selections; the report is JSON). A
    host that cannot be checked gives a report with its error; the others stand."""
    import json

    from flaskprod.deploy.several import place

    hosts = hosts_of(spec)
    topology = Topology.of(spec)
    remotes = {h: Remote(h, ssh_config=ssh_config, accept_new_key=accept_new_key) for h in hosts}

    def one(host: str) -> HostReport:
        try:
            args = [*check_args, "--format", "json"]
            if topology is not None:
                args += role_args(host, known)
            done = check_over_ssh(remotes[host], project, args, echo)  # lines name the host
            report = json.loads(done.report)
        except DeployError as error:
            return HostReport(host, [], 0, {}, int(error.exit_code), error.message)
        summary = report["summary"]
        return HostReport(
            host,
            report["findings"],
            summary["rules_run"],
            summary["rules_skipped"],
            done.exit_code,
        )

    from flaskprod.deploy.wheels import flaskprod_wheel

    flaskprod_wheel(cache_dir())  # built once here, not by every thread at once
    try:
        known: dict[str, str] = {}
        if topology is not None:
            known = addresses or place(topology, remotes, echo).addresses
        with ThreadPoolExecutor(max_workers=len(hosts), thread_name_prefix="check") as pool:
            return list(pool.map(one, hosts))
    finally:
        for remote in remotes.values():
            remote.close()
