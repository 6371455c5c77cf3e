"""The fault scenarios of ``make test``: one real ``flaskprod up -d`` stack of the shop
per module (``fault_stack``), the harness of ``bench/faults`` (one code path for the
tests and the figures), a small bounded load (``TEST`` size: a few seconds each)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.faults.stack import FaultStack, StackError, running_stack  # noqa: E402


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[FaultStack]:
    try:
        with running_stack() as stack:
            yield stack
    except StackError as error:
        pytest.fail(f"the stack for the fault scenarios did not start: {error}", pytrace=False)
