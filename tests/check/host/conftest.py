"""The ``covers`` marker: which rule cases a live/host test proves ("LIV001:fail",
"LIV001:pass"); tests/check/test_rule_fixtures.py reads them for its meta-test."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "covers(*cases): rule cases proven, e.g. 'LIV001:fail'")
