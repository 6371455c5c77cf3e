"""docs/reliability.md is produced from the results JSON files, never typed by hand:
the newest result of each scenario is shown, with its figures and a failed check as
FAILED; the file is written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.faults.report import COMMAND, render, write_doc


def _result(number: int, *, passed: bool, failed_gets: dict[str, int]) -> dict[str, Any]:
    latency = {"p50": 1.0, "p99": 2.0, "max": 3.0}
    return {
        "scenario": number,
        "title": f"scenario title {number}",
        "fault": "a fault",
        "load": {
            "load": "20 req/s",
            "sent": 100,
            "gets": 75,
            "posts": 25,
            "retries": 1,
            "failed_gets": failed_gets,
            "failed_posts_first_attempt": {"502": 1},
            "failed_posts_final": {},
            "failed_total_first_attempt": sum(failed_gets.values()) + 1,
            "failed_total_final": sum(failed_gets.values()),
            "latency_ms": {"get": latency, "post": latency},
        },
        "orders": {
            "acknowledged": 25,
            "in_database": 25,
            "stored_not_acknowledged": 0,
            "lost": 0,
            "duplicated": 0,
        },
        "time_to_recover_s": 1.25,
        "extra": {"gap_s": 1.25},
        "checks": [{"check": "a check", "passed": passed, "expected": "0", "observed": 7}],
        "passed": passed,
    }


def _write(folder: Path, name: str, results: list[dict[str, Any]]) -> None:
    run = {"command": COMMAND, "size": "quick", "started": name, "scenarios": results}
    (folder / f"faults-{name}.json").write_text(json.dumps(run))


def test_the_newest_result_of_each_scenario_is_rendered(tmp_path: Path, monkeypatch: Any) -> None:
    import bench.faults.report as report

    monkeypatch.setattr(report, "REPO", tmp_path)
    _write(tmp_path, "2026-01-01T000000Z", [_result(1, passed=True, failed_gets={})])
    _write(tmp_path, "2026-01-02T000000Z", [_result(1, passed=False, failed_gets={"502": 4})])
    _write(tmp_path, "2026-01-01T120000Z", [_result(2, passed=True, failed_gets={})])
    text = render(tmp_path, "gunicorn")
    assert COMMAND in text
    assert "## 1. scenario title 1 — **FAILED**" in text
    assert "4 x 502" in text  # the newer run of scenario 1 wins
    assert "faults-2026-01-02T000000Z.json" in text
    assert "## 2. scenario title 2 — passed" in text
    assert "| a check | 0 | 7 | FAIL |" in text
    # Both runs of scenario 1 are listed, so a difference between runs shows.
    first = "faults-2026-01-01T000000Z.json` (quick, gunicorn): 1.25 s, 1 / 0, passed"
    assert text.count(first) == 1
    assert "faults-2026-01-02T000000Z.json` (quick, gunicorn): 1.25 s, 5 / 4, FAILED" in text


def test_a_full_run_is_the_headline_over_a_newer_quick_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import bench.faults.report as report

    monkeypatch.setattr(report, "REPO", tmp_path)
    full = _result(7, passed=False, failed_gets={"504": 2})
    _write(tmp_path, "2026-01-01T000000Z", [full])
    (tmp_path / "faults-2026-01-01T000000Z.json").write_text(
        json.dumps({"command": COMMAND, "size": "full", "started": "x", "scenarios": [full]})
    )
    _write(tmp_path, "2026-01-02T000000Z", [_result(7, passed=True, failed_gets={})])
    text = render(tmp_path, "gunicorn")
    assert "## 7. scenario title 7 — **FAILED**" in text
    assert "2 x 504" in text


def test_a_worker_class_run_is_listed_but_not_the_headline(
    tmp_path: Path, monkeypatch: Any
) -> None:
    import bench.faults.report as report

    monkeypatch.setattr(report, "REPO", tmp_path)
    own = _result(7, passed=True, failed_gets={})
    other = _result(7, passed=False, failed_gets={"503": 9})
    for name, result, extra in (
        ("2026-01-01T000000Z", own, {}),
        ("2026-01-02T000000Z", other, {"worker_class": "sync"}),
    ):
        run = {"command": COMMAND, "size": "full", "started": name, "scenarios": [result]}
        (tmp_path / f"faults-{name}.json").write_text(json.dumps(run | extra))
    text = render(tmp_path, "gunicorn")
    assert "## 7. scenario title 7 — passed" in text  # the shop's own configuration
    assert "9 x 503" not in text
    listed = "faults-2026-01-02T000000Z.json` (full, gunicorn, sync workers): 1.25 s, 10 / 9"
    assert f"{listed}, FAILED" in text


def test_the_shops_own_server_is_the_headline(tmp_path: Path, monkeypatch: Any) -> None:
    """The headline is a run on the app server the shop's flaskprod.toml names; a newer
    full run on the other one (``--server``) is only listed."""
    import bench.faults.report as report

    monkeypatch.setattr(report, "REPO", tmp_path)
    granian = _result(3, passed=True, failed_gets={"502": 5})
    gunicorn = _result(3, passed=False, failed_gets={"502": 9})
    for name, result, server in (
        ("2026-01-01T000000Z", granian, "granian"),
        ("2026-01-02T000000Z", gunicorn, "gunicorn"),
    ):
        run = {"command": COMMAND, "size": "full", "started": name, "scenarios": [result]}
        (tmp_path / f"faults-{name}.json").write_text(json.dumps(run | {"server": server}))
    text = render(tmp_path, "granian")
    assert "## 3. scenario title 3 — passed" in text
    assert "(full size, granian, 2026-01-01T000000Z" in text
    assert "9 x 502" not in text
    assert "faults-2026-01-02T000000Z.json` (full, gunicorn): 1.25 s, 10 / 9, FAILED" in text
    assert "## 3. scenario title 3 — **FAILED**" in render(tmp_path, "gunicorn")


def test_the_doc_is_written_atomically(tmp_path: Path, monkeypatch: Any) -> None:
    import bench.faults.report as report

    monkeypatch.setattr(report, "REPO", tmp_path)
    _write(tmp_path, "2026-01-01T000000Z", [_result(3, passed=True, failed_gets={})])
    doc = tmp_path / "docs" / "reliability.md"
    assert write_doc(tmp_path, doc) == doc
    assert "## 3. scenario title 3 — passed" in doc.read_text()
    assert [p.name for p in doc.parent.iterdir()] == ["reliability.md"]  # no temp file left


def test_without_results_the_doc_says_how_to_make_them(tmp_path: Path) -> None:
    assert "No results yet: run the command above." in render(tmp_path)


def test_another_benchs_block_in_the_doc_is_kept(tmp_path: Path, monkeypatch: Any) -> None:
    """bench/multihost.py writes its figures into the same page: a rewrite keeps them."""
    import bench.faults.report as report

    monkeypatch.setattr(report, "REPO", tmp_path)
    _write(tmp_path, "2026-01-01T000000Z", [_result(3, passed=True, failed_gets={})])
    doc = tmp_path / "docs" / "reliability.md"
    doc.parent.mkdir(parents=True)
    block = (
        "<!-- bench.multihost:start -->\n### Several hosts\n| a | 1 |\n<!-- bench.multihost:end -->"
    )
    doc.write_text("old page\n\n" + block + "\n")
    write_doc(tmp_path, doc)
    text = doc.read_text()
    assert "old page" not in text and "## 3. scenario title 3 — passed" in text
    assert text.rstrip().endswith(block)
