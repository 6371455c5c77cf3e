"""How long `flaskprod deploy` takes to provision a fresh server, re-run, and dry-run.

    .venv/bin/python bench/provision_bench.py [--runs 1]

Per run: a fresh lab host (src/flaskprod/lab: Debian 12 under systemd-nspawn, packages
through the lab's proxy and its warm archive cache) with Pebble in its network; the
shop's spec pointed at Pebble. Timed as a user runs the CLI (python start-up included):
``deploy --dry-run`` on the fresh host, the first ``deploy``, a second one (nothing to
change), and ``--dry-run`` again. Every host is stopped by pid at the end. The release
is not part of these figures (helper "ship": bench/deploy_phases.py).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flaskprod.lab import Lab
from flaskprod.lab.pebble import Pebble

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "deploy"))
from shop_project import shop_copy

FLASKPROD = str(Path(sys.executable).with_name("flaskprod"))
PHASES = ("dry run, fresh host", "first deploy", "re-run, no change", "dry run, provisioned")
DRY = ("--dry-run",)
EXTRAS: tuple[tuple[str, ...], ...] = (DRY, (), (), DRY)


def command(project: Path, lab: Lab, host: str, extra: tuple[str, ...]) -> list[str]:
    return [
        FLASKPROD,
        "deploy",
        str(project),
        "--host",
        host,
        "--ssh-config",
        str(lab.ssh_config),
        "--provision-only",
        *extra,
    ]


def _deploy(project: Path, lab: Lab, host: str, *extra: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(
        command(project, lab, host, extra),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"deploy failed (exit {done.returncode}): {done.stderr[-2000:]}")
    summary = re.findall(rf"^{host}: (?:provisioned: )?(.*steps.*|no change.*)$", done.stderr, re.M)
    return seconds, summary[-1] if summary else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="flaskprod-provision-bench-") as tmp:
        lab = Lab.start(Path(tmp) / "lab", echo=lambda line: print(line, file=sys.stderr))
        try:
            for run in range(args.runs):
                host = lab.boot(f"pb{run}")
                try:
                    pebble = Pebble.start(host, Path(tmp) / f"pebble{run}")
                    project = shop_copy(
                        Path(tmp) / f"run{run}",
                        acme_directory=pebble.directory,
                        acme_ca=str(pebble.ca_file),
                    )
                    for phase, extra in zip(
                        PHASES, (["--dry-run"], [], [], ["--dry-run"]), strict=True
                    ):
                        seconds, summary = _deploy(project, lab, host.name, *extra)
                        rows.append((phase, seconds, summary))
                        print(f"{phase}: {seconds:.1f}s ({summary})", file=sys.stderr)
                finally:
                    host.kill()
        finally:
            lab.stop()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"| phase | seconds | what deploy said |  (load average {load})")
    print("|---|---|---|")
    for phase, seconds, summary in rows:
        print(f"| {phase} | {seconds:.1f} | {summary} |")


if __name__ == "__main__":
    main()
