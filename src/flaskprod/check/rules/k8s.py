"""Rules of the ``k8s`` layer: Kubernetes manifests (the kit's deploy/k8s/*.yaml and a
project's own), judged as the Kubernetes documentation describes the fields: probes,
resources, the security context, disruption budgets against replicas, the grace period
against the app's own shutdown, and the migration Job.

Omitted fields are judged on what Kubernetes uses in their place: a pod without
terminationGracePeriodSeconds gets 30 s; a container without a securityContext may run
as root, with privilege escalation allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from flaskprod.check.context import Context
from flaskprod.check.deployments import kit_health_paths
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers import cached, load_yaml
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.check.rules.docker import _health_paths, _route_matches
from flaskprod.launch.discover import source_files
from flaskprod.launch.shell import commands as shell_commands
from flaskprod.spec.processes import classify

_LAYER = "k8s"
#: Kubernetes' terminationGracePeriodSeconds when a pod spec sets none.
DEFAULT_GRACE = 30
#: gunicorn's graceful_timeout default (seconds).
GUNICORN_GRACEFUL = 30
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


@dataclass
class Manifest:
    """One Kubernetes object of a YAML file, with where it starts."""

    path: Path
    start: int  # line of the document's first line (1-based)
    lines: list[str]
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))

    @property
    def name(self) -> str:
        metadata = self.data.get("metadata")
        return str(metadata.get("name", "")) if isinstance(metadata, dict) else ""

    def line_of(self, needle: str, after: str | None = None) -> int:
        """The line of the first ``needle`` in this document (after ``after``'s line)."""
        begin = 0
        if after is not None:
            begin = next((i for i, line in enumerate(self.lines) if after in line), 0)
        for index in range(begin, len(self.lines)):
            if needle in self.lines[index]:
                return self.start + index
        return self.start

    @property
    def pod(self) -> dict[str, Any] | None:
        """The pod spec of a workload (CronJob: its job template's)."""
        spec = self.data.get("spec")
        if not isinstance(spec, dict) or self.kind not in _WORKLOADS:
            return None
        if self.kind == "Pod":
            return spec
        if self.kind == "CronJob":
            job = spec.get("jobTemplate", {})
            spec = job.get("spec", {}) if isinstance(job, dict) else {}
        template = spec.get("template") if isinstance(spec, dict) else None
        pod = template.get("spec") if isinstance(template, dict) else None
        return pod if isinstance(pod, dict) else None

    @property
    def containers(self) -> list[dict[str, Any]]:
        pod = self.pod or {}
        found = pod.get("containers")
        return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def manifests(ctx: Context) -> list[Manifest]:
    """Every Kubernetes object in the project's YAML files (apiVersion and kind)."""

    def read() -> list[Manifest]:
        found: list[Manifest] = []
        for path in source_files(ctx.root, (".yaml", ".yml"), limit=300):
            text = ctx.read(path)
            if "apiVersion" not in text or "kind" not in text:
                continue
            start = 1
            for chunk in re.split(r"(?m)^---[^\n]*\n", text):
                lines = chunk.splitlines()
                try:
                    data = load_yaml(chunk)
                except yaml.YAMLError:
                    data = None
                if isinstance(data, dict) and "apiVersion" in data and "kind" in data:
                    found.append(Manifest(path, start, lines, data))
                start += len(lines) + 1
        return found

    result: list[Manifest] = cached(ctx, "k8s.manifests", read)
    return result


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- K8S001: probes ---------------------------------------------------------------------


@rule(
    "K8S001",
    layer=_LAYER,
    level=Level.ERROR,
    title="A probe requests a path the app does not serve",
    help="Point livenessProbe, readinessProbe and startupProbe at routes the app answers "
    "with 200 without touching its dependencies (liveness) or after checking them "
    "(readiness): /health and /health/ready with flaskprod.Production(app).",
    example="livenessProbe:\n  httpGet:\n    path: /healthz   # the app serves /health",
    level_reason="error: a liveness probe on a missing route restarts every pod in a "
    "loop, a readiness probe on one keeps every pod out of the Service: the app is down.",
)
def probe_paths(ctx: Context) -> Iterator[Finding]:
    # Only the imported app shows what it serves; without it (or without manifests)
    # there is nothing to compare, and a project without Kubernetes is not "not judged".
    served = _health_paths(ctx) if ctx.app is not None else None
    if served is None or not manifests(ctx):
        return
    for manifest in manifests(ctx):
        own = kit_health_paths(ctx, manifest.path)
        for container in manifest.containers:
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind)
                get = probe.get("httpGet") if isinstance(probe, dict) else None
                path = get.get("path") if isinstance(get, dict) else None
                if not isinstance(path, str) or path in own:
                    continue  # the spec's own paths missing: APP011 says so, once
                if any(_route_matches(rule_path, path) for rule_path in served):
                    continue
                yield probe_paths.finding(
                    f"{manifest.kind} {manifest.name}: {kind} requests {path}, which the app "
                    "does not serve",
                    file=ctx.relative(manifest.path),
                    line=manifest.line_of(f"path: {path}", after=kind),
                )


