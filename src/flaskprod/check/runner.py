"""Run the checks: build the context once, run every selected rule, silence, summarise.

A rule that raises never takes the run down: it becomes an FP000 finding in its own
layer and the other rules' results stand. Rules whose preconditions (``requires=``)
are not met are not called, so one root cause gives one finding. The layers ``live``
and ``host`` plug in as more rules in the registry; a run chooses its layers.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flaskprod.check import rules as rules_package
from flaskprod.check import silence
from flaskprod.check.app_loader import find_target, load_app
from flaskprod.check.context import AppPending, Context
from flaskprod.check.envsource import production_env
from flaskprod.check.internal import INTERNAL, internal_finding
from flaskprod.check.model import LAYERS, REGISTRY, Finding, Rule, is_id_prefix
from flaskprod.errors import EnvironmentProblem, ProjectError, SpecError, UserError
from flaskprod.launch.discover import discover
from flaskprod.spec import load as spec_load
from flaskprod.spec.interpreter import resolve_python
from flaskprod.spec.model import SPEC_FILENAME, Spec

#: Layers a file-level ``flaskprod check`` runs; ``live`` and ``host`` need a URL or
#: the server itself and are run by their own options.
FILE_LAYERS = tuple(layer for layer in LAYERS if layer not in ("live", "host"))


@dataclass
class CheckOptions:
    root: Path
    env_file: Path | None = None
    no_import: bool = False
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    layers: tuple[str, ...] = FILE_LAYERS
    options: dict[str, Any] = field(default_factory=dict)
    #: --python: the project's interpreter (default: resolve_python's order).
    python: str | None = None


@dataclass
class CheckResult:
    findings: list[Finding]
    rules_run: list[str]
    #: Rules not called because a precondition failed: id -> the precondition.
    rules_skipped: dict[str, str]
    context: Context
    duration: float


def load_rules() -> list[Finding]:
    """Import every module of flaskprod.check.rules (each registers its rules).
    A module that fails to import is reported, not fatal."""
    problems = []
    for module in pkgutil.iter_modules(rules_package.__path__):
        name = f"{rules_package.__name__}.{module.name}"
        try:
            importlib.import_module(name)
        except Exception as error:
            problems.append(
                internal_finding(
                    "FP000",
                    f"rule module {name} failed to load: {type(error).__name__}: {error}",
                    layer=module.name if module.name in LAYERS else "project",
                )
            )
    return problems


def known_ids() -> set[str]:
    load_rules()
    return {r.id for r in REGISTRY} | set(INTERNAL)


def parse_ids(values: Iterable[str], option: str) -> tuple[str, ...]:
    """``NGX004,APP`` -> ids and prefixes; anything matching nothing is a usage error."""
    values = tuple(values)
    if not any(part.strip() for value in values for part in value.split(",")):
        return ()  # nothing to look up: the rules load later, once the app's import runs
    known = known_ids()
    parsed: list[str] = []
    for value in values:
        for part in value.split(","):
            item = part.strip().upper()
            if not item:
                continue
            prefix = is_id_prefix(item)
            if item not in known and not any(prefix and k.startswith(item) for k in known):
                raise UserError(
                    f"{option}: unknown check id {item!r}",
                    hint="'flaskprod check --list' shows every id",
                )
            parsed.append(item)
    return tuple(parsed)


def _matches(rule_id: str, patterns: tuple[str, ...]) -> bool:
    return any(rule_id == p or (is_id_prefix(p) and rule_id.startswith(p)) for p in patterns)


def _identity(finding: Finding) -> tuple[str, str, str | None, int | None, str]:
    return finding.id, finding.level.name, finding.file, finding.line, finding.message


def load_spec(root: Path) -> Spec | None:
    """The project's spec (flaskprod.toml), or None when it has none."""
    path = root / SPEC_FILENAME
    return spec_load.load_spec(path) if path.is_file() else None


def _pyproject_ignores(root: Path) -> dict[str, str]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError):
        return {}  # PRJ rules report a broken pyproject; silencing just finds nothing
    ignore = data.get("tool", {}).get("flaskprod", {}).get("ignore", {})
    if not isinstance(ignore, dict):
        # named as the spec's errors name flaskprod.toml: the file, then the key
        raise SpecError(
            f"pyproject.toml: tool.flaskprod.ignore: must be a table (got {ignore!r})",
            hint='ignore = {NGX004 = "TLS ends at the load balancer"}: each id with its reason',
        )
    return {str(k): str(v) for k, v in ignore.items()}


