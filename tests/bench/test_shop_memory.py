"""bench/shop_memory.py: a worker's memory under granian as the kit starts it, with the
DB read's throughput and the [anon] split (arenas, thread stacks) on a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from bench.perf.stacks import REPO
from bench.shop_memory import anon_kinds


def test_granian_worker_memory_throughput_and_mappings() -> None:
    run = subprocess.run(
        [
            sys.executable, str(REPO / "bench" / "shop_memory.py"), "--server", "granian",
            "--requests", "24", "--mappings", "--throughput", "1",
            "--granian-flag=--blocking-threads-idle-timeout=5",
        ],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads(run.stdout.splitlines()[-1])
    assert summary["server"] == "granian" and summary["failed"] == 0
    assert summary["granian_flags"] == ["--blocking-threads-idle-timeout=5"]
    assert summary["workers"] == 2 and summary["worker_rss_mib_max"] > 20
    assert summary["db_read_req_per_s"] > 0
    # granian's blocking threads and its Rust runtime threads have their stacks
    assert "thread stack" in run.stdout and "[anon] by kind" in run.stdout, run.stdout


def test_anon_kinds_finds_a_live_threads_stack() -> None:
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        started.wait(10)
        kinds = anon_kinds(os.getpid())
    finally:
        release.set()
        thread.join()
    stacks = sum(count for kind, (count, _) in kinds.items() if kind.startswith("thread stack"))
    assert stacks >= 1, kinds
