"""MariaDB on a deploy host (``database.engine = "mariadb"``/``"mysql"``, ``local``).

Debian's ``mariadb-server``, the kit's server settings (``deploy/mariadb/<name>.cnf``,
the ones ``up`` and compose run) as ``/etc/mysql/mariadb.conf.d/60-<name>.cnf``, the
server restarted only when the running server does not have them, then the database
(utf8mb4) and the app's user, granted on that database only, with the password
``hostside.py secrets`` generated on the host: both made by the host helper
(``hostside.py mariadb-settings`` / ``mariadb``), so the password never travels.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from pyinfra.operations import files, systemd

from flaskprod.deploy import hostfiles
from flaskprod.deploy.engine import Engine, StepFailed, StepResult
from flaskprod.deploy.ops import ensure
from flaskprod.spec.model import Spec

CONF_DIR = "/etc/mysql/mariadb.conf.d"
#: Runs a host helper subcommand (``python3 hostside.py ...``), quoted for the shell.
Helper = Callable[..., str]


def wanted(spec: Spec) -> bool:
    """The host runs the app's MariaDB server itself."""
    return spec.database.is_mysql and spec.database.local


def packages(spec: Spec) -> list[str]:
    """Debian's server and client (mariadb-dump for the backup), or the client alone
    for a database elsewhere."""
    if not spec.database.is_mysql:
        return []
    return ["mariadb-server", "mariadb-client"] if spec.database.local else ["mariadb-client"]


def conf_path(spec: Spec) -> str:
    # 60-: read after Debian's 50-server.cnf, so its values win
    return f"{CONF_DIR}/60-{spec.app.name}.cnf"


def kit_cnf(spec: Spec, project: Path) -> str:
    """The kit's server settings (rendered from the spec, the same as up and compose)."""
    path = project / "deploy" / "mariadb" / f"{spec.app.name}.cnf"
    if not path.is_file():
        raise StepFailed(
            "MariaDB",
            [
                f"{path} is missing (database.engine = {spec.database.engine!r}): "
                "run 'flaskprod render'"
            ],
        )
    return path.read_text()


def provision(
    engine: Engine, spec: Spec, project: Path, secrets_file: str, helper: Helper
) -> StepResult:
    """The server with the spec's settings, running and enabled; the database and the
    app's least-privilege user."""
    conf = conf_path(spec)
    user, name = spec.resolve(spec.database.user), spec.resolve(spec.database.name)
    args = (secrets_file, user, name, hostfiles.DB_PASSWORD)
    with engine.step("MariaDB (settings, database and user)") as step:
        step.op(files.put, conf, src=io.StringIO(kit_cnf(spec, project)), dest=conf, mode="644")
        step.op(systemd.service, "mariadb running", service="mariadb", running=True, enabled=True)
        # Restarted only when the running server lacks a setting of the file (also when
        # an interrupted run wrote the file and never restarted it).
        step.op(
            ensure,
            f"server settings of {conf}",
            check=helper("mariadb-settings", conf, "--check"),
            fix=helper("mariadb-settings", conf),
        )
        step.op(
            ensure,
            f"database {name}, user {user}",
            check=helper("mariadb", *args, "--check"),
            fix=helper("mariadb", *args),
        )
    return step.result
