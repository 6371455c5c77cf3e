"""``flaskprod init`` and ``flaskprod render``: detect → spec → render → write.

``init`` describes the deployment once (``flaskprod.toml``, every setting visible) and
renders the kit into ``deploy/``; ``render`` re-renders it after the spec changed, and
``render --check`` reports drift without writing. Both check every file before writing
any, so a refusal leaves the project exactly as it was.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flaskprod.errors import ProjectError, Refused, SpecError
from flaskprod.kit.write import Change, Plan, plan_kit, refuse_conflicts, write_atomic, write_plan
from flaskprod.spec.detect import Detection, ImportFailed, ProjectInfo
from flaskprod.spec.interpreter import ProjectPython, require_supported, resolve_python

# The spec model (pydantic) and the renderer (jinja2) are imported inside the commands,
# after the app's import has started in its child process: the two then overlap.
if TYPE_CHECKING:
    from flaskprod.spec.model import Spec
    from flaskprod.spec.routes import HealthRoutes

_HEAVY = (
    "flaskprod.spec.load",
    "flaskprod.spec.write",
    "flaskprod.kit.render",
    "flaskprod.kit.artifacts",
)


def _detect(
    root: Path,
    target: str | None,
    *,
    introspect: bool,
    python: str | ProjectPython | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[ProjectInfo, ProjectPython | None]:
    """Detect the project with its own interpreter (--python, else resolve_python's
    order, said on stderr), loading flaskprod's heavier modules while the app imports.
    ``environ``: what the import gets besides this process's environment (--env-file)."""
    if isinstance(python, ProjectPython):
        found: ProjectPython | None = python
    else:
        found = resolve_python(root, python) if introspect else None
    if found is not None:
        require_supported(found, root)
    detection = Detection(
        root,
        target,
        introspect=introspect,
        python=found.executable if found else None,
        environ=environ,
    )
    try:
        for module in _HEAVY:
            importlib.import_module(module)
        return detection.result(), found
    finally:
        detection.cancel()


def _detect_or_read(
    root: Path,
    target: str | None,
    *,
    introspect: bool,
    python: str | None,
    environ: Mapping[str, str],
) -> tuple[ProjectInfo, ProjectPython | None, str | None]:
    """init's detection: when the app's own code fails at import even with stand-ins
    for its settings, what the sources say (as --no-import) and a note for the user."""
    found = resolve_python(root, python) if introspect else None
    try:
        project, _ = _detect(root, target, introspect=introspect, python=found, environ=environ)
        return project, found, None
    except ImportFailed as failed:
        project, _ = _detect(root, target, introspect=False)
        what = (
            f"give it {failed.variable}=... in the environment or --env-file FILE"
            if failed.variable
            else "fix it, or give it the variables it needs with --env-file FILE"
        )
        note = (
            f"the app did not import ({failed.error}): detected from its sources only "
            f"(routes and health unknown); {what}, then run 'flaskprod init --force'"
        )
        return project, found, note


