"""The steps of a trial (bench.trials): a CLI command bounded in time, recorded with its
exit code, first error line and trimmed output; ``check``'s JSON report judged; the
project's ``pip freeze``; the app's own error when ``up`` or a page failed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUTS = {
    "freeze": 120.0,
    "check": 300.0,
    "init": 300.0,
    "render": 120.0,
    "up": 420.0,
    "down": 180.0,
    "http": 20.0,
}


OUTPUT_LINES = 12


@dataclass
class Step:
    name: str
    command: str
    ok: bool
    seconds: float
    exit_code: int | None = None
    first_error: str | None = None
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _trim(text: str, lines: int = OUTPUT_LINES) -> str:
    kept = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if len(kept) > lines:
        kept = [*kept[:lines], f"… ({len(kept) - lines} more lines)"]
    return "\n".join(line[:200] for line in kept)


_ERROR = re.compile(r"\b(error|failed|traceback|exception|not found|refused)\b", re.IGNORECASE)


def first_error(text: str) -> str:
    """The first line that says what went wrong (else the last non-blank one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if _ERROR.search(line):
            return line[:300]
    return lines[-1][:300] if lines else "(no output)"


def _run(
    argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[int | None, str, str, float]:
    began = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env={**os.environ, **env} if env else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return None, out, err + f"\nno end within {timeout:.0f}s", time.monotonic() - began
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began


def _shown(argv: list[str], app: Path) -> str:
    words = []
    for word in argv:
        word = re.sub(r"^\S*/bin/flaskprod$", "flaskprod", word.replace(str(app), "."))
        word = re.sub(r"^\S*/\.venv/bin/", ".venv/bin/", word)
        words.append(f'"{word}"' if " " in word else word)
    return " ".join(words)


def command_step(
    name: str,
    argv: list[str],
    app: Path,
    *,
    ok_codes: tuple[int, ...] = (0,),
    env: dict[str, str] | None = None,
) -> Step:
    """A CLI step: ok when it exits with one of ``ok_codes`` in its time."""
    code, out, err, took = _run(argv, app, TIMEOUTS[name.split("-")[0]], env)
    ok = code in ok_codes
    return Step(
        name=name,
        command=_shown(argv, app),
        ok=ok,
        seconds=round(took, 1),
        exit_code=code,
        first_error=None if ok else first_error(err + "\n" + out),
        output=_trim(out + ("\n" + err if err.strip() else "")),
    )


def freeze_step(name: str, app: Path) -> Step:
    """``pip freeze --all`` of the project's own environment."""
    argv = [str(app / ".venv" / "bin" / "python"), "-m", "pip", "freeze", "--all"]
    code, out, err, took = _run(argv, app, TIMEOUTS["freeze"])
    ok = code == 0
    return Step(
        name=name,
        command=_shown(argv, app),
        ok=ok,
        seconds=round(took, 1),
        exit_code=code,
        first_error=None if ok else first_error(err + "\n" + out),
        output=f"{len(out.splitlines())} packages" if ok else _trim(err),
        data={"freeze": out if ok else ""},
    )


def judge_check(step: Step, stdout: str) -> Step:
    try:
        report = json.loads(stdout)
    except ValueError:
        step.ok = False
        step.first_error = step.first_error or f"not a JSON report: {first_error(stdout)}"
        return step
    findings = [f for f in report["findings"] if not f.get("ignored")]
    summary = report["summary"]
    step.data = {
        "counts": summary["counts"],
        "score": summary["score"],
        "grade": summary["grade"],
        "app_target": summary.get("app_target"),
        "app_imported": summary.get("app_imported"),
        "rules_skipped": summary.get("rules_skipped"),
        "findings": [
            {k: f[k] for k in ("id", "level", "file", "line", "message")} for f in findings
        ],
    }
    internal = [f for f in findings if f["id"] == "FP000"]
    if internal:
        step.ok = False
        step.first_error = f"FP000 {internal[0]['message']}"
    step.output = _trim(
        "\n".join(
            f"{f['id']} {f['level']} {f['file'] or ''}{':' + str(f['line']) if f['line'] else ''}"
            f" — {f['message']}"
            for f in findings
        )
        + f"\nscore {summary['score']}/100 {summary['grade']}, app {summary.get('app_target')}"
        f" ({'imported' if summary.get('app_imported') else 'not imported'})",
        lines=10,
    )
    return step


def run_check(flaskprod: str, name: str, app: Path, env: dict[str, str] | None = None) -> Step:
    """``flaskprod check APP --format json`` as a step (see :func:`judge_check`)."""
    argv = [flaskprod, "check", str(app), "--format", "json"]
    code, out, err, took = _run(argv, app, TIMEOUTS["check"], env)
    step = Step(
        name=name,
        command=_shown(argv, app),
        ok=code in (0, 1),
        seconds=round(took, 1),
        exit_code=code,
        first_error=None if code in (0, 1) else first_error(err + "\n" + out),
        output=_trim(out + "\n" + err),
    )
    return judge_check(step, out) if step.ok else step


_LOG = re.compile(r"\(log: (\S+?)\)")


def add_log(step: Step, app: Path) -> None:
    """The end of the log a failed ``up`` names: the app's own error is there."""
    found = _LOG.search((step.first_error or "") + "\n" + step.output)
    if found is None or not (app / found.group(1)).is_file():
        return
    tail = (app / found.group(1)).read_text(errors="replace").strip().splitlines()[-40:]
    step.data["log"] = found.group(1)
    step.output += f"\n{found.group(1)} (end):\n" + _trim("\n".join(tail), 8)
    cause = _cause(tail)
    if cause:
        step.first_error = f"{step.first_error} — {cause}"


def _cause(tail: list[str]) -> str | None:
    """The exception's own line (a traceback's last), else click's "Error: ..." line."""
    lines = [line.strip() for line in tail]
    named = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    causes = named or [line for line in lines if re.match(r"^(Error|Exception)\b", line)]
    return causes[-1][:240] if causes else None


def server_error(app: Path) -> str | None:
    """Why the app answered 5xx: the last exception in the app server's log."""
    for name in ("gunicorn", "granian"):
        log = app / ".flaskprod" / "logs" / f"{name}.log"
        if log.is_file():
            cause = _cause(log.read_text(errors="replace").splitlines()[-200:])
            if cause:
                return f"{cause} (.flaskprod/logs/{log.name})"
    return None


def freeze_diff(before: str, after: str) -> str:
    old, new = set(before.splitlines()), set(after.splitlines())
    changes = [f"-{line}" for line in sorted(old - new)] + [
        f"+{line}" for line in sorted(new - old)
    ]
    return ", ".join(changes[:6]) or "(order only)"
