"""Bad input against the real stack (nginx TLS -> the app server -> the shop, PostgreSQL,
Redis: one ``flaskprod up -d`` for the whole directory, ``bad_stack``) and against the
app directly (``app_client``: the app server's own unix socket, no nginx in front).

``no_errors_logged`` (autouse) fails a test when, while it ran, the app server's log got a
traceback or an access line with status 500, or nginx's access log a 500: a refusal
must be a 4xx, never an error that only the logs show.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.faults.stack import FaultStack, StackError, running_stack  # noqa: E402

_APP_500 = re.compile(rb'"status": ?5\d\d\b')  # gunicorn's line, or the app's (granian)
_NGINX_500 = re.compile(rb'"status":500\b')


@pytest.fixture(scope="session")
def bad_stack() -> Iterator[FaultStack]:
    try:
        with running_stack() as stack:
            yield stack
    except StackError as error:
        pytest.fail(f"the stack for the bad-input tests did not start: {error}", pytrace=False)


@pytest.fixture
def app_client(bad_stack: FaultStack) -> Iterator[httpx.Client]:
    """The app itself through the app server's unix socket (what nginx talks to)."""
    from flaskprod.stack.up import Stack, UpOptions

    options = UpOptions(project=bad_stack.project)
    socket_path = Stack(bad_stack.spec(), options, lambda _m: None).socket_path()
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(
        transport=transport,
        base_url="http://localhost",
        headers={"X-Forwarded-Proto": "https"},
        timeout=10,
    ) as client:
        yield client


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@pytest.fixture(autouse=True)
def no_errors_logged(request: pytest.FixtureRequest) -> Iterator[None]:
    if "bad_stack" not in request.fixturenames:
        yield
        return
    stack: FaultStack = request.getfixturevalue("bad_stack")
    # The app server's log (granian by default, or gunicorn): it must exist, or the
    # guard would read nothing and pass.
    server = stack.server
    logs = {"app": stack.log(server), "nginx": stack.dirs.logs / "nginx-access.log"}
    assert logs["app"].is_file(), f"no {server} log at {logs['app']}"
    offsets = {name: _size(path) for name, path in logs.items()}
    yield
    app = _read_from(logs["app"], offsets["app"])
    nginx = _read_from(logs["nginx"], offsets["nginx"])
    assert b"Traceback" not in app, app.decode(errors="replace")[-3000:]
    assert not _APP_500.search(app), f"{server} logged a 5xx answer"
    assert not _NGINX_500.search(nginx), "nginx logged a 500 answer"


def _read_from(path: Path, offset: int) -> bytes:
    if not path.exists():
        return b""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read()
