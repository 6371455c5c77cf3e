"""docs/trials.md's "Real projects" section, written from ``bench.trials``' results
(the rest of the document is kept as it is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HEADING = "## 7. Real projects"
_SPEC_KEYS = (
    "target",
    "server",
    "worker_class",
    "database",
    "driver",
    "health_source",
    "health_path",
    "ready_path",
    "static_url",
    "media_env",
    "build",
    "settings",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>") if text else ""


def _project(result: dict[str, Any]) -> list[str]:
    verdict = "every step passed" if result["ok"] else "**some steps failed**"
    lines = [f"### {result['project']} — {verdict}", ""]
    where = f"app in `{result['app_dir']}`" if result["app_dir"] != "." else "app at the root"
    extra = []
    if result.get("added"):
        extra.append(" ".join(f"`{line}`" for line in result["added"]) + " in its venv")
    if result.get("init_args"):
        extra.append(f"`init {' '.join(result['init_args'])}`")
    if result["up_args"]:
        extra.append(f"`up {' '.join(_quoted(a) for a in result['up_args'])}`")
    if result["env"]:
        extra.append(" ".join(f"`{key}={value}`" for key, value in result["env"].items()))
    needs = result["reason"] or "nothing beyond the commands below"
    if extra:
        needs = f"needed {', '.join(extra)}: {needs}"
    lines += [f"{where}; {needs}.", ""]
    if result["spec"]:
        decided = ", ".join(
            f"{key} `{result['spec'][key]}`"
            for key in _SPEC_KEYS
            if result["spec"].get(key) not in (None, [], {})
        )
        lines += [f"`init` wrote: {decided}.", ""]
    lines += ["| step | result | output (trimmed) |", "|---|---|---|"]
    for step in result["steps"]:
        mark = "ok" if step["ok"] else "**failed**"
        code = "" if step["exit_code"] is None else f", exit {step['exit_code']}"
        result_cell = f"{mark}{code}, {step['seconds']}s"
        shown = step["output"]
        if step["first_error"]:
            shown = f"**{step['first_error']}**" + (f"\n{shown}" if shown else "")
        command = f"`{step['command']}`" if step["command"] else ""
        lines.append(f"| {step['name']} {command} | {result_cell} | {_cell(shown)} |")
    return [*lines, ""]


def _quoted(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


def section(results: dict[str, Any]) -> str:
    lines = [
        HEADING,
        "",
        "Written by `.venv/bin/python -m bench.trials --doc` (do not edit by hand): each project",
        "copied fresh, with its own virtual environment built from its own requirements",
        "(flaskprod runs from this checkout's, never from the project's), then what a new user",
        "runs, every step bounded in time. `check` exits 1 when it has findings (that is its",
        "job); it fails the step only on an internal failure (FP000) or when its report is not",
        "JSON. The project's `pip freeze` must be identical after `down`.",
        f"Run of {results['date']}, flaskprod at {results['commit']}, Python {results['python']}.",
        "",
    ]
    lines += ["| project | from | result |", "|---|---|---|"]
    for result in results["projects"]:
        failed = [step for step in result["steps"] if not step["ok"]]
        verdict = (
            f"{failed[0]['name']} failed: {failed[0]['first_error']}"
            if failed
            else "every step passed"
        )
        lines.append(f"| {result['project']} | {_cell(result['origin'])} | {_cell(verdict)} |")
    lines.append("")
    for result in results["projects"]:
        lines += _project(result)
    return "\n".join(lines).rstrip() + "\n"


def rewrite(doc: Path, results: dict[str, Any]) -> None:
    replace_section(doc, HEADING, section(results))


def replace_section(doc: Path, heading: str, new: str) -> None:
    """Replace the section ``new`` starts with ``heading`` (from that heading to the
    next ``## `` heading) or append it."""
    text = doc.read_text()
    start = text.find(heading)
    if start < 0:
        doc.write_text(text.rstrip() + "\n\n" + new)
        return
    end = text.find("\n## ", start + len(heading))
    tail = text[end + 1 :] if end >= 0 else ""
    doc.write_text(text[:start] + new + ("\n" + tail if tail else ""))
