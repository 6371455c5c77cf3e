"""Findings of the fuzz, kept as tests: the shop's rules and its OpenAPI document agree.

- An ``Idempotency-Key`` the document allowed (any string of 1 to 255 characters) was
  refused with 400 when it held a character ``str.isprintable`` rejects (a C1 control
  such as U+0085, legal in an HTTP header as obs-text): schemathesis' "schema-valid
  request rejected". The rule is now visible ASCII with at least one visible
  character, published as the parameter's ``pattern`` and checked by the same regex.
"""

from __future__ import annotations

import re
import uuid

import pytest

from bench.faults.stack import FaultStack

pytestmark = pytest.mark.services

KEYS = [
    "plain-key",
    "inner space",
    "a" * 255,
    "a" * 256,
    "\x85x",
    "caf\xe9",
    "tab\there",
    "~!@#$%^&*()",
]


def test_the_idempotency_key_rule_is_the_one_the_document_publishes(
    bad_stack: FaultStack,
) -> None:
    with bad_stack.client("127.0.8.20") as client:
        document = client.get("/api/openapi.json").json()
        (parameter,) = document["paths"]["/api/orders"]["post"]["parameters"]
        schema = parameter["schema"]
        for key in KEYS:
            unique = key if len(key) >= 255 else f"{key}{uuid.uuid4().hex[:8]}"
            published = (
                schema["minLength"] <= len(unique) <= schema["maxLength"]
                and re.search(schema["pattern"], unique) is not None
            )
            response = client.post(
                "/api/orders",
                json={"items": [{"product_id": 1, "quantity": 1}]},
                headers={
                    "Authorization": f"Bearer {bad_stack.token}",
                    "Idempotency-Key": unique.encode("latin-1"),
                },
            )
            accepted = response.status_code in (200, 201)
            assert accepted == published, (key, response.status_code, response.text[:200])
            if not accepted:
                assert response.status_code == 400
                assert "Idempotency-Key" in response.json()["error"]["fields"]