def build_context(options: CheckOptions, on_start: Callable[[], None] | None = None) -> Context:
    """The project as the rules see it. Every error in the user's input (the folder,
    --env-file, flaskprod.toml, pyproject's ignore table) is raised before ``on_start``
    is called, so a command's progress line never comes before its one-line error."""
    root = options.root
    if not root.exists():
        raise ProjectError(f"{root}: no such folder")
    if not root.is_dir():
        raise ProjectError(f"{root}: not a folder (give the project's root)")
    try:
        next(root.iterdir(), None)
    except OSError as error:
        raise ProjectError(f"{root}: cannot be read ({error.strerror})") from None
    if options.env_file is not None and not options.env_file.is_file():
        raise UserError(f"--env-file {options.env_file}: no such file")
    root = root.resolve()
    spec = load_spec(root)
    ctx = Context(root=root, spec=spec, files=discover(root), options=dict(options.options))
    ctx.cache["pyproject_ignores"] = _pyproject_ignores(root)
    if not options.no_import and set(options.layers) & set(FILE_LAYERS):
        try:
            ctx.cache["python"] = resolve_python(root, options.python)
        except EnvironmentProblem as error:
            if options.python:  # a bad --python is this command's input: one line, exit 3
                raise
            ctx.cache["python_error"] = str(error)  # the project's venv: APP000 says why
    if on_start is not None:
        on_start()
    if not set(options.layers) & set(FILE_LAYERS):
        return ctx  # --url/--host alone: the project's env and app are not theirs to judge
    source = production_env(ctx, options.env_file)
    ctx.env, ctx.env_source, ctx.env_known = source.env, source.description, source.known
    ctx.cache["env_command"] = (source.command, source.command_file)
    ctx.cache["no_import"] = options.no_import
    if options.no_import:
        ctx.cache["app_target"] = find_target(ctx, source)
    else:
        load_app(ctx, source)
    return ctx


def _precondition_failed(rule: Rule, ctx: Context) -> str | None:
    if "app" in rule.requires and ctx.app is None:
        return "app"
    if "spec" in rule.requires and ctx.spec is None:
        return "spec"
    if rule.roles:
        from flaskprod.check.host.roles import host_roles  # host rules only

        if not rule.roles & host_roles(ctx).roles:
            return "role"
    return None


def select_rules(options: CheckOptions) -> list[Rule]:
    return [
        r
        for r in REGISTRY
        if r.layer in options.layers
        and (not options.select or _matches(r.id, options.select))
        and not _matches(r.id, options.ignore)
    ]


def run_rule(rule: Rule, ctx: Context) -> list[Finding]:
    try:
        return list(rule.function(ctx))
    except Exception as error:
        return [
            internal_finding(
                "FP000",
                f"rule {rule.id} crashed: {type(error).__name__}: {error}",
                layer=rule.layer,
            )
        ]


def _run_selected(selected: list[Rule], ctx: Context) -> dict[str, list[Finding] | str]:
    """Each rule's findings, or the precondition it failed, by rule id.

    While the app is imported in the background, a first pass runs every rule that
    does not need it; a rule that reads an app field meanwhile stops (AppPending) and
    runs in the second pass, once the import is done. Rules only read the context, so
    a rule run again finds what it would have found once."""
    outcomes: dict[str, list[Finding] | str] = {}

    def run(chosen: Rule) -> None:
        missing = _precondition_failed(chosen, ctx)
        outcomes[chosen.id] = missing if missing else run_rule(chosen, ctx)

    later = selected
    if ctx.app_pending is not None:
        later = []
        ctx.defer_app = True
        try:
            for chosen in selected:
                if "app" in chosen.requires:
                    later.append(chosen)
                    continue
                try:
                    run(chosen)
                except AppPending:
                    later.append(chosen)
        finally:
            ctx.defer_app = False
        ctx.settle_app()
    for chosen in later:
        run(chosen)
    return outcomes


def run_checks(
    options: CheckOptions,
    ctx: Context | None = None,
    on_start: Callable[[], None] | None = None,
) -> CheckResult:
    """Every selected rule over the project; ``on_start`` (progress output) runs once
    the input is known to be usable (see :func:`build_context`)."""
    started = time.perf_counter()
    # The context first: it starts the app's import in the background (load_app), and
    # loading the rules is work done meanwhile.
    ctx = ctx or build_context(options, on_start)
    findings = load_rules()
    selected = select_rules(options)
    outcomes = _run_selected(selected, ctx)
    rules_run: list[str] = []
    skipped: dict[str, str] = {}
    for chosen in selected:  # in the registry's order, whichever pass ran the rule
        outcome = outcomes[chosen.id]
        if isinstance(outcome, str):
            skipped[chosen.id] = outcome
            continue
        rules_run.append(chosen.id)
        findings.extend(outcome)
    # One setting met from several launchers (the kit's systemd unit, Procfile,
    # Dockerfile and compose all read deploy/gunicorn.conf.py) is one finding, not four.
    findings = list({_identity(f): f for f in findings}.values())
    configured = silence.config_silences(ctx.spec.ignore if ctx.spec else {}, SPEC_FILENAME)
    pyproject = ctx.cache.get("pyproject_ignores")
    if pyproject is None:  # a context built by the caller
        pyproject = _pyproject_ignores(ctx.root)
    configured += silence.config_silences(pyproject, "pyproject.toml")
    known = {r.id for r in REGISTRY} | set(INTERNAL)
    for entry in configured if not options.select or _matches("FP002", options.select) else []:
        unknown = [
            i for i in entry.ids if i not in known and not any(k.startswith(i) for k in known)
        ]
        if unknown:
            findings.append(
                internal_finding(
                    "FP002",
                    f"{entry.where} silences {', '.join(unknown)}, which is no check id",
                    file=entry.where,
                )
            )
    findings = silence.apply(ctx, findings, configured)
    findings = [f for f in findings if not _matches(f.id, options.ignore)]
    findings.sort(key=_order)
    return CheckResult(findings, rules_run, skipped, ctx, time.perf_counter() - started)


def _order(finding: Finding) -> tuple[int, int, str, str, int]:
    layer = LAYERS.index(finding.layer) if finding.layer in LAYERS else len(LAYERS)
    return (layer, -int(finding.level), finding.id, finding.file or "", finding.line or 0)
