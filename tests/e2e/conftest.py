"""Fixtures of the e2e tests: one real stack of the shop for the whole session
(``flaskprod up -d``; see e2e_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import ShopStack, start_shop_stack


@pytest.fixture(scope="session")
def shop_stack() -> Iterator[ShopStack]:
    yield from start_shop_stack()