# -- K8S002: resources ------------------------------------------------------------------


@rule(
    "K8S002",
    layer=_LAYER,
    level=Level.WARNING,
    title="A container without memory requests and limits",
    help="Give every container resources.requests (cpu, memory: what the scheduler "
    "reserves) and resources.limits.memory (where the kernel stops it): without a "
    "request the pod lands on a full node, without a limit one leaking worker takes the "
    "node's memory from its neighbours.",
    example="containers:\n  - name: web\n    image: ...   # no resources:",
    level_reason="warning: the node, not the app, pays (evictions, noisy neighbours); "
    "nothing is exposed.",
)
def no_resources(ctx: Context) -> Iterator[Finding]:
    for manifest in manifests(ctx):
        for container in manifest.containers:
            resources = container.get("resources")
            resources = resources if isinstance(resources, dict) else {}
            requests = resources.get("requests") or {}
            limits = resources.get("limits") or {}
            missing = [
                label
                for label, present in (
                    ("requests.memory", isinstance(requests, dict) and "memory" in requests),
                    ("requests.cpu", isinstance(requests, dict) and "cpu" in requests),
                    ("limits.memory", isinstance(limits, dict) and "memory" in limits),
                )
                if not present
            ]
            if missing:
                name = container.get("name", "?")
                yield no_resources.finding(
                    f"{manifest.kind} {manifest.name}, container {name}: no {', '.join(missing)}",
                    file=ctx.relative(manifest.path),
                    line=manifest.line_of(f"name: {name}", after="containers:"),
                )


# -- K8S003: securityContext --------------------------------------------------------------


@rule(
    "K8S003",
    layer=_LAYER,
    level=Level.WARNING,
    title="A container may run as root or gain privileges",
    help="Set runAsNonRoot: true (pod or container securityContext), and in each "
    "container allowPrivilegeEscalation: false and capabilities.drop: [ALL]; never "
    "privileged: true. The image's USER alone is not enforced by Kubernetes.",
    example="securityContext: {}   # runAsNonRoot unset: an image with USER root runs as root",
    level_reason="warning when these are only left to their defaults (root if the image "
    "says so, escalation allowed); error for privileged: true, which is root on the node.",
)
def security_context(ctx: Context) -> Iterator[Finding]:
    for manifest in manifests(ctx):
        pod = manifest.pod or {}
        pod_context = pod.get("securityContext")
        pod_context = pod_context if isinstance(pod_context, dict) else {}
        for container in manifest.containers:
            own = container.get("securityContext")
            own = own if isinstance(own, dict) else {}
            name = container.get("name", "?")
            file = ctx.relative(manifest.path)
            line = manifest.line_of(f"name: {name}", after="containers:")
            if own.get("privileged") is True:
                yield security_context.finding(
                    f"{manifest.kind} {manifest.name}, container {name}: privileged: true",
                    level=Level.ERROR,
                    file=file,
                    line=line,
                )
                continue
            problems = []
            if own.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
                problems.append("runAsNonRoot is not true")
            if own.get("allowPrivilegeEscalation") is not False:
                problems.append("allowPrivilegeEscalation is not false")
            capabilities = own.get("capabilities")
            dropped = capabilities.get("drop") if isinstance(capabilities, dict) else None
            if not (isinstance(dropped, list) and "ALL" in dropped):
                problems.append("capabilities are not dropped (drop: [ALL])")
            if problems:
                yield security_context.finding(
                    f"{manifest.kind} {manifest.name}, container {name}: {'; '.join(problems)}",
                    file=file,
                    line=line,
                )


