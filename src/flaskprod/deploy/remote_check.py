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
from dataclasses import dataclass
from pathlib import Path

from flaskprod.deploy.host_tools import ensure_host_tools
from flaskprod.deploy.remote import Remote, last_lines
from flaskprod.errors import DeployError
from flaskprod.spec.model import SPEC_FILENAME
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
