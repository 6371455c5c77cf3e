"""Every link a report or a doc gives resolves: SARIF's helpUri and informationUri, the
text and JSON reports' ``see:`` links, and the relative links of README.md and docs/*.md.

A link resolves when its file exists and, with a fragment, the file has that anchor: an
``<a id>`` (the checks reference has one per rule) or a heading's GitHub slug.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from click.testing import CliRunner
from project_files import write

from flaskprod.check.model import REFERENCE
from flaskprod.cli import cli

REPO = Path(__file__).resolve().parents[2]
#: [text](target) outside code, not an image.
_LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    seen: dict[str, int] = {}
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading and not in_code:
            slug = _slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def unresolved_file_uri(uri: str) -> str | None:
    """Why ``uri`` does not resolve; None when it does."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return f"{uri}: not a file:// URI"
    path = Path(unquote(parsed.path))
    if not path.is_file():
        return f"{uri}: no such file"
    if parsed.fragment and parsed.fragment not in anchors(path):
        return f"{uri}: no anchor #{parsed.fragment}"
    return None


def relative_links(markdown: Path) -> list[str]:
    """The relative link targets of a markdown file, code blocks and spans left out."""
    text = re.sub(r"```.*?```", "", markdown.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with findings in several layers (files only: no import needed)."""
    return write(
        tmp_path_factory.mktemp("links") / "proj",
        {
            "requirements.txt": "flask==2.2.2\n",
            "Dockerfile": "FROM python:3.11\nCOPY . .\nCMD gunicorn app:app\n",
            "app.py": "import os\nKEY = os.environ['SECRET_KEY']\n",
        },
    )


def _check(project: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["check", str(project), "--no-import", *args])
    assert result.exit_code == 1, result.output
    return result.stdout


def test_sarif_help_uris_resolve_to_the_rules_sections(project: Path) -> None:
    document = json.loads(_check(project, "--format", "sarif"))
    driver = document["runs"][0]["tool"]["driver"]
    uris = [driver["informationUri"]] + [rule["helpUri"] for rule in driver["rules"]]
    # the markdown help's own link, as code scanning renders it
    uris += [re.findall(r"\]\(([^)]+)\)", rule["help"]["markdown"])[-1] for rule in driver["rules"]]
    assert len(driver["rules"]) > 150
    assert [why for uri in uris if (why := unresolved_file_uri(uri))] == []
    for rule in driver["rules"]:  # each rule's link lands on its own section
        assert urlparse(rule["helpUri"]).fragment == rule["id"].lower()
    assert "github.com/flaskprod" not in json.dumps(document)


def test_a_missing_anchor_or_file_does_not_resolve() -> None:
    """The resolver can fail: a rule id the reference lacks, a file that is not there."""
    assert unresolved_file_uri(REFERENCE.as_uri() + "#app001") is None
    assert "no anchor" in str(unresolved_file_uri(REFERENCE.as_uri() + "#zzz999"))
    assert "no such file" in str(unresolved_file_uri(REFERENCE.with_name("nope.md").as_uri()))
    assert "not a file" in str(unresolved_file_uri("https://example.org/checks.md"))


def test_text_and_json_links_resolve(project: Path) -> None:
    text_links = re.findall(r"see: (\S+)", _check(project))
    json_links = [f["url"] for f in json.loads(_check(project, "--format", "json"))["findings"]]
    assert len(text_links) >= 3 and sorted(text_links) == sorted(json_links)
    assert [why for uri in text_links if (why := unresolved_file_uri(uri))] == []


def test_the_reference_is_docs_checks_md() -> None:
    """The package's copy is the generated doc itself (a link in a checkout)."""
    assert REFERENCE.read_text() == (REPO / "docs" / "checks.md").read_text()


def test_relative_links_in_readme_and_docs_resolve() -> None:
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for document in documents:
        for target in relative_links(document):
            path, _, fragment = target.partition("#")
            destination = (document.parent / unquote(path)) if path else document
            if not destination.resolve().is_relative_to(REPO):
                continue  # ../shared/DESIGN.md: the workplace's folder, not this repository's
            if not destination.exists():
                broken.append(f"{document.name}: {target} (no such file)")
            elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
                broken.append(f"{document.name}: {target} (no such anchor)")
    assert len(documents) > 10
    assert broken == []
