"""The JSON report: ``{"findings": [...], "summary": {...}}`` and nothing else."""

from __future__ import annotations

import json
from typing import Any

from flaskprod.check.runner import CheckResult


def render_json(result: CheckResult, summary: dict[str, Any]) -> str:
    document = {"findings": [f.to_dict() for f in result.findings], "summary": summary}
    return json.dumps(document, indent=2) + "\n"
