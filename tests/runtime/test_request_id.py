from __future__ import annotations

import re
import uuid

from flask import Flask
from runtime_helpers import MakeApp

from flaskprod.runtime.request_id import current_request_id

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_valid_incoming_id_is_echoed(make_app: MakeApp) -> None:
    client = make_app().test_client()
    response = client.get("/", headers={"X-Request-ID": "abc.DEF_123-x"})
    assert response.headers["X-Request-ID"] == "abc.DEF_123-x"


def test_id_is_generated_when_missing(make_app: MakeApp) -> None:
    client = make_app().test_client()
    first = client.get("/").headers["X-Request-ID"]
    second = client.get("/").headers["X-Request-ID"]
    assert HEX32.match(first) and HEX32.match(second)
    assert first != second
    # A real UUID4: version and variant bits.
    assert uuid.UUID(first).version == 4 and uuid.UUID(first).variant == uuid.RFC_4122


def test_invalid_ids_are_replaced(make_app: MakeApp) -> None:
    client = make_app().test_client()
    for bad in ("a" * 129, "has space", "semi;colon", "ünï", "<script>"):
        rid = client.get("/", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert rid != bad and HEX32.match(rid), bad
    longest = "a" * 128
    assert client.get("/", headers={"X-Request-ID": longest}).headers["X-Request-ID"] == longest


def test_header_on_errors_and_health(make_app: MakeApp) -> None:
    client = make_app().test_client()
    for path in ("/missing", "/boom", "/health", "/health/ready"):
        response = client.get(path, headers={"X-Request-ID": "fixed-id"})
        assert response.headers.getlist("X-Request-ID") == ["fixed-id"], path


def test_current_request_id_inside_and_outside(make_app: MakeApp) -> None:
    app: Flask = make_app()
    seen: list[str | None] = []

    @app.get("/rid")
    def rid() -> str:
        seen.append(current_request_id())
        return "x"

    assert current_request_id() is None
    response = app.test_client().get("/rid", headers={"X-Request-ID": "from-client"})
    assert seen == ["from-client"]
    assert response.headers["X-Request-ID"] == "from-client"
