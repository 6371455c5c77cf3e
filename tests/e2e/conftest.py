"""Fixtures of the e2e tests: one real stack of the shop shared by every test in this
folder (``flaskprod up -d``; see e2e_support.py).

It is session-scoped so that test_up_stack.py and test_browser.py share it, and it is
stopped as soon as the last test of this folder has run (not at the end of the whole
session), so that other suites do not run next to an idle stack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from e2e_support import ShopStack, start_shop_stack

HERE = Path(__file__).resolve().parent
_running: list[Generator[ShopStack, None, None]] = []


def _stop() -> None:
    while _running:
        with contextlib.suppress(StopIteration):
            next(_running.pop())  # runs start_shop_stack's teardown (flaskprod down)


@pytest.fixture(scope="session")
def shop_stack() -> Iterator[ShopStack]:
    stack = start_shop_stack()
    _running.append(stack)
    yield next(stack)
    _stop()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or HERE not in Path(nextitem.path).resolve().parents:
        _stop()
