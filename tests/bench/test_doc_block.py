"""bench/doc_block.py, what bench/multihost.py and bench/deploy_phases.py write their
figures with: a bench's block replaced in place, the rest of the page kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.doc_block import markers, ran_on, write_block


def test_a_block_is_added_once_then_replaced_in_place(tmp_path: Path) -> None:
    start, end = markers("multihost")
    assert (start, end) == ("<!-- bench.multihost:start -->", "<!-- bench.multihost:end -->")
    other = "<!-- bench.deploy_phases:start -->\n| x | 1 |\n<!-- bench.deploy_phases:end -->"
    doc = tmp_path / "deploy.md"
    doc.write_text(f"# flaskprod deploy\n\n{other}\n\nprose after it\n\n\n")

    write_block(doc, f"{start}\nfirst\n{end}", start, end)
    assert doc.read_text() == (
        f"# flaskprod deploy\n\n{other}\n\nprose after it\n\n{start}\nfirst\n{end}\n"
    )
    write_block(doc, f"{start}\nsecond\n{end}", start, end)
    assert doc.read_text() == (
        f"# flaskprod deploy\n\n{other}\n\nprose after it\n\n{start}\nsecond\n{end}\n"
    )


def test_a_missing_page_is_made_only_when_its_text_is_given(tmp_path: Path) -> None:
    start, end = markers("deploy_phases")
    block = f"{start}\n| a |\n{end}"
    with pytest.raises(FileNotFoundError):
        write_block(tmp_path / "missing.md", block, start, end)
    doc = tmp_path / "deploy.md"
    write_block(doc, block, start, end, new_page="# flaskprod deploy\n")
    assert doc.read_text() == f"# flaskprod deploy\n\n{block}\n"


def test_where_and_when_it_ran() -> None:
    record = ran_on(1.25)
    assert list(record) == ["machine", "load", "when"]
    assert record["machine"].endswith(" cores)")
    assert record["load"].startswith("1.2 before, ") and record["load"].endswith(" after")
    assert record["when"].endswith(" UTC")