# -- K8S004: PodDisruptionBudget against replicas ---------------------------------------------


def _selected(selector: Any, labels: Any) -> bool:
    wanted = selector.get("matchLabels") if isinstance(selector, dict) else None
    if not isinstance(wanted, dict) or not isinstance(labels, dict):
        return False
    return all(labels.get(k) == v for k, v in wanted.items())


def _replicas(workload: Manifest, all_manifests: list[Manifest]) -> int:
    """The fewest replicas the workload runs: an HPA's minReplicas, else spec.replicas
    (1 when unset, Kubernetes' default)."""
    for hpa in all_manifests:
        if hpa.kind != "HorizontalPodAutoscaler":
            continue
        target = hpa.data.get("spec", {}).get("scaleTargetRef", {})
        if isinstance(target, dict) and target.get("name") == workload.name:
            return _int(hpa.data["spec"].get("minReplicas")) or 1
    spec = workload.data.get("spec")
    replicas = _int(spec.get("replicas")) if isinstance(spec, dict) else None
    return 1 if replicas is None else replicas


@rule(
    "K8S004",
    layer=_LAYER,
    level=Level.ERROR,
    title="The PodDisruptionBudget lets no pod be evicted",
    help="Let a budget allow at least one eviction at the fewest replicas the workload "
    "runs: with replicas: 2, minAvailable: 1 or maxUnavailable: 1. A budget that allows "
    "none (minAvailable >= replicas, maxUnavailable: 0) blocks every node drain: "
    "cluster upgrades wait forever, or an operator forces them.",
    example="replicas: 1\n---\nkind: PodDisruptionBudget\nspec:\n  minAvailable: 1",
    level_reason="error: node maintenance stops until someone deletes the budget, and "
    "a single replica is down during it anyway.",
)
def pdb_blocks(ctx: Context) -> Iterator[Finding]:
    found = manifests(ctx)
    workloads = [m for m in found if m.kind in ("Deployment", "StatefulSet", "ReplicaSet")]
    for budget in (m for m in found if m.kind == "PodDisruptionBudget"):
        spec = budget.data.get("spec")
        if not isinstance(spec, dict):
            continue
        for workload in workloads:
            template = workload.data.get("spec", {}).get("template", {})
            labels = (
                template.get("metadata", {}).get("labels") if isinstance(template, dict) else None
            )
            if not _selected(spec.get("selector"), labels):
                continue
            replicas = _replicas(workload, found)
            minimum, most = _int(spec.get("minAvailable")), _int(spec.get("maxUnavailable"))
            if (minimum is not None and minimum >= replicas) or most == 0:
                said = f"minAvailable: {minimum}" if minimum is not None else "maxUnavailable: 0"
                yield pdb_blocks.finding(
                    f"PodDisruptionBudget {budget.name} ({said}) allows no eviction of "
                    f"{workload.kind} {workload.name} at {replicas} replica(s)",
                    file=ctx.relative(budget.path),
                    line=budget.line_of(
                        "minAvailable" if minimum is not None else "maxUnavailable"
                    ),
                )


# -- K8S005: grace period against the app's shutdown ----------------------------------------


def _pre_stop_seconds(container: dict[str, Any]) -> int:
    hook = container.get("lifecycle", {})
    pre_stop = hook.get("preStop") if isinstance(hook, dict) else None
    command = pre_stop.get("exec", {}).get("command") if isinstance(pre_stop, dict) else None
    if isinstance(command, list) and len(command) == 2 and command[0] == "sleep":
        return int(command[1]) if str(command[1]).isdigit() else 0
    sleep = pre_stop.get("sleep", {}).get("seconds") if isinstance(pre_stop, dict) else None
    return _int(sleep) or 0


