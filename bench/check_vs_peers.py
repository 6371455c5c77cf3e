"""``flaskprod check`` beside hadolint, gixy-next, checkov, trivy config and
systemd-analyze: recall per layer on single-defect cases, alarms on clean projects.

The corpus is built from check's own rule fixtures (tests/check/fixtures/<ID>/fail and
pass): each fail folder is one defect, labelled with its rule id and that rule's layer;
its pass folder is the same project with that defect fixed. A tool FINDS a defect when
it reports something on the fail folder that it does not report on the pass folder
(same file, same code of its own), so no mapping between the tools' ids is needed.
flaskprod finds it when the expected id is reported. Because the fixtures were written
for flaskprod's rules, flaskprod's recall on this corpus is 100 % by construction: the
figure that matters here is how many of these defects each peer sees.

Clean projects: the shop (examples/shop) and the real projects after ``flaskprod init``
(tests/real_projects.py). Counted: findings at warning or above (each tool's own scale,
check_peers.SERIOUS) on the files the kit rendered, which flaskprod calls clean; the
projects' own files are counted apart (they hold real defects).

    .venv/bin/python -m bench.check_vs_peers [--cases NGX005,DOC002] [--no-real-projects]
        [--write-doc] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.check_peers import SERIOUS, TOOLS, Hit, ensure_peers, run_peers, versions
from bench.trials_doc import replace_section

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
DOC = REPO / "docs" / "check-trials.md"
HEADING = "## 4. Beside the single-layer linters"
COMMAND = ".venv/bin/python -m bench.check_vs_peers --write-doc"
REAL_PROJECTS = ("flaskr", "microblog", "flask-on-docker")


def _tests_on_path() -> None:
    for folder in (TESTS, TESTS / "check", TESTS / "check" / "rules"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


@dataclass
class Case:
    rule_id: str
    layer: str
    flaskprod: bool = False  # the expected id was reported on the fail side
    peers: dict[str, bool] = field(default_factory=dict)  # tool -> found
    peers_reading: list[str] = field(default_factory=list)  # tools that read a file of it


def build_corpus(corpus: Path, rule_ids: list[str]) -> list[Path]:
    """Each fixture side copied to ``corpus/<ID>-<side>`` (kit rendered, git tracked and
    file modes set as the fixture tests do)."""
    _tests_on_path()
    from check_helpers import FIXTURES, prepare
    from deploy_helpers import FIXTURE_MODES

    cases = []
    with tempfile.TemporaryDirectory(prefix="peers-prepare-") as scratch:
        for rule_id in rule_ids:
            for side in ("fail", "pass"):
                prepared = prepare(FIXTURES / rule_id / side, Path(scratch))
                for relative, mode in FIXTURE_MODES.items():
                    if relative.startswith(f"{rule_id}/{side}/"):
                        (Path(scratch) / relative).chmod(mode)
                target = corpus / f"{rule_id}-{side}"
                shutil.move(str(prepared), target)
                cases.append(target)
    return cases


def flaskprod_ids(case: Path, rule_id: str) -> set[str]:
    from check_helpers import needs_import

    from flaskprod.check.runner import CheckOptions, run_checks

    result = run_checks(CheckOptions(root=case, no_import=not needs_import(rule_id)))
    return {f.id for f in result.findings}


def _signatures(hits: list[Hit], tool: str, case: str) -> set[tuple[str, str]]:
    return {(h.file, h.code) for h in hits if h.tool == tool and h.case == case}


def score_cases(corpus: Path, rule_ids: list[str], venv: Path | None) -> list[Case]:
    from flaskprod.check.model import REGISTRY
    from flaskprod.check.runner import load_rules

    load_rules()
    cases = build_corpus(corpus, rule_ids)
    hits = run_peers(venv, corpus, cases) if venv is not None else []
    scored = []
    for rule_id in rule_ids:
        case = Case(rule_id, REGISTRY[rule_id].layer)
        case.flaskprod = rule_id in flaskprod_ids(corpus / f"{rule_id}-fail", rule_id)
        for tool in TOOLS if venv is not None else ():
            fail = _signatures(hits, tool, f"{rule_id}-fail")
            passing = _signatures(hits, tool, f"{rule_id}-pass")
            case.peers[tool] = bool(fail - passing)
            if fail or passing:
                case.peers_reading.append(tool)
        scored.append(case)
    return scored


# -- clean projects -----------------------------------------------------------------------


@dataclass
class Clean:
    project: str
    #: tool -> findings at warning or above on the kit's files (flaskprod: kit files only)
    on_kit: dict[str, list[str]] = field(default_factory=dict)
    #: tool -> findings at warning or above on the project's own files
    on_own: dict[str, int] = field(default_factory=dict)
    #: the files the kit rendered (relative)
    kit_files: list[str] = field(default_factory=list)


def _kit_files(root: Path) -> set[str]:
    from flaskprod.spec.rendered import read_manifest

    return set(read_manifest(root))


def score_clean(root: Path, name: str, venv: Path | None) -> Clean:
    from flaskprod.check.model import Level
    from flaskprod.check.runner import CheckOptions, run_checks

    kit = _kit_files(root)
    clean = Clean(name, kit_files=sorted(kit))
    serious = [
        f
        for f in run_checks(CheckOptions(root=root)).findings
        if f.level >= Level.WARNING and f.ignored_reason is None
    ]
    clean.on_kit["flaskprod"] = sorted(f"{f.id} {f.file}" for f in serious if f.file in kit)
    clean.on_own["flaskprod"] = sum(1 for f in serious if f.file not in kit)
    if venv is None:
        return clean
    with tempfile.TemporaryDirectory(prefix="peers-clean-") as tmp:
        # the tools see the project as one case of a corpus (its files, not its venv)
        copy = Path(tmp) / name
        shutil.copytree(
            root, copy, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", ".flaskprod")
        )
        hits = run_peers(venv, Path(tmp), [copy])
    for tool in TOOLS:
        mine = [h for h in hits if h.tool == tool and h.serious]
        clean.on_kit[tool] = sorted({f"{h.code} {h.file}" for h in mine if h.file in kit})
        clean.on_own[tool] = sum(1 for h in mine if h.file not in kit)
    return clean


def real_project(name: str, scratch: Path) -> Path:
    """A fresh copy of a real project (its own venv), after ``flaskprod init``."""
    _tests_on_path()
    from real_projects import copy_project

    root: Path = copy_project(name, scratch)
    init = [str(Path(sys.executable).parent / "flaskprod"), "init", str(root)]
    if name == "flaskr":
        init.append("--add-deps")  # granian, as init's note says (tests/check)
    done = subprocess.run(init, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"flaskprod init {name} failed: {done.stderr.strip()}")
    return root


# -- report -------------------------------------------------------------------------------


def _percent(found: int, total: int) -> str:
    return f"{found}/{total} ({100 * found // total} %)" if total else "—"


def table(cases: list[Case], cleans: list[Clean], tool_versions: dict[str, str]) -> str:
    import flaskprod

    tools = [t for t in TOOLS if any(t in c.peers for c in cases)]
    by_layer: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_layer[case.layer].append(case)
    lines = [
        f"flaskprod {flaskprod.__version__}, "
        + ", ".join(f"{tool} {tool_versions.get(tool, '?')}" for tool in tools)
        + f". Produced by `{COMMAND}`.",
        "",
        "Recall: defects found / single-defect cases, per layer (a peer's count only "
        "where it reads a file of the layer).",
        "",
        "| layer | cases | flaskprod | " + " | ".join(tools) + " | any peer |",
        "|---|---|---|" + "---|" * len(tools) + "---|",
    ]
    for layer in sorted(by_layer, key=lambda name: (-len(by_layer[name]), name)):
        group = by_layer[layer]
        row = [layer, str(len(group)), _percent(sum(c.flaskprod for c in group), len(group))]
        for tool in tools:
            reading = [c for c in group if tool in c.peers_reading]
            found = sum(c.peers[tool] for c in reading)
            row.append(_percent(found, len(group)) if reading else "—")
        row.append(_percent(sum(any(c.peers.values()) for c in group), len(group)))
        lines.append("| " + " | ".join(row) + " |")
    total = len(cases)
    row = ["**all**", str(total), _percent(sum(c.flaskprod for c in cases), total)]
    row += [_percent(sum(c.peers.get(t, False) for c in cases), total) for t in tools]
    row.append(_percent(sum(any(c.peers.values()) for c in cases), total))
    lines.append("| " + " | ".join(row) + " |")
    if cleans:
        lines += _clean_tables(cleans, tools)
    lines += ["", "What counts as warning or above for each tool:", ""]
    lines += [f"- {tool}: {SERIOUS[tool]}" for tool in tools]
    return "\n".join(lines) + "\n"


def layer_of(path: str) -> str:
    """The layer a kit file belongs to, by its place in the kit."""
    name = path.rsplit("/", 1)[-1]
    for layer, marks in (
        ("k8s", ("k8s/",)),
        ("ci", (".github/",)),
        ("systemd", ("systemd/", ".service", ".timer")),
        ("nginx", ("nginx",)),
        ("compose", ("compose",)),
        ("gunicorn", ("gunicorn",)),
    ):
        if any(mark in path for mark in marks):
            return layer
    return "docker" if name.startswith("Dockerfile") else "project"


def _short(code: str) -> str:
    """A code without the unit and paths in it (systemd-analyze verify's messages)."""
    code = re.sub(r"^verify: \S+: ", "verify: ", code)
    return re.sub(r"/\S+", "…", code)


def _clean_tables(cleans: list[Clean], tools: list[str]) -> list[str]:
    columns = ["flaskprod", *tools]
    per_layer: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(columns, 0))
    codes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for clean in cleans:
        for path in clean.kit_files:  # every layer the kit has a file in, alarms or not
            per_layer[layer_of(path)]
        for tool in columns:
            for item in clean.on_kit.get(tool, []):
                code, _, path = item.rpartition(" ")
                per_layer[layer_of(path)][tool] += 1
                codes[tool][_short(code)] += 1
    lines = [
        "",
        "False alarms: findings at warning or above on the files the kit rendered, which "
        f"flaskprod calls clean, summed over {len(cleans)} projects "
        f"({', '.join(c.project for c in cleans)}), by layer:",
        "",
        "| layer | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for layer in sorted(per_layer):
        row = [str(per_layer[layer][tool]) for tool in columns]
        lines.append(f"| {layer} | " + " | ".join(row) + " |")
    total = [str(sum(per_layer[layer][tool] for layer in per_layer)) for tool in columns]
    lines.append("| **all** | " + " | ".join(total) + " |")
    lines += [
        "",
        "Per project: on the kit's files / on the project's own files (the latter hold "
        "real defects: not counted as false alarms).",
        "",
        "| project | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for clean in cleans:
        cells = [f"{len(clean.on_kit.get(t, []))} / {clean.on_own.get(t, 0)}" for t in columns]
        lines.append(f"| {clean.project} | " + " | ".join(cells) + " |")
    lines += ["", "What each tool reports on the kit's files (code: files):", ""]
    for tool in columns:
        if codes[tool]:
            shown = ", ".join(f"`{code}`: {n}" for code, n in sorted(codes[tool].items()))
            lines.append(f"- {tool}: {shown}")
    return lines


def rewrite(doc: Path, body: str, intro: str) -> None:
    replace_section(doc, HEADING, f"{HEADING}\n\n{intro}\n\n{body}")


INTRO = """The corpus is check's own rule fixtures (`tests/check/fixtures/<ID>/fail` and `pass`):
one defect per fail folder, labelled with its rule id and layer, its pass folder the same
project fixed. A tool finds a defect when it reports something (same file, same code of
its own) on the fail folder and not on the pass folder, so no table maps one tool's ids
to another's. flaskprod's recall here is 100 % by construction, since the fixtures were
written for its rules: the measure of interest is what the peers see of these defects,
not flaskprod's recall on defects it has never seen (issue #15's held-out corpus).

Reading it: each peer sees what is written wrong in the one format it parses (an image
running as root, a `latest` tag, an action at a tag, a unit without `User=`) and nothing
that takes two layers or the app (timeouts that disagree, a socket nginx cannot reach,
debug through the environment, a secret with a literal fallback): every app, gunicorn,
granian, compose and dependency case, and most nginx and systemd ones, are beyond them.
On the kits flaskprod calls clean, their alarms are policies flaskprod does not hold
(checkov: the default namespace, no NetworkPolicy, images by digest, imagePullPolicy
Always, secrets as files; trivy: images from an allow-listed registry) and
`systemd-analyze verify` refusing binaries that exist only on the server. One was a fair
point the K8S rules did not make: checkov's CKV_K8S_8 on the RQ worker's Deployment (no
liveness probe: a hung worker is never restarted); K8S009 makes it since, and the kit's
RQ and Celery worker Deployments have an exec liveness probe."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="rule ids, comma-separated (default: every fixture)")
    parser.add_argument("--no-real-projects", action="store_true")
    parser.add_argument("--no-peers", action="store_true", help="flaskprod alone")
    parser.add_argument("--write-doc", action="store_true", help=f"rewrite {DOC.name}")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    _tests_on_path()
    from check_helpers import FIXTURES

    rule_ids = args.cases.split(",") if args.cases else sorted(p.name for p in FIXTURES.iterdir())
    venv = None if args.no_peers else ensure_peers()
    tool_versions = versions(venv) if venv is not None else {}
    with tempfile.TemporaryDirectory(prefix="check-vs-peers-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        cases = score_cases(corpus, rule_ids, venv)
        cleans = [score_clean(REPO / "examples" / "shop", "shop", venv)]
        if not args.no_real_projects:
            for name in REAL_PROJECTS:
                root = real_project(name, Path(tmp) / "real")
                cleans.append(score_clean(root, name, venv))
    body = table(cases, cleans, tool_versions)
    print(body)
    if args.json:
        results: dict[str, Any] = {
            "versions": tool_versions,
            "cases": [asdict(c) for c in cases],
            "clean": [asdict(c) for c in cleans],
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.write_doc:
        rewrite(DOC, body, INTRO)


if __name__ == "__main__":
    main()
