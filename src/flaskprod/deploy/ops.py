"""flaskprod's own pyinfra operation: a check on the host, and the fix when it fails.

For what pyinfra has no operation for (secrets made on the host, PostgreSQL roles
with such a secret, ufw rules, certificates): ``check`` is a shell command that prints
``ok`` when the host is as wanted (and must exit 0 either way); ``fix`` runs only
otherwise, so a re-run with nothing to do changes nothing and says so.
"""

from __future__ import annotations

from collections.abc import Generator

from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.server import Command


@operation()
def ensure(check: str, fix: str | list[str]) -> Generator[str, None, None]:
    """Run ``fix`` unless ``check`` prints ``ok``."""
    found = host.get_fact(Command, command=f"{{ {check} ; }} 2>/dev/null || true")
    if (found or "").strip().splitlines()[-1:] != ["ok"]:
        yield from [fix] if isinstance(fix, str) else fix
