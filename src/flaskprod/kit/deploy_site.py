"""The files of a release-slot deploy ('flaskprod deploy') that the plain kit renders
differently: the nginx site whose upstream is an include naming the live slot's
socket, and that include's one line.

The plain kit's site (``deploy/nginx/{name}.conf``) keeps its upstream inline, as
``up`` and ``check`` read it. On a deploy host the app server of each release runs in
a slot (``{name}@a``, ``{name}@b``: the kit's ``deploy/systemd/{name}@.service``), and
switching releases is rewriting :func:`upstream_path` with :func:`upstream_line` and
reloading nginx. Static files come from ``{root}/current``, the live release.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flaskprod.kit.artifacts import build_context, process_artifacts, process_contexts
from flaskprod.kit.render import Artifact, render_one
from flaskprod.spec.model import Spec
from flaskprod.spec.servers import slot_socket

SLOTS = ("a", "b")


def upstream_path(spec: Spec) -> str:
    """The include holding the live slot's server line (``/etc/nginx/{name}-upstream.conf``)."""
    return f"/etc/nginx/{spec.app.name}-upstream.conf"


def current_link(spec: Spec) -> str:
    """The symlink to the live release's folder (nginx serves static files through it)."""
    return f"{spec.app.install_dir.rstrip('/')}/current"


def upstream_line(spec: Spec, slot: str) -> str:
    """The include's text: the upstream server of ``slot``."""
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}")
    return (
        f"# Written by flaskprod deploy: the live release slot is {slot}.\n"
        f"server unix:{slot_socket(spec, slot)} fail_timeout=0;\n"
    )


def deploy_site(spec: Spec, project: Mapping[str, Any] | None = None) -> str:
    """The nginx site as installed by ``deploy`` (``/etc/nginx/sites-available/{name}.conf``)."""
    context = build_context(spec, project or {})
    context["upstream_include"] = upstream_path(spec)
    context["upstream_server"] = f"the live slot's socket, {upstream_path(spec)}"
    context["static_dir"] = f"{current_link(spec)}/{spec.paths.static_dir}".rstrip("/")
    artifact = Artifact("nginx_site.conf.j2", f"/etc/nginx/sites-available/{spec.app.name}.conf")
    return render_one(artifact, context)


def deploy_process_units(spec: Spec, project: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The units of the spec's processes ([processes.<name>]) as a deploy host runs
    them: from the live release (``{root}/current``, its venv), so that a release's
    workers run its code. File name -> text, for /etc/systemd/system."""
    context = build_context(spec, project or {})
    current = current_link(spec)
    context["root"] = current
    # the queue's Redis as the plain kit has it (its units name ${REDIS_URL} or not)
    redis = any("${REDIS_URL}" in p["systemd"] for p in context["processes"].values())
    context["processes"] = process_contexts(spec, venv=f"{current}/.venv", redis=redis)
    units: dict[str, str] = {}
    for artifact in process_artifacts(spec):
        if artifact.output.startswith("deploy/systemd/"):
            units[artifact.output.rpartition("/")[2]] = render_one(artifact, context)
    return units
