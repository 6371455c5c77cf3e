"""flaskprod's own tools on a server, apart from the app: ``/opt/flaskprod/venv``, used
to run the host checks where the host is (its /proc, sockets, files and units).

Installed once per flaskprod build (the wheel's hash is kept beside the venv), with the
versions of this environment as constraints; never inside the app's venv.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable
from pathlib import Path

from flaskprod.deploy.remote import Remote
from flaskprod.deploy.wheels import flaskprod_wheel, installed_versions

TOOLS_DIR = "/opt/flaskprod"
TOOLS_VENV = f"{TOOLS_DIR}/venv"
TOOLS_FLASKPROD = f"{TOOLS_VENV}/bin/flaskprod"


def ensure_host_tools(remote: Remote, cache: Path, echo: Callable[[str], None]) -> str:
    """flaskprod on the host (installed or updated when this build differs); returns
    the path of its command."""
    wheel = flaskprod_wheel(cache)
    stamp = hashlib.sha256(wheel.read_bytes()).hexdigest()
    current = remote.read(f"{TOOLS_DIR}/installed", step="read host tools' version")
    if current is not None and current.strip() == stamp:
        return TOOLS_FLASKPROD
    echo(f"{remote.label}: installing flaskprod's host tools in {TOOLS_VENV}")
    remote.run(
        "command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || "
        "(DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null)",
        step="host tools: python3-venv",
        timeout=600,
    )
    remote.put(wheel.read_bytes(), f"{TOOLS_DIR}/{wheel.name}", step="host tools: upload wheel")
    remote.put(installed_versions(), f"{TOOLS_DIR}/constraints.txt", step="host tools: constraints")
    wheel_path = shlex.quote(f"{TOOLS_DIR}/{wheel.name}")
    remote.run(
        f"set -e; rm -rf {TOOLS_VENV}; python3 -m venv {TOOLS_VENV}; "
        f"{TOOLS_VENV}/bin/pip install --quiet --disable-pip-version-check "
        f"-c {TOOLS_DIR}/constraints.txt {wheel_path}'[cli]'",
        step="host tools: pip install flaskprod",
        timeout=900,
    )
    remote.put(stamp + "\n", f"{TOOLS_DIR}/installed", step="host tools: record version")
    return TOOLS_FLASKPROD
