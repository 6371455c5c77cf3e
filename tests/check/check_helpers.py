"""Running the checker on the rule fixtures: ``tests/check/fixtures/<ID>/{fail,pass}/``.

A fixture folder is a small project. It is checked from a copy in a temporary folder,
outside this repository (whose git and .gitignore would otherwise judge it). A
``GIT_TRACK`` file in it lists paths to track: the copy is then made a git repository
with those files added (fixture folders cannot hold a ``.git`` of their own).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from flaskprod.check import app_loader
from flaskprod.check.model import REGISTRY, Finding
from flaskprod.check.runner import CheckOptions, load_rules, run_checks

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: The layers whose fixtures this suite runs (the deployment-file layers run theirs in
#: tests/check/rules/).
OWN_PREFIXES = ("APP", "PRJ", "DEP", "MDB", "KIT", "GHA", "K8S")


def prepare(source: Path, scratch: Path) -> Path:
    """A copy of the fixture to check, git-initialised when it says so, with the kit
    rendered into it when it has a ``RENDER_KIT`` file (see :func:`render_kit_into`)."""
    target = scratch / source.parent.name / source.name
    shutil.copytree(source, target)
    if (target / "RENDER_KIT").is_file():
        render_kit_into(target)
    track = source / "GIT_TRACK"
    if not track.is_file():
        return target
    git_repo(target, [line.strip() for line in track.read_text().splitlines() if line.strip()])
    return target


def git_repo(root: Path, track: Sequence[str] = ()) -> Path:
    """Make ``root`` a git work tree, with ``track`` added (past any .gitignore)."""
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    if track:
        subprocess.run([*git, "add", "-f", "--", *track], check=True)
    return root


def render_kit_into(root: Path) -> None:
    """Render the kit from the copy's flaskprod.toml as ``flaskprod render --no-import``
    does (rendered at test time, so a template change never leaves a stale fixture),
    then apply the edits ``RENDER_KIT`` lists, one a line: ``append PATH TEXT`` (a
    hand edit), ``delete PATH``, ``chmod PATH MODE`` (octal)."""
    from flaskprod.kit.commands import plan_render
    from flaskprod.kit.write import write_plan
    from flaskprod.spec.detect import detect_project
    from flaskprod.spec.load import load_spec

    instructions = (root / "RENDER_KIT").read_text().splitlines()
    (root / "RENDER_KIT").unlink()
    spec = load_spec(root / "flaskprod.toml")
    project = detect_project(root, spec.app.target, introspect=False)
    write_plan(plan_render(root, spec, project))
    for line in filter(None, (raw.strip() for raw in instructions)):
        verb, path, *rest = line.split(" ", 2)
        target = root / path
        if verb == "append":
            target.write_text(target.read_text() + rest[0] + "\n")
        elif verb == "delete":
            target.unlink()
        elif verb == "chmod":
            target.chmod(int(rest[0], 8))
        else:
            raise ValueError(f"RENDER_KIT: unknown edit {line!r}")


def needs_import(rule_id: str) -> bool:
    """Import the app only for rules that judge it (APP000 reports the import itself)."""
    load_rules()
    return rule_id in JUDGES_THE_APP or "app" in REGISTRY[rule_id].requires


#: Rules that read the imported app without requiring it (quiet, not "not judged",
#: when it is missing): APP000 reports the import itself, K8S001 compares probe paths
#: with the app's routes only in projects that have Kubernetes manifests.
JUDGES_THE_APP = frozenset({"APP000", "K8S001"})


class MemoProbe:
    """The real probe, run once per distinct input (the Python sources, the target and
    the environment): many fixtures share their app, and each import costs a
    subprocess."""

    def __init__(self) -> None:
        self.real = app_loader.probe
        self.results: dict[tuple[object, ...], app_loader.ProbeResult] = {}
        self.lock = threading.Lock()
        self.calls = 0

    def __call__(
        self, root: Path, target: str, env: dict[str, str], *args: object, **kw: object
    ) -> app_loader.ProbeResult:
        sources = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            sources.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
        key = (
            sources.hexdigest(),
            target,
            tuple(sorted(env.items())),
            args,
            tuple(sorted(kw.items())),
        )
        with self.lock:
            if key not in self.results:
                self.calls += 1
                self.results[key] = self.real(root, target, env, *args, **kw)  # type: ignore[arg-type]
            return self.results[key]


def check_fixture(rule_id: str, side: str, scratch: Path) -> list[Finding]:
    """The findings of one rule (and crashes) on one side of its fixture."""
    root = prepare(FIXTURES / rule_id / side, scratch)
    options = CheckOptions(root=root, select=(rule_id,), no_import=not needs_import(rule_id))
    return run_checks(options).findings


def own_cases() -> list[tuple[str, str]]:
    return [
        (folder.name, side)
        for folder in sorted(FIXTURES.iterdir())
        if folder.name.startswith(OWN_PREFIXES)
        for side in ("fail", "pass")
    ]