def _graceful(ctx: Context) -> tuple[int, str]:
    """The app server's graceful shutdown: the spec's server.graceful_timeout, else the
    container's gunicorn graceful_timeout, else gunicorn's default."""
    if ctx.spec is not None:
        return ctx.spec.server.graceful_timeout, "flaskprod.toml's server.graceful_timeout"
    for setup in gunicorn_setups(ctx):
        value = setup.get("graceful_timeout")
        if setup.in_container and _int(value) is not None:
            return int(value), f"gunicorn's graceful_timeout ({ctx.relative(setup.file)})"
    return GUNICORN_GRACEFUL, "gunicorn's default graceful_timeout"


@rule(
    "K8S005",
    layer=_LAYER,
    level=Level.WARNING,
    title="The pod's grace period ends before the app's graceful shutdown",
    help="Set terminationGracePeriodSeconds to at least the preStop pause plus the app "
    "server's graceful timeout (the kit: preStop 5 s + graceful_timeout + 5 s): the "
    "kubelet SIGKILLs the container when the period (30 s if unset) is over, cutting "
    "the requests it was finishing.",
    example="terminationGracePeriodSeconds: 10   # gunicorn's graceful_timeout is 30",
    level_reason="warning: requests in flight at each rollout or scale-down are cut; "
    "nothing is exposed.",
)
def grace_too_short(ctx: Context) -> Iterator[Finding]:
    graceful, said = _graceful(ctx)
    for manifest in manifests(ctx):
        pod = manifest.pod
        if pod is None or manifest.kind in ("Job", "CronJob"):
            continue
        grace = _int(pod.get("terminationGracePeriodSeconds"))
        for container in manifest.containers:
            needed = _pre_stop_seconds(container) + graceful
            effective = DEFAULT_GRACE if grace is None else grace
            if effective >= needed:
                continue
            shown = f"{grace} s" if grace is not None else "30 s (Kubernetes' default; not set)"
            yield grace_too_short.finding(
                f"{manifest.kind} {manifest.name}: terminationGracePeriodSeconds is {shown}, "
                f"less than the preStop pause plus {said} ({needed} s)",
                file=ctx.relative(manifest.path),
                line=manifest.line_of("terminationGracePeriodSeconds")
                if grace is not None
                else manifest.line_of("containers:"),
            )
            break


# -- K8S006: the migration Job --------------------------------------------------------------

_MIGRATE = re.compile(r"\b(db upgrade|alembic upgrade|migrate)\b")


def _commands(container: dict[str, Any]) -> str:
    parts = [*(container.get("command") or []), *(container.get("args") or [])]
    return " ".join(str(p) for p in parts)


@rule(
    "K8S006",
    layer=_LAYER,
    level=Level.WARNING,
    title="Migrations run in every pod, or in a Job that can hang or repeat forever",
    help="Run migrations once per release in a Job (restartPolicy: Never, backoffLimit "
    "of a few, activeDeadlineSeconds) applied and awaited before the new Deployment "
    "rolls out; not in an initContainer or the container's command, where every pod of "
    "every scale-up runs them at once.",
    example="initContainers:\n  - name: migrate\n    command: [flask, db, upgrade]",
    level_reason="warning: concurrent migrations can lock tables or fail half-applied, "
    "and an unbounded Job retries a broken migration against production for hours.",
)
def migration_job(ctx: Context) -> Iterator[Finding]:
    for manifest in manifests(ctx):
        pod = manifest.pod or {}
        file = ctx.relative(manifest.path)
        if manifest.kind in ("Deployment", "StatefulSet", "DaemonSet"):
            inits = pod.get("initContainers")
            runs = [*(inits if isinstance(inits, list) else []), *manifest.containers]
            for container in (c for c in runs if isinstance(c, dict)):
                if _MIGRATE.search(_commands(container)):
                    yield migration_job.finding(
                        f"{manifest.kind} {manifest.name}: '{_commands(container)}' runs in "
                        "every pod it starts",
                        file=file,
                        line=manifest.line_of(f"name: {container.get('name', '?')}"),
                    )
        elif manifest.kind == "Job" and any(
            _MIGRATE.search(_commands(c)) for c in manifest.containers
        ):
            spec = manifest.data.get("spec", {})
            missing = [k for k in ("activeDeadlineSeconds",) if k not in spec]
            if _int(spec.get("backoffLimit")) is None:
                missing.append("backoffLimit (6 retries when unset)")
            if pod.get("restartPolicy") != "Never":
                missing.append("restartPolicy: Never")
            if missing:
                yield migration_job.finding(
                    f"Job {manifest.name} migrates without {', '.join(missing)}",
                    file=file,
                    line=manifest.line_of("spec:"),
                )


