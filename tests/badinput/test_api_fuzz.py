"""A property-based fuzz of the shop's API from its own OpenAPI document (schemathesis),
through nginx: no 5xx, and every response — status, content type, body — matches the
document. Bounded: a few dozen examples per operation, no deadline per example.

The document is read from the running stack (``/api/openapi.json``), so what is
fuzzed is what is served. Requests carry the demo user's bearer token; they come from
a rotating set of loopback addresses, as many clients would (nginx limits /api/ per
client address: one client firing hundreds of requests a second would rightly get
429, which is the limit working, not the API failing).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from requests.adapters import HTTPAdapter
from schemathesis import GenerationMode

from bench.faults.stack import FaultStack

pytestmark = pytest.mark.services

MAX_EXAMPLES = 30
SOURCES = 40


class _FromAddress(HTTPAdapter):
    """A requests adapter whose connections leave from one given loopback address."""

    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="session")
def fuzz_sessions(bad_stack: FaultStack) -> Iterator[itertools.cycle[requests.Session]]:
    sessions = []
    for number in range(SOURCES):
        session = requests.Session()
        session.verify = str(bad_stack.ca)
        session.mount("https://", _FromAddress(f"127.0.7.{number + 1}"))
        sessions.append(session)
    yield itertools.cycle(sessions)
    for session in sessions:
        session.close()


@pytest.fixture(scope="session")
def shop_api(bad_stack: FaultStack) -> Any:
    with bad_stack.client("127.0.7.250") as client:
        response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json())


#: Every operation of the document (a test below fails when the document has more).
OPERATIONS = ["listProducts", "getProduct", "listOrders", "createOrder", "getOrder", "openapi"]


def test_every_operation_of_the_document_is_fuzzed(shop_api: Any) -> None:
    found = sorted(
        result.ok().definition.raw["operationId"] for result in shop_api.get_all_operations()
    )
    assert found == sorted(OPERATIONS)


# schemathesis' own pytest integration (parametrize / from_fixture) needs a schema at
# import time or breaks on pytest 9 (Function._nodeid): the cases are drawn with
# Hypothesis directly from each operation's strategy instead, same checks.
#: Operations with inputs also get invalid ones (negative mode): each must be refused
#: with a documented 4xx.
WITH_INPUT = ["getProduct", "createOrder", "getOrder"]
CASES = [(op, GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (op, GenerationMode.NEGATIVE) for op in WITH_INPUT
]


@pytest.mark.parametrize(("operation_id", "mode"), CASES, ids=lambda v: getattr(v, "value", v))
def test_the_api_matches_its_openapi_document_under_fuzzing(
    shop_api: Any,
    bad_stack: FaultStack,
    fuzz_sessions: itertools.cycle[requests.Session],
    operation_id: str,
    mode: GenerationMode,
) -> None:
    operation = shop_api.find_operation_by_id(operation_id)
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def fuzz(case: Any) -> None:
        calls.append(case)
        case.call_and_validate(
            base_url=bad_stack.url,
            session=next(fuzz_sessions),
            headers={"Authorization": f"Bearer {bad_stack.token}"},
            timeout=10,
            verify=str(bad_stack.ca),
            # Its probes (the same request without or with a wrong token, on every
            # case) leave from one address and meet nginx's rate limit: authentication
            # is checked once per operation below instead.
            excluded_checks=[schemathesis.checks.ignored_auth],
        )

    fuzz()
    assert calls, f"no case was generated for {operation_id} ({mode.value})"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/orders"), ("POST", "/api/orders"), ("GET", "/api/orders/1")],
)
@pytest.mark.parametrize("token", [None, "not-a-valid-token"])
def test_secured_operations_refuse_missing_or_wrong_tokens(
    bad_stack: FaultStack, method: str, path: str, token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with bad_stack.client("127.0.7.251") as client:
        response = client.request(method, path, headers=headers, json={"items": []})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
