"""deploy/scripts/deploy.sh's order of operations: migrate, start the new container next
to the old one, switch only once it is healthy, keep the old one otherwise."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from kit_tools import run_script as run  # the kit's deploy/scripts/*.sh

# ---- deploy.sh: its order of operations, against a stand-in for the docker CLI -------
# There is no Docker engine on this machine; the stand-in records each call and answers
# like docker would (container ids, health status), so the script's logic is what runs.

FAKE_DOCKER = r"""#!/usr/bin/env bash
set -euo pipefail
echo "$*" >> "$FAKE_LOG"
state="$FAKE_DIR/scaled"
args=" $* "
case "$args" in
  *" run --rm migrate "*) exit "${FAKE_MIGRATE_RC:-0}" ;;
  *" ps --quiet web "*) echo old1; [[ -f $state ]] && echo new1; exit 0 ;;
  *" --scale web=2 "*) touch "$state"; exit 0 ;;
  *" --scale web=1 "*) rm -f "$state"; exit 0 ;;
  " inspect "*) echo "$FAKE_HEALTH"; exit 0 ;;
esac
exit 0
"""


def deploy(kit: Any, tmp_path: Path, **fake: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_LOG": str(log),
        "FAKE_DIR": str(tmp_path),
        **fake,
    }
    result = run(kit, "deploy.sh", env, "abc123")
    return result, log.read_text() if log.exists() else ""


def test_deploy_switches_after_the_health_check(kit: Any, tmp_path: Path) -> None:
    result, log = deploy(kit, tmp_path, FAKE_HEALTH="healthy")
    assert result.returncode == 0, result.stderr
    calls = [line.replace("compose --file compose.yaml ", "") for line in log.splitlines()]
    assert calls == [
        "pull --quiet web",
        "run --rm migrate",
        "ps --quiet web",
        "up --detach --no-deps --no-recreate --scale web=2 web",
        "ps --quiet web",
        "inspect --format {{.State.Health.Status}} new1",
        "exec nginx nginx -s reload",
        f"stop --time {kit.spec.server.graceful_timeout + 5} old1",
        "rm old1",
        "up --detach --no-deps --no-recreate --scale web=1 web",
        "exec nginx nginx -s reload",
    ]


def test_deploy_keeps_the_old_version_when_unhealthy(kit: Any, tmp_path: Path) -> None:
    result, log = deploy(kit, tmp_path, FAKE_HEALTH="unhealthy")
    assert result.returncode == 1
    assert "keeping the old version" in result.stderr
    assert "rm --force new1" in log
    assert "stop" not in log and "reload" not in log


def test_deploy_stops_when_migrations_fail(kit: Any, tmp_path: Path) -> None:
    result, log = deploy(kit, tmp_path, FAKE_HEALTH="healthy", FAKE_MIGRATE_RC="3")
    assert result.returncode == 3
    assert "run --rm migrate" in log
    assert "--scale" not in log  # the new version never started
