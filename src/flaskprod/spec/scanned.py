"""What the project scans (settings, build, templates) put into the spec ``init`` writes,
and the notes that say why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flaskprod.errors import ProjectError, UserError
from flaskprod.spec.buildinfo import BuildInfo, python_image
from flaskprod.spec.csp_scan import derive_csp
from flaskprod.spec.detect import ProjectInfo
from flaskprod.spec.interpreter import resolve_python
from flaskprod.spec.process_scan import ProcessScan
from flaskprod.spec.processes import QUEUE_KINDS
from flaskprod.spec.settings_scan import AppSettings


def scanned_sections(project: ProjectInfo) -> dict[str, dict[str, Any]]:
    """Spec sections (partial) from the scans of ``project``."""
    sections: dict[str, dict[str, Any]] = {
        "app": {},
        "paths": {},
        "deploy": {},
        "container": {},
        "redis": {},
        "http": {},
        "processes": {},
    }
    settings, build = project.settings, project.buildinfo
    if settings is not None:
        sections["app"]["settings"] = dict(settings.settings)
        if settings.media_env:
            sections["paths"]["media_env"] = list(settings.media_env)
        if settings.media_from:
            _, folder, tail = settings.media_from
            sections["paths"]["media_dir"] = folder + tail
    if build is not None:
        if build.build:
            sections["app"]["build"] = list(build.build)
        if build.fingerprinted:
            sections["paths"]["static_fingerprinted"] = True
        if build.python_version:
            image = python_image(build.python_version)
            if image is None:
                raise ProjectError(
                    f"{build.python_source}: Python {build.python_version}, for which the kit "
                    "has no image (3.9 to 3.13)",
                    hint="move the project to a supported Python, or say which one in "
                    ".python-version",
                )
            sections["deploy"]["python_version"] = build.python_version
            sections["container"]["python_image"] = image
        if build.queue:
            sections["redis"]["maxmemory_policy"] = "noeviction"
    scan = project.processes
    if scan is not None:
        for process in scan.processes:
            sections["processes"][process.name] = process.section()
        if any(process.kind in QUEUE_KINDS for process in scan.processes):
            sections["redis"]["maxmemory_policy"] = "noeviction"
    loads = project.template_loads
    if loads is not None and loads.files:
        csp, report_only, _ = derive_csp(loads)
        sections["http"]["csp"] = csp
        if report_only:
            sections["http"]["csp_report_only"] = True
    return {name: values for name, values in sections.items() if values}


def scanned_notes(project: ProjectInfo) -> list[str]:
    notes: list[str] = []
    if project.settings is not None:
        notes += _settings_notes(project.settings)
    if project.buildinfo is not None:
        notes += _build_notes(project.root, project.buildinfo)
    if project.processes is not None:
        queue_noted = bool(project.buildinfo and project.buildinfo.queue)
        notes += _process_notes(project.processes, queue_noted=queue_noted)
    loads = project.template_loads
    if loads is not None and loads.files:
        csp, _, why = derive_csp(loads)
        if csp != "default-src 'self'":
            notes.append(f"CSP from what the {loads.files} template(s) load: {csp}")
        if why:
            notes.append(f"CSP: {why}")
    return notes


def _settings_notes(settings: AppSettings) -> list[str]:
    notes = []
    if settings.settings:
        notes.append(
            f"the app reads {len(settings.settings)} setting(s) of its own "
            f"({', '.join(settings.settings)}; from {', '.join(settings.sources)}): "
            "app.settings carries them into deploy/.env.example, compose and Kubernetes; "
            "fill them in there"
        )
    if settings.media_env:
        notes.append(
            f"uploads: the app reads {', '.join(settings.media_env)}; the kit sets "
            "it to paths.media_dir everywhere"
        )
    if settings.media_from:
        variable, folder, tail = settings.media_from
        notes.append(
            f"uploads: the app writes them to ${variable}{tail}: {variable} is set to "
            f"{folder} and paths.media_dir to {folder}{tail}"
        )
    for where in settings.media_fixed:
        notes.append(
            f"uploads: the app fixes its folder in the code, {where}: on a server the code "
            "is read-only; read it from the environment (os.environ.get(...)) and add the "
            "name to paths.media_env, which the kit sets to paths.media_dir"
        )
    if settings.prefixed_env:
        notes.append(
            f"the app also reads every {settings.prefixed_env}_* variable "
            "(app.config.from_prefixed_env()): add the ones it needs to app.settings"
        )
    return notes


def _build_notes(root: Path, build: BuildInfo) -> list[str]:
    notes = []
    if build.python_version:
        here = _project_python_version(root)
        if here and here != build.python_version:
            notes.append(
                f"the image runs Python {build.python_version} ({build.python_source}), "
                f"the project's Python here is {here}: test on {build.python_version} too"
            )
    if build.lock:
        notes.append(f"the image installs the locked versions of {build.lock}.lock")
    if build.build:
        notes.append(f"build steps, run in the image: {'; '.join(build.build)} (app.build)")
    if build.queue:
        notes.append(
            f"Redis holds {build.queue}'s job queue: redis.maxmemory_policy = 'noeviction' "
            "(an evicting policy would silently drop queued jobs)"
        )
    return notes


def _process_notes(scan: ProcessScan, *, queue_noted: bool) -> list[str]:
    notes = [
        f"process {process.name}: {process.command} ({process.kind}, from {process.where})"
        + (f", on schedule '{process.schedule}'" if process.schedule else "")
        + ": rendered as its own unit, compose service, Kubernetes "
        + ("CronJob" if process.schedule else "Deployment")
        + " and Procfile line; 'flaskprod up' runs it"
        for process in scan.processes
    ]
    if any(process.kind in QUEUE_KINDS for process in scan.processes):
        kept = "" if queue_noted else "redis.maxmemory_policy = 'noeviction', and "
        notes.append(
            f"a queue keeps its jobs in Redis: {kept}compose's and up's Redis write them "
            "to disk (appendonly)"
        )
    if scan.web_scheduler:
        notes.append(
            f"{scan.web_scheduler} starts an APScheduler inside the app: every web worker "
            "runs each job (check SCH001); move the jobs to [processes] with a schedule"
        )
    return notes


def _project_python_version(root: Path) -> str | None:
    """The minor version of the project's interpreter (spec/interpreter), if it runs."""
    try:
        python = resolve_python(root)
    except UserError:  # a broken venv is reported where it is used, not in a note
        return None
    return f"{python.version[0]}.{python.version[1]}"
