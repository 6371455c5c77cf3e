"""The k8s layer beyond its fixtures: levels that rise with the problem, the fewest
replicas an HPA allows, lines in multi-document files, and the kit's own manifests."""

from __future__ import annotations

from pathlib import Path

from deploy_helpers import write

from flaskprod.check.model import Finding, Level
from flaskprod.check.runner import CheckOptions, run_checks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SHOP = Path(__file__).resolve().parents[3] / "examples" / "shop"
BASE = (FIXTURES / "K8S004" / "pass" / "k8s" / "deployment.yaml").read_text()


def k8s(root: Path, *, no_import: bool = True) -> list[Finding]:
    return run_checks(CheckOptions(root=root, select=("K8S",), no_import=no_import)).findings


def test_a_privileged_container_is_an_error(tmp_path: Path) -> None:
    privileged = BASE.replace("allowPrivilegeEscalation: false", "privileged: true")
    write(tmp_path, {"k8s/app.yaml": privileged})
    found = [(f.id, f.level, f.line) for f in k8s(tmp_path) if f.id == "K8S003"]
    assert found == [("K8S003", Level.ERROR, 20)], found


def test_the_budget_is_judged_at_the_hpas_minimum(tmp_path: Path) -> None:
    """replicas: 2 but the HPA may scale down to 1: maxUnavailable 1 is fine, and
    minAvailable 1 (fine at 2) blocks drains at the HPA's minimum; the finding points at
    the budget's line in the second document of the file."""
    hpa = (
        "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n"
        "  name: app-hpa\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n"
        "    kind: Deployment\n    name: app\n  minReplicas: 1\n  maxReplicas: 4\n"
    )
    write(tmp_path, {"k8s/app.yaml": BASE + hpa})
    assert [f for f in k8s(tmp_path) if f.id == "K8S004"] == []
    blocking = BASE.replace("maxUnavailable: 1", "minAvailable: 1") + hpa
    write(tmp_path, {"k8s/app.yaml": blocking})
    found = [f for f in k8s(tmp_path) if f.id == "K8S004"]
    assert [(f.level, f.line) for f in found] == [(Level.ERROR, blocking.splitlines().index(
        "  minAvailable: 1") + 1)], found  # fmt: skip
    assert "at 1 replica(s)" in found[0].message


def test_the_kits_manifests_pass_every_k8s_rule() -> None:
    """The shop's deploy/k8s (probes on /health and /health/ready, resources, non-root,
    PDB maxUnavailable 1 at 2 replicas, grace 40 s = preStop 5 + graceful 30 + 5, the
    migration in a bounded Job, the worker's exec liveness probe), with the app imported
    for the probe paths."""
    result = run_checks(CheckOptions(root=SHOP, select=("K8S",)))
    assert result.context.app is not None, result.context.app_error
    assert sorted(result.rules_run) == [f"K8S00{n}" for n in range(1, 10)]
    # Nothing, not even at info: the image is pinned to a commit (container.tag, which
    # init writes from the repository's HEAD), pulled once per node.
    assert [(f.id, f.level, f.file) for f in result.findings] == [], [
        (f.id, f.message) for f in result.findings
    ]


def test_liveness_on_the_readiness_route(tmp_path: Path) -> None:
    """The readiness route checks the database: as a liveness probe, a database outage
    would restart every pod at once."""
    serving = BASE.replace(
        '          command: ["gunicorn", "--bind", "0.0.0.0:8000", "wsgi:app"]\n',
        '          command: ["gunicorn", "--bind", "0.0.0.0:8000", "wsgi:app"]\n'
        "          ports:\n            - containerPort: 8000\n",
    )
    write(tmp_path, {"k8s/app.yaml": serving})
    assert [f for f in k8s(tmp_path) if f.id == "K8S007"] == []
    live_ready = serving.replace(
        "              path: /health\n", "              path: /health/ready\n", 1
    )
    write(tmp_path, {"k8s/app.yaml": live_ready})
    found = [f for f in k8s(tmp_path) if f.id == "K8S007"]
    assert [(f.level, f.line) for f in found] == [(Level.WARNING, 27)], found
    assert "the livenessProbe requests /health/ready" in found[0].message
