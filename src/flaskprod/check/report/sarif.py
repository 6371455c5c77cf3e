"""SARIF 2.1.0, as GitHub code scanning accepts it.

Every result has a physical location (GitHub rejects results without one): its file
and line when it has them, else the project file it is about (the spec, pyproject or
requirements). Silenced findings are kept with a ``suppressions`` entry carrying the
reason, so code scanning shows them as dismissed rather than losing them.
"""

from __future__ import annotations

import json
from typing import Any

from flaskprod import __version__
from flaskprod.check.internal import INTERNAL
from flaskprod.check.model import DOCS_URL, REGISTRY, Finding, Level, rule_url
from flaskprod.check.runner import CheckResult

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Level.CRITICAL: "error",
    Level.ERROR: "error",
    Level.WARNING: "warning",
    Level.INFO: "note",
}
#: GitHub's severity scale for security results (0-10), by level.
_SEVERITY = {Level.CRITICAL: "9.5", Level.ERROR: "7.5", Level.WARNING: "5.0", Level.INFO: "2.0"}


def _rule_entries() -> list[dict[str, Any]]:
    entries = []
    for rule in REGISTRY:
        entries.append(
            _entry(
                rule.id,
                rule.title,
                rule.help,
                rule.level,
                [rule.layer, "security", "flaskprod"],
                _markdown(rule.help, rule.level_reason, rule.example),
            )
        )
    for check in INTERNAL.values():
        entries.append(
            _entry(check.id, check.title, check.help, check.level, ["flaskprod"], check.help)
        )
    return entries


def _markdown(help_text: str, level_reason: str, example: str) -> str:
    """The rule's reference section as code scanning shows it beside an alert: its fix,
    why its level, and what it flags. The whole answer is here, so an alert needs no
    link to be understood (helpUri is a file:// URI, which a browser on GitHub cannot open)."""
    parts = [help_text]
    if level_reason:
        parts.append(f"Level: {level_reason}")
    if example:
        parts.append(f"Example:\n\n```\n{example}\n```")
    return "\n\n".join(parts)


def _entry(
    rule_id: str, title: str, help_text: str, level: Level, tags: list[str], markdown: str
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": "".join(
            word.capitalize() for word in title.replace("-", " ").split() if word.isalnum()
        ),
        "shortDescription": {"text": title},
        "fullDescription": {"text": help_text},
        "help": {
            "text": help_text,
            "markdown": f"{markdown}\n\n[Reference]({rule_url(rule_id)})",
        },
        "helpUri": rule_url(rule_id),
        "defaultConfiguration": {"level": _LEVEL[level]},
        "properties": {"tags": tags, "security-severity": _SEVERITY[level]},
    }


def _fallback_uri(result: CheckResult) -> str:
    root = result.context.root
    for name in (
        "flaskprod.toml",
        "pyproject.toml",
        "requirements.txt",
        "setup.py",
        "app.py",
        "wsgi.py",
    ):
        if (root / name).is_file():
            return name
    return "README.md"


def _result(finding: Finding, index: dict[str, int], fallback: str) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": max(1, finding.line or 1)}
    entry: dict[str, Any] = {
        "ruleId": finding.id,
        "ruleIndex": index[finding.id],
        "level": _LEVEL[finding.level],
        "message": {"text": f"{finding.message} Fix: {finding.hint}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": finding.file or fallback, "uriBaseId": "%SRCROOT%"},
                    "region": region,
                }
            }
        ],
        "properties": {"layer": finding.layer, "flaskprodLevel": str(finding.level)},
    }
    if finding.host is not None:  # check --hosts: the host is where it was found
        entry["locations"][0]["logicalLocations"] = [{"fullyQualifiedName": finding.host}]
        entry["properties"]["host"] = finding.host
    if finding.ignored_reason is not None:
        entry["suppressions"] = [{"kind": "external", "justification": finding.ignored_reason}]
    return entry


def render_sarif(result: CheckResult, summary: dict[str, Any]) -> str:
    rules = _rule_entries()
    index = {rule["id"]: position for position, rule in enumerate(rules)}
    fallback = _fallback_uri(result)
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "flaskprod",
                        "version": __version__,
                        "informationUri": DOCS_URL,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": result.context.root.as_uri() + "/"}},
                "results": [_result(f, index, fallback) for f in result.findings],
                "properties": {"score": summary["score"], "grade": summary["grade"]},
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"