def build_spec(
    project: ProjectInfo,
    *,
    name: str | None = None,
    domains: Sequence[str] = (),
    server: str | None = None,
) -> Spec:
    """The spec ``init`` writes: the model's defaults, plus what detection found."""
    from flaskprod.spec.load import spec_from_data
    from flaskprod.spec.model import SPEC_FILENAME, format_size
    from flaskprod.spec.repository import head_revision
    from flaskprod.spec.scanned import scanned_sections

    paths: dict[str, Any] = {"static_url": project.static_url}
    if project.static_dir and not Path(project.static_dir).is_absolute():
        paths["static_dir"] = project.static_dir
    http: dict[str, Any] = {**_health(project)}
    if project.max_content_length:
        http["max_body"] = format_size(project.max_content_length)
    if project.login_path:
        http["login_path"] = project.login_path
    data: dict[str, Any] = {
        "app": {"target": project.target, "name": name or project.name},
        "paths": paths,
        "http": http,
        "redis": {"enabled": project.uses_redis},
    }
    for section, values in scanned_sections(project).items():  # settings, build, Python
        data.setdefault(section, {}).update(values)
    if domains:
        data["app"]["domains"] = list(domains)
    if server:
        data["server"] = {"kind": server}
    elif project.server is not None:  # what the project's launchers already run
        data["server"] = {"kind": project.server.kind, **project.server.settings}
    if project.database is not None:
        data["database"] = {"engine": project.database.engine, "driver": project.database.driver}
    revision = head_revision(Path(project.root))
    if revision is not None:
        # The image CI builds for this commit (github.sha), not "latest": a moving tag
        # that Kubernetes cannot roll back to, and that check's K8S008 reports.
        data["container"] = {"tag": revision}
    # Options and detection feed the same validation as the file.
    return spec_from_data(data, f"{SPEC_FILENAME} (from init's options and detection)")


def _health(project: ProjectInfo) -> dict[str, Any]:
    """The app's own health routes when its URL map has them; else the kit's entry
    module answers them (also when the app was not imported, unless it uses flaskprod,
    whose Production adds the default ones)."""
    found = project.health_routes
    if found is not None:
        return {"health_path": found.health_path, "ready_path": found.ready_path}
    if not project.imported and project.uses_flaskprod:
        return {}
    return {"health_source": "kit"}


