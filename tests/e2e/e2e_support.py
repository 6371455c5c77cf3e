"""The e2e stack: one real `flaskprod up` of the reference shop (see conftest.py).

``flaskprod up -d`` on a copy of ``examples/shop`` on free ports, seeded once, with the
app's own access log on; ``flaskprod down`` at the end, then every recorded pid is
checked gone (and stopped by pid if ``down`` failed). Real nginx, gunicorn (or
granian), PostgreSQL and Redis. Copying, starting and stopping is bench/shop_stack.py,
shared with the fault harness.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flaskprod_cli import run_flaskprod

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench.shop_stack import (  # noqa: E402
    RunningShop,
    StackError,
    copy_shop,
    running_shop,
    set_server_kind,
)

TOKEN = "e2e-demo-token-0123456789abcdef0123456789"


def flaskprod(
    *args: str, timeout: float = 180, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = run_flaskprod(*args, timeout=timeout, env=env)
    if check and result.returncode != 0:
        pytest.fail(
            f"flaskprod {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    return result


@dataclass
class ShopStack(RunningShop):
    token: str = TOKEN
    #: The app server (server.kind): its service name in state.json and its log.
    server: str = "gunicorn"

    def gunicorn_log(self) -> str:
        """The app server's log (gunicorn's, or granian's with server.kind granian)."""
        return self.log(self.server).read_text(errors="replace")

    def app_log_lines(self) -> list[dict[str, object]]:
        """The JSON lines of the app's own log (flaskprod.access and others)."""
        lines = []
        for raw in self.gunicorn_log().splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
        return lines


def start_shop_stack(server: str = "gunicorn") -> Iterator[ShopStack]:
    project = copy_shop("flaskprod-e2e-")
    if not (project / "flaskprod.toml").exists():
        flaskprod("init", str(project))
    # Whatever the shop's own server.kind: the tests say which server they run.
    set_server_kind(project, server)
    stack = ShopStack.on_free_ports(project, server=server)
    try:
        # The rendered gunicorn.conf.py turns the app's own access log off (gunicorn's
        # carries the same request id); the tests read the app's view of each request
        # (its remote address after ProxyFix), so they ask for it back. `up` passes its
        # environment to the app, and the config only sets a default.
        with running_shop(stack, up_env={"FLASKPROD_ACCESS_LOG": "on"}):
            yield stack
    except StackError as error:
        pytest.fail(str(error), pytrace=False)
    assert not stack.leftovers, f"flaskprod down left {stack.leftovers} running"
