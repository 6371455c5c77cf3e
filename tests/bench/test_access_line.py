"""bench/perf/access_line.py runs on the shop's rendered gunicorn config (figures not asserted:
timings are noise on a shared machine)."""

from __future__ import annotations

import os
import re

import pytest

from bench.perf import access_line


def test_it_times_both_loggers_of_the_rendered_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(access_line, "LINES", 200)
    monkeypatch.delenv("FLASKPROD_ACCESS_LOG", raising=False)
    access_line.main([])  # the shop, switched to gunicorn and rendered
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "gunicorn's atoms(), JSON-escaped",
        "the config's JsonAccessLogger",
    ]
    for line in lines:
        assert float(re.findall(r"([\d.]+) us per line", line)[0]) > 0
    # Loading the config does not switch this process's own access line off.
    assert "FLASKPROD_ACCESS_LOG" not in os.environ