# -- K8S007: readiness and liveness -----------------------------------------------------------


#: A readiness route by its name (/health/ready, /readyz, /readiness).
_READY = re.compile(r"ready|readiness", re.IGNORECASE)


def _probe_path(container: dict[str, Any], kind: str) -> str | None:
    probe = container.get(kind)
    get = probe.get("httpGet") if isinstance(probe, dict) else None
    path = get.get("path") if isinstance(get, dict) else None
    return path if isinstance(path, str) else None


@rule(
    "K8S007",
    layer=_LAYER,
    level=Level.WARNING,
    title="No readiness probe, or a liveness probe that checks the dependencies",
    help="Give each serving container a readinessProbe (the readiness route: checks the "
    "database and Redis) and a livenessProbe on the liveness route (answers without "
    "touching them): without readiness a pod gets traffic before the app has imported; "
    "with the dependencies in liveness, a database outage restarts every pod at once.",
    example="livenessProbe:\n  httpGet:\n    path: /health/ready   # checks the database",
    level_reason="warning: 502s at every rollout and scale-up, or restart storms during "
    "a dependency's outage; nothing is exposed.",
)
def readiness(ctx: Context) -> Iterator[Finding]:
    # The spec's readiness route, unless it is also its liveness route (one route for
    # both, as an app with a single /healthcheck has: what it checks is unknown).
    http = ctx.spec.http if ctx.spec is not None else None
    ready_paths = {http.ready_path} - {http.health_path} if http is not None else set()
    live_paths = {http.health_path} if http is not None else set()
    for manifest in manifests(ctx):
        if manifest.kind not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            continue
        for container in manifest.containers:
            if not container.get("ports"):
                continue  # not serving: a sidecar, a worker
            name = container.get("name", "?")
            file = ctx.relative(manifest.path)
            live = _probe_path(container, "livenessProbe")
            if "readinessProbe" not in container:
                yield readiness.finding(
                    f"{manifest.kind} {manifest.name}, container {name}: no readinessProbe, "
                    "so it gets traffic as soon as it starts",
                    file=file,
                    line=manifest.line_of(f"name: {name}", after="containers:"),
                )
            elif (
                live is not None
                and live not in live_paths
                and (live in ready_paths or _READY.search(live))
            ):
                yield readiness.finding(
                    f"{manifest.kind} {manifest.name}, container {name}: the livenessProbe "
                    f"requests {live}, the readiness route (it checks the dependencies)",
                    file=file,
                    line=manifest.line_of(f"path: {live}", after="livenessProbe"),
                )


# -- K8S008: image tags -------------------------------------------------------------------------


def _tag(image: str) -> str | None:
    """The image's tag; None when it has none (a digest pins it: "@sha256:...")."""
    if "@" in image:
        return "@digest"
    name = image.rsplit("/", 1)[-1]
    return name.partition(":")[2] or None


