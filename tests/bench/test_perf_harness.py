"""Smoke test of bench/perf with tiny durations: the harness runs end to end against a
real gunicorn and produces well-formed results and a report. Never asserts speed."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.perf.measure import Settings, closed_loop, fixed_rate
from bench.perf.openloop import encode
from bench.perf.report import render
from bench.perf.run import write
from bench.perf.stacks import Running, limit_stack
from bench.perf.targets import evaluate
from bench.perf.workloads import MIX, Target, factory, lua
from bench.perf.wrk import run_wrk

TINY = Settings(seconds=1, repeats=1, warmup=0, latency_seconds=0.5, connections=4)
TARGET = Target("127.0.0.1", (1, 2), "t0ken")


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with limit_stack(tmp_path_factory.mktemp("perf-logs"), workers=1) as stack:
        yield stack


@pytest.fixture(scope="module")
def cell(hello: Running) -> dict[str, Any]:
    """One measured cell (closed loop 1 s, then 20 requests at a fixed rate)."""
    top = closed_loop(hello, "hello", TARGET, TINY)
    latency = fixed_rate(hello, "hello", TARGET, rate=40.0, settings=TINY)
    return {"max": top, "fixed_rate": latency, "load_average": 0.0}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def test_closed_and_fixed_rate_cells_are_well_formed(cell: dict[str, Any]) -> None:
    top = cell["max"]
    assert top["requests"] > 0 and top["rps"] > 0
    assert top["errors"] == 0, top
    assert top["p50_ms"] <= top["p99_ms"] <= top["p999_ms"]
    assert all(_finite(top[k]) for k in ("stack_cpu_cores", "client_cpu_cores"))
    assert top["stack_cpu_us_per_request"] > 0  # gunicorn's CPU was counted
    assert top["workers"] == 1 and top["worker_rss_mib_max"] > 5
    assert 0 < top["worker_pss_mib_max"] <= top["worker_rss_mib_max"]

    latency = cell["fixed_rate"]
    assert latency["sent"] == 20  # rate x seconds: the open loop sends exactly its count
    assert latency["errors"] == 0, latency
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["p999_ms"]

    results: dict[str, Any] = {
        "meta": _meta(),
        "stacks": {
            "limit": {"notes": {"server": "x"}, "workloads": {"hello": cell}},
            "usual": {"notes": {"server": "y"}, "workloads": {"mix": cell, "static": cell}},
            "flaskprod": {
                "notes": {"server": "z"},
                "workloads": {"mix": cell, "products": cell, "product": cell, "static": cell},
            },
        },
    }
    results["targets"] = evaluate(results)
    assert [t["name"].split(":")[0].split(" ")[0] for t in results["targets"]] == [
        "mix",
        "cached",
        "static",
        "shop",
    ]
    assert all(isinstance(t["met"], bool) and _finite(t["value"]) for t in results["targets"])


def _meta() -> dict[str, Any]:
    return {
        "started": "2026-01-01T00:00:00+00:00",
        "command": ".venv/bin/python -m bench.perf --quick",
        "seconds": 1,
        "cores": 2,
        "load_average_start": [1.0, 1.0, 1.0],
        "load_average_end": [1.0, 1.0, 1.0],
        "settings": TINY.__dict__,
        "versions": {"python": "3"},
        "mix": [list(pair) for pair in MIX],
    }


def test_results_and_report_are_written(tmp_path: Path, cell: dict[str, Any]) -> None:
    results: dict[str, Any] = {
        "meta": _meta(),
        "stacks": {
            "limit": {"notes": {"server": "bare"}, "workloads": {"hello": cell}},
            "usual": {"notes": {"server": "sync"}, "workloads": {"mix": cell}},
            "flaskprod": {"notes": {"server": "gthread"}, "workloads": {"mix": cell}},
        },
        "targets": [],
    }
    path = write(results, tmp_path / "results")
    assert json.loads(path.read_text()) == json.loads((path.parent / "latest.json").read_text())
    page = render(results, tmp_path / "docs").read_text()
    assert ".venv/bin/python -m bench.perf --quick" in page
    assert "| flaskprod | mix |" in page and "| usual | mix |" in page
    for image in ("throughput.png", "latency.png"):
        data = (tmp_path / "docs" / "performance" / image).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_every_workload_script_runs_in_wrk(hello: Running) -> None:
    """The Lua of the mix (which calls every other request builder) runs in wrk; the
    hello app has no /api routes, so its 404s must be counted as errors."""
    result = run_wrk(hello.url, "mix", TARGET, seconds=1, connections=2, threads=1)
    assert result.requests > 0
    assert result.status_errors > 0 and result.errors >= result.status_errors
    for name in ("products", "product", "order", "static", "hello"):
        assert "function done" in lua(name, TARGET)


def test_order_requests_are_unique_and_well_formed() -> None:
    make = factory("order", TARGET)
    first, second = make(), make()
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    raw = encode(first, "localhost")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/orders HTTP/1.1\r\nHost: localhost")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body)["items"][0]["product_id"] in TARGET.product_ids


def test_models_run_is_written_beside_the_full_run_and_rendered(
    tmp_path: Path, cell: dict[str, Any]
) -> None:
    """--models results go to models-*.json / models-latest.json (latest.json, the full
    run the targets come from, is left alone) and get their own table in the page."""
    from bench.perf.run import _render_docs

    full: dict[str, Any] = {
        "meta": _meta(),
        "stacks": {"flaskprod": {"notes": {"server": "gthread"}, "workloads": {"mix": cell}}},
        "targets": [],
    }
    models: dict[str, Any] = {
        "meta": {**_meta(), "mode": "models", "command": ".venv/bin/python -m bench.perf --models"},
        "stacks": {
            "gunicorn gevent": {
                "notes": {"server": "gunicorn gevent x2"},
                "workloads": {"mix": cell},
            },
            "granian": {"notes": {"error": "granian is missing"}, "workloads": {}},
        },
    }
    results = tmp_path / "results"
    write(full, results)
    path = write(models, results)
    assert path.name == "models-2026-01-01T000000Z.json"
    assert json.loads((results / "models-latest.json").read_text())["meta"]["mode"] == "models"
    assert "mode" not in json.loads((results / "latest.json").read_text())["meta"]
    page = _render_docs(results, tmp_path / "docs").read_text()
    assert "| gunicorn gevent (gunicorn gevent x2) | mix |" in page
    assert "| granian | — | did not start: granian is missing |" in page
    assert "Run `.venv/bin/python -m bench.perf --models`" in page
