"""Time each phase of releasing the shop to a real lab host: the first release, a
release of a new revision, one that also adds a dependency, and a rollback.

    .venv/bin/python -m bench.deploy_phases [--doc]

One fresh lab host (systemd-nspawn, see docs/lab.md), provisioned by flaskprod deploy's
own provisioning (its certificate from Pebble in the host's network); then each release
through the one pipeline
(build -> release step -> start -> ready -> switch -> drain -> retire), its phases as
the pipeline timed them, and the wall time as the user waits for it (SSH included).
``--doc`` writes the table into docs/deploy.md, section "Phases".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.deploy_host import (  # noqa: E402
    TOKEN,
    commit_change,
    provision,
    shop_repository,
)
from bench.doc_block import markers, ran_on, write_block  # noqa: E402
from flaskprod.deploy.remote import Remote  # noqa: E402
from flaskprod.deploy.ship import release_to_host, rollback_host  # noqa: E402
from flaskprod.lab import Lab  # noqa: E402
from flaskprod.lab.pebble import Pebble  # noqa: E402
from flaskprod.spec.load import load_spec  # noqa: E402

DOC = REPO / "docs" / "deploy.md"
FLASKPROD = str(Path(sys.executable).parent / "flaskprod")
PHASES = ("build", "release", "start", "ready", "switch", "drain", "retire")
START, END = markers("deploy_phases")


def measure(echo: Any = print) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="flaskprod-deploy-bench-"))
    lab = Lab.start(work / "lab")
    runs: dict[str, Any] = {}
    cli: dict[str, Any] = {}
    try:
        host = lab.boot("bench1")
        pebble = Pebble.start(host, work / "pebble")
        project = shop_repository(
            work,
            acme_directory=pebble.directory,
            acme_ca=str(pebble.ca_file),
            acme_email="ops@example.com",
        )
        spec = load_spec(project / "flaskprod.toml")
        began = time.monotonic()
        provision(project, host.name, lab.ssh_config, echo)
        runs["provisioning (flaskprod deploy --provision-only, warm package cache)"] = {
            "wall": round(time.monotonic() - began, 1)
        }

        def timed(label: str, action: Any) -> None:
            started = time.monotonic()
            with Remote(host.name, ssh_config=lab.ssh_config) as remote:
                result = action(remote)
            wall = round(time.monotonic() - started, 1)
            runs[label] = {"wall": wall, "phases": result.timings, "id": result.release.id}
            echo(f"{label}: {wall}s {json.dumps(result.timings)}")

        seed = [f"flask seed --token {TOKEN}"]
        timed(
            "first release",
            lambda r: release_to_host(r, spec, project, echo, release_commands=seed),
        )
        commit_change(project, "shop/static/version.txt", "v2\n", "v2")
        timed("release (new revision)", lambda r: release_to_host(r, spec, project, echo))
        requirements = (project / "requirements.txt").read_text() + "tomli-w==1.2.0\n"
        commit_change(project, "requirements.txt", requirements, "v3: a new dependency")
        timed("release (a new dependency)", lambda r: release_to_host(r, spec, project, echo))
        timed("rollback", lambda r: rollback_host(r, spec, echo))
        # what a user sees: the CLI, forward again to the newest release, then the list
        newest = runs["release (a new dependency)"]["id"]
        for name, args in (("rollback", ["rollback", "--to", newest]), ("releases", ["releases"])):
            argv = [FLASKPROD, *args, str(project), "--host", host.name]
            argv += ["--ssh-config", str(lab.ssh_config)]
            started = time.monotonic()
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
            cli[name] = {
                "command": f"flaskprod {' '.join(args)} shop --host {host.name} "
                "--ssh-config lab/ssh_config",
                "output": (done.stdout + done.stderr).rstrip("\n"),
                "seconds": round(time.monotonic() - started, 1),
            }
            echo(f"{cli[name]['command']}: {done.returncode}\n{cli[name]['output']}")
    finally:
        lab.stop()
    return {**ran_on(load_before), "runs": runs, "cli": cli}


def table(result: dict[str, Any]) -> list[str]:
    head = "| | wall (s) | " + " | ".join(PHASES) + " |"
    lines = [head, "|" + "---|" * (len(PHASES) + 2)]
    for label, run in result["runs"].items():
        phases = run.get("phases") or {}
        cells = [f"{phases[p]:.2f}" if p in phases else "" for p in PHASES]
        lines.append(f"| {label} | {run['wall']:.1f} | " + " | ".join(cells) + " |")
    return lines


def section(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            START,
            "## Phases",
            "",
            f"Measured by `python -m bench.deploy_phases --doc` on {result['machine']}, "
            f"{result['when']} (load average {result.get('load', '?')}, shared with other "
            "work): the shop released to a fresh lab host (Debian 12 booted with "
            "systemd-nspawn, reached over SSH through its ProxyCommand), each phase as the "
            "release pipeline timed it; wall = what the user waits for, SSH included.",
            "",
            *table(result),
            "",
            "- *build*: the revision's tar unpacked in `releases/<id>/`, flaskprod's own "
            "wheel shipped beside it, its `.venv` linked to the venv of its pins "
            "(`venvs/<key>`): built only when a pin changed (the first release fetches "
            "every package into the host's wheelhouse through the package proxy; a new pin "
            "fetches again), else reused as it is.",
            "- *release*: the release step, `flask db upgrade` (and the first release's "
            "`flask seed`), as the app user with the env file, through `systemd-run`.",
            "- *ready*: GET of the ready path on the new slot's socket, on the host (most of "
            "it is the app server importing the app).",
            "- *drain*: until the nginx workers of before the switch exited.",
            "- *rollback*: no build, no migration: the previous release's folder and venv are "
            "still there; its slot is started, checked, switched to.",
            "",
            "The same host, through the command line right after (wall time with the CLI's "
            "start and the SSH connection):",
            "",
            *[
                line
                for run in result.get("cli", {}).values()
                for line in (
                    "```text",
                    f"$ {run['command']}    # {run['seconds']} s",
                    run["output"],
                    "```",
                )
            ],
            END,
        ]
    )


def write_doc(result: dict[str, Any], doc: Path = DOC) -> None:
    write_block(doc, section(result), START, END, new_page="# flaskprod deploy\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", action="store_true", help="write docs/deploy.md's Phases")
    options = parser.parse_args(argv)
    result = measure()
    print("\n".join(table(result)))
    print(json.dumps(result, indent=2))
    if options.doc:
        write_doc(result)
        print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