@rule(
    "K8S008",
    layer=_LAYER,
    level=Level.WARNING,
    title="A container runs a moving image tag (latest, or none)",
    help="Run an immutable image: the tag CI pushes for the commit (ghcr.io/org/app:"
    "<git sha>) or a digest (@sha256:...), set at each deploy (kustomize images:, "
    "'kubectl set image'); then 'kubectl rollout undo' really goes back, and every node "
    "runs the same code.",
    example="image: ghcr.io/org/app:latest\nimagePullPolicy: IfNotPresent",
    level_reason="warning when nodes may keep an older copy (a moving tag with "
    "imagePullPolicy IfNotPresent or Never): pods of one Deployment run different code; "
    "info when it is pulled every time (imagePullPolicy Always, Kubernetes' default for "
    "latest): one version runs, but a rollback cannot name the previous one.",
)
def moving_tag(ctx: Context) -> Iterator[Finding]:
    for manifest in manifests(ctx):
        for container in manifest.containers:
            image = container.get("image")
            if not isinstance(image, str) or "$" in image or "{{" in image:
                continue
            tag = _tag(image)
            if tag not in (None, "latest"):
                continue
            policy = container.get("imagePullPolicy") or "Always"  # the default for latest
            yield moving_tag.finding(
                f"{manifest.kind} {manifest.name}, container {container.get('name', '?')}: "
                f"{image} (imagePullPolicy {policy})",
                level=Level.INFO if policy == "Always" else Level.WARNING,
                file=ctx.relative(manifest.path),
                line=manifest.line_of(f"image: {image}"),
            )


# -- K8S009: workers without a liveness probe -------------------------------------------------


def _worker_kind(container: dict[str, Any]) -> str | None:
    """ "rq" or "celery" when the container runs a queue worker (its command and args,
    also through ``sh -c '...'``), else None."""
    words: list[str] = []
    for key in ("command", "args"):
        value = container.get(key)
        if isinstance(value, list):
            words += [str(word) for word in value]
    if not words:
        return None  # the image's own CMD: unknown here
    candidates = [words]
    if PurePosixPath(words[0]).name in ("sh", "bash") and words[1:2] == ["-c"] and words[2:]:
        candidates = [list(line.argv) for line in shell_commands(words[2])]
    for argv in candidates:
        kind = classify(argv)
        if kind in ("rq", "celery"):
            return kind
    return None


def _serves(container: dict[str, Any]) -> bool:
    """The container takes traffic: a declared port, or a probe over HTTP, TCP or gRPC."""
    if container.get("ports"):
        return True
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(kind)
        if isinstance(probe, dict) and probe.keys() & {"httpGet", "tcpSocket", "grpc"}:
            return True
    return False


@rule(
    "K8S009",
    layer=_LAYER,
    level=Level.WARNING,
    title="A queue worker's container has no livenessProbe",
    help="Give each worker container (an RQ or Celery worker: it serves no HTTP, so the "
    "web probes do not apply) an exec livenessProbe that fails when the worker stops "
    "working. RQ: its registration in Redis, which its heartbeat renews (the kit's "
    "probe looks for a worker of the pod's hostname in Worker.all()); Celery: "
    "'celery -A app inspect ping --destination celery@$HOSTNAME'. A worker that exits "
    "is restarted anyway; one that hangs (a deadlock, a connection stuck without a "
    "timeout) keeps its pod Running while no job is done.",
    example="containers:\n  - name: worker\n    command: [rq, worker, jobs]   # no livenessProbe",
    level_reason="warning: jobs stop without an error until someone notices the queue "
    "growing; nothing is exposed, and a worker that crashes is restarted without one.",
)
def worker_liveness(ctx: Context) -> Iterator[Finding]:
    for manifest in manifests(ctx):
        if manifest.kind not in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            continue  # a Job or CronJob ends by itself
        for container in manifest.containers:
            if "livenessProbe" in container or _serves(container):
                continue
            kind = _worker_kind(container)
            if kind is None:
                continue  # a sidecar or a command of the project's own: no probe to name
            name = container.get("name", "?")
            yield worker_liveness.finding(
                f"{manifest.kind} {manifest.name}, container {name}: a {kind} worker without "
                "a livenessProbe: if it hangs, its pod stays Running and no job is done",
                file=ctx.relative(manifest.path),
                line=manifest.line_of(f"name: {name}", after="containers:"),
            )