def render_files(spec: Spec, project: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """The kit as text, and each file's mode (from its Artifact)."""
    from flaskprod.kit.artifacts import artifacts_for, kit_path
    from flaskprod.kit.render import render_kit

    files = render_kit(spec, project)
    modes = {kit_path(a.output, project): a.mode for a in artifacts_for(spec)}
    return files, modes


def plan_render(root: Path, spec: Spec, project: Mapping[str, Any]) -> Plan:
    """A fresh render compared with the disk: what ``render`` writes, what ``render
    --check`` and ``check``'s KIT001 report as drift (``Plan.drift``)."""
    files, modes = render_files(spec, project)
    return plan_kit(root, files, modes)


def verify_files(spec: Spec, files: Mapping[str, str]) -> str | None:
    """Refuse a kit nginx would refuse (``nginx -t``), before anything is written;
    a note when this machine has no nginx to test it with."""
    from flaskprod.kit.verify import nginx_binary, nginx_refusal

    site = f"deploy/nginx/{spec.app.name}.conf"
    binary = nginx_binary()
    if binary is None:
        return f"nginx is not installed here: {site} was not tested (nginx -t)"
    refusal = nginx_refusal(files[site], spec, binary)
    if refusal:
        raise SpecError(
            f"{site}: nginx -t refuses the rendered site: {refusal}; nothing was written",
            hint="change the setting it names in flaskprod.toml, or report it as a bug",
        )
    return None


# -- output ------------------------------------------------------------------------------

_VERBS = {
    "create": "created",
    "update": "updated",
    "unchanged": "unchanged",
    "edited": "replaced",
    "foreign": "replaced",
    "remove": "removed",
    "orphan": "kept",
}
_STYLES = {
    "create": "green",
    "update": "yellow",
    "remove": "red",
    "edited": "red",
    "foreign": "red",
}


class _Printer:
    """Rich on a terminal, plain lines in pipes and CI (stable, greppable output)."""

    def __init__(self) -> None:
        self.rich = sys.stdout.isatty() and not os.environ.get("CI")
        if self.rich:
            from rich.console import Console

            self.console = Console(highlight=False)

    def line(self, text: str = "", style: str | None = None) -> None:
        if self.rich:
            self.console.print(text, style=style, markup=False)
        else:
            click.echo(text)

    def changes(self, changes: Iterable[Change]) -> None:
        for change in changes:
            verb = _VERBS[change.action]
            # "differs from a fresh render" is what "updated" means; other details inform.
            shown = change.detail and change.detail != "differs from a fresh render"
            detail = f"  ({change.detail})" if shown else ""
            text = f"  {verb:<10} {change.path}{detail}"
            self.line(text, _STYLES.get(change.action))


def _describe(project: ProjectInfo) -> str:
    facts = [f"static {project.static_url} -> {project.static_dir or '(none)'}"]
    if project.uses_sqlalchemy:
        facts.append("Flask-SQLAlchemy")
    if project.uses_migrate:
        state = "present" if project.migrations_present else "missing"
        facts.append(f"Flask-Migrate ({project.migrations_dir}/ {state})")
    if project.uses_redis:
        facts.append("Redis")
    if project.imported:
        facts.append(f"{len(project.routes)} routes")
        found = project.health_routes
        health = _health_routes_text(found) if found else "none"
        facts.append(f"health routes: {health}")
    facts.append(f"dependencies: {', '.join(project.dependency_files) or 'none declared'}")
    return "; ".join(facts)


def _health_routes_text(found: HealthRoutes) -> str:
    """One route serving both (an app with a liveness route only) is named once."""
    if found.health_path.rstrip("/") == found.ready_path.rstrip("/"):
        return f"{found.health_path} (liveness and readiness)"
    return f"{found.health_path}, {found.ready_path}"


def _notes(spec: Spec, project: ProjectInfo, *, deps_added: bool = False) -> list[str]:
    """Things worth fixing that are not errors."""
    notes = []
    if spec.http.health_source == "kit":
        notes.append(
            f"the app has no health routes: the kit's flaskprod_wsgi.py answers "
            f"{spec.http.health_path} and {spec.http.ready_path} (its database and Redis) in "
            "front of it, and the app server serves flaskprod_wsgi:application"
        )
    elif project.imported:
        missing = [
            p for p in (spec.http.health_path, spec.http.ready_path) if p not in project.routes
        ]
        if missing:
            notes.append(
                f"the app has no {' or '.join(missing)} route: wrap it with "
                "flaskprod.Production(app), or point http.health_path / http.ready_path at "
                "routes it has"
            )
    if project.static_dir is None:
        notes.append(
            f"the app has no static folder: nginx will serve {spec.paths.static_url} from "
            f"'{spec.paths.static_dir}', which does not exist yet (set paths.static_dir)"
        )
    if not project.dependency_files:
        notes.append("no requirements*.txt or pyproject.toml: the image cannot install deps")
    # (no dependency file at all: the note below says so, once)
    if project.server is not None and project.dependency_files and not deps_added:
        notes += filter(None, [_server_note(spec, project)])
    database = project.database
    if database is not None and database.note and not (deps_added and database.missing):
        notes.append(database.note)
    if project.uses_migrate and not project.migrations_present:
        notes.append(
            f"Flask-Migrate is used but {project.migrations_dir}/ is missing: flask db init"
        )
    from flaskprod.spec.scanned import scanned_notes

    return notes + scanned_notes(project)


def _server_note(spec: Spec, project: ProjectInfo) -> str | None:
    from flaskprod.spec.server_choice import missing_note

    assert project.server is not None
    missing = project.server.missing_for(spec.server.kind, spec.server.worker_class)
    return missing_note(missing, spec.server.kind, project.requirements_file)


def missing_packages(spec: Spec, project: ProjectInfo) -> list[str]:
    """Packages the stack needs that the project's requirements lack (for --add-deps)."""
    packages = []
    if project.server is not None:
        packages += project.server.missing_for(spec.server.kind, spec.server.worker_class)
    if project.database is not None and project.database.missing:
        packages.append(project.database.missing)
    return packages


def _root(path: Path) -> Path:
    root = path.resolve()
    if not root.is_dir():
        raise ProjectError(f"{path}: not a directory")
    return root


def _add_deps(root: Path, spec: Spec, project: ProjectInfo) -> tuple[list[str], str | None]:
    """--add-deps: the missing lines, appended to the requirements file, else to
    pyproject.toml's [project].dependencies (checked before anything is written, so a
    refusal leaves the project as it was); the lines and the file they went to."""
    from flaskprod.spec.pyproject_deps import add_dependencies
    from flaskprod.spec.stackdeps import PINNED, canonical, declared, missing_lines

    packages = missing_packages(spec, project)
    if not packages:
        return [], None
    if project.requirements_file is not None:
        lines = missing_lines(root, project.requirements_file, packages)
        if lines:
            path = root / project.requirements_file
            text = path.read_text(encoding="utf-8")
            separator = "\n" if text and not text.endswith("\n") else ""
            write_atomic(path, text + separator + "".join(f"{line}\n" for line in lines))
        return lines, project.requirements_file
    if "pyproject.toml" not in project.dependency_files:
        raise ProjectError(
            f"--add-deps: {root} has no requirements*.txt or pyproject.toml to add "
            f"{', '.join(packages)} to",
            hint="create requirements.txt with the project's dependencies first",
        )
    present = declared(root, ("pyproject.toml",))
    lines = [PINNED[package] for package in packages if canonical(package) not in present]
    if lines:
        path = root / "pyproject.toml"
        write_atomic(path, add_dependencies(path.read_text(encoding="utf-8"), lines))
    return lines, "pyproject.toml"


def _env_file(path: Path | None) -> dict[str, str]:
    """--env-file's variables (dotenv syntax, as check reads env files)."""
    if path is None:
        return {}
    from flaskprod.check.envsource import parse_env_file

    try:
        return parse_env_file(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ProjectError(
            f"{path}: cannot read: {error}", hint="pass a readable env file"
        ) from None


# -- commands ----------------------------------------------------------------------------

_PATH = click.argument(
    "path", default=".", type=click.Path(path_type=Path, file_okay=False, exists=False)
)
_PYTHON = click.option(
    "--python",
    metavar="PATH",
    help="The project's interpreter or venv that imports the app "
    "(default: $VIRTUAL_ENV, else .venv, venv or env in the project).",
)
_NO_IMPORT = click.option(
    "--no-import",
    is_flag=True,
    help="Detect from the source only; do not import the app (routes stay unknown).",
)


@click.command("init")
@_PATH
@click.option(
    "--app", "target", metavar="TARGET", help="module:app, module:create_app() or module."
)
@click.option("--name", help="Short name (system user, service, socket); default: the folder's.")
@click.option("--domain", "domains", multiple=True, help="A domain nginx serves (repeatable).")
@click.option(
    "--server",
    type=click.Choice(["gunicorn", "granian"]),
    help="The app server (server.kind); default: the spec's.",
)
@click.option("--force", is_flag=True, help="Overwrite flaskprod.toml and hand-edited files.")
@click.option(
    "--add-deps",
    is_flag=True,
    help="Append the pinned lines the stack needs (app server, database driver) to the "
    "project's requirements file (else pyproject.toml's [project].dependencies); nothing "
    "is installed.",
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    metavar="FILE",
    help="KEY=value lines (a .env) the app needs to be imported; given to the import "
    "only, written nowhere.",
)
@_NO_IMPORT
@_PYTHON
def init_command(
    path: Path,
    target: str | None,
    name: str | None,
    domains: tuple[str, ...],
    server: str | None,
    force: bool,
    no_import: bool,
    python: str | None = None,
    add_deps: bool = False,
    env_file: Path | None = None,
) -> None:
    """Detect the Flask app, write flaskprod.toml and render the kit into deploy/."""
    root = _root(path)
    spec_path = root / "flaskprod.toml"  # SPEC_FILENAME, without loading pydantic yet
    if spec_path.exists() and not force:
        raise Refused(
            f"{spec_path}: already exists",
            hint="edit it and run 'flaskprod render', or pass --force to write a new one",
        )
    project, interpreter, fallback = _detect_or_read(
        root, target, introspect=not no_import, python=python, environ=_env_file(env_file)
    )
    from flaskprod.spec.load import parse_spec
    from flaskprod.spec.model import SPEC_FILENAME
    from flaskprod.spec.write import render_spec

    spec = build_spec(project, name=name, domains=domains, server=server)
    spec_text = render_spec(spec)
    if parse_spec(spec_text) != spec:  # the writer must round-trip; never ship a lie
        raise SpecError(f"{SPEC_FILENAME}: internal error: the written spec does not round-trip")
    files, modes = render_files(spec, project)
    untested = verify_files(spec, files)
    plan = plan_kit(root, files, modes)
    if not force:
        refuse_conflicts(plan)  # before the spec is written: all or nothing
    added, added_to = _add_deps(root, spec, project) if add_deps else ([], None)
    write_atomic(spec_path, spec_text)
    changes = write_plan(plan, force=force)

    out = _Printer()
    out.line(f"Detected {project.target} in {project.app_file}: {_describe(project)}")
    if interpreter is not None:
        out.line(interpreter.describe())
    if project.stand_ins:
        out.line(
            f"import: stand-in values for {', '.join(project.stand_ins)} (read at import, "
            "not set here; the import ran offline)"
        )
    if project.server is not None and not server:
        out.line(project.server.describe())
    if spec.database.server_engine:
        out.line(
            f"database: {spec.database.label} through {spec.database.driver} (database.driver)"
        )
    out.line(f"Wrote {SPEC_FILENAME} (every setting, with what it does)")
    out.line(f"Rendered the kit ({len(files)} files):")
    out.changes(changes)
    if added:
        out.line(f"Added to {added_to} (not installed): {', '.join(added)}")
    notes = [fallback, *_notes(spec, project, deps_added=bool(added)), untested]
    for note in filter(None, notes):
        out.line(f"note: {note}", "yellow")
    out.line(f"Next: review {SPEC_FILENAME}; after each change run 'flaskprod render'.")


@click.command("render")
@_PATH
@click.option("--force", is_flag=True, help="Overwrite files edited by hand.")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when files on disk drifted.")
@_NO_IMPORT
@_PYTHON
@click.pass_context
def render_command(
    ctx: click.Context,
    path: Path,
    force: bool,
    check: bool,
    no_import: bool,
    python: str | None = None,
) -> None:
    """Re-render the kit from flaskprod.toml (after the spec changed)."""
    from flaskprod.spec.load import load_spec
    from flaskprod.spec.model import SPEC_FILENAME

    root = _root(path)
    spec = load_spec(root / SPEC_FILENAME)
    project, _ = _detect(root, spec.app.target, introspect=not no_import, python=python)
    plan = plan_render(root, spec, project)
    files = plan.files
    out = _Printer()
    if check:
        drift = plan.drift
        if not drift:
            out.line(f"The kit is up to date with {SPEC_FILENAME} ({len(files)} files).")
            return
        out.line(f"{len(drift)} file(s) differ from a fresh render of {SPEC_FILENAME}:")
        for change in drift:
            out.line(f"  {change.path}: {change.reason}", "red")
        if any(change.action in {"edited", "foreign"} for change in drift):
            out.line("Run 'flaskprod render' to update them (hand-edited files need --force:")
            out.line(f"move those edits into {SPEC_FILENAME} first).")
        else:
            out.line("Run 'flaskprod render' to update them.")
        ctx.exit(1)
    untested = verify_files(spec, files)
    changes = write_plan(plan, force=force)
    written = [change for change in changes if change.action != "unchanged"]
    out.line(
        f"Rendered the kit from {SPEC_FILENAME}: {len(written)} of {len(files)} files changed."
    )
    out.changes(written)
    if untested:
        out.line(f"note: {untested}", "yellow")
