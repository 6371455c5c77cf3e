"""bench.check_vs_peers on three cases, with the real peers (their virtualenv is built
once from PyPI and cached outside the repository): each defect is seen by flaskprod,
and by the peers that read its layer and know it, through the fail/pass difference."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.check_peers import TOOLS, ensure_peers, versions
from bench.check_vs_peers import HEADING, Case, rewrite, score_cases, table

CASES = ["DOC002", "SYS002", "NGX009"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Case], dict[str, str]]:
    venv = ensure_peers()
    corpus = tmp_path_factory.mktemp("corpus")
    return score_cases(corpus, CASES, venv), versions(venv)


def test_each_defect_is_scored_against_every_peer(
    scored: tuple[list[Case], dict[str, str]],
) -> None:
    cases, tool_versions = scored
    by_id = {case.rule_id: case for case in cases}
    assert [c.layer for c in cases] == ["docker", "systemd", "nginx"]
    assert all(case.flaskprod for case in cases)
    assert all(set(case.peers) == set(TOOLS) for case in cases)
    # the image runs as root: trivy (DS-0002) and checkov (CKV_DOCKER_3) see it
    assert by_id["DOC002"].peers["trivy"] and by_id["DOC002"].peers["checkov"]
    assert "hadolint" in by_id["DOC002"].peers_reading
    # no User=: systemd-analyze security's User=/DynamicUser= item
    assert by_id["SYS002"].peers["systemd-analyze"]
    # tools that read nothing of a case are not said to miss it in its layer
    assert "hadolint" not in by_id["NGX009"].peers_reading
    assert "gixy" in by_id["NGX009"].peers_reading
    assert tool_versions["hadolint"].startswith("2.") and tool_versions["trivy"] != "?"


def test_the_table_and_the_doc_section(
    scored: tuple[list[Case], dict[str, str]], tmp_path: Path
) -> None:
    cases, tool_versions = scored
    body = table(cases, [], tool_versions)
    assert f"hadolint {tool_versions['hadolint']}" in body
    assert "| docker | 1 | 1/1 (100 %) |" in body
    assert "| **all** | 3 | 3/3 (100 %) |" in body
    doc = tmp_path / "trials.md"
    doc.write_text(f"# Trials\n\n## 1. One\n\ntext\n\n{HEADING}\n\nold\n\n## 9. Last\n\nkept\n")
    rewrite(doc, body, "intro")
    rewrite(doc, body, "intro")  # replaced in place, not appended
    text = doc.read_text()
    assert text.count(HEADING) == 1 and "old" not in text and "## 1. One\n\ntext" in text
    assert text.endswith("## 9. Last\n\nkept\n") and body in text
