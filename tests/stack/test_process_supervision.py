"""Process supervision: start, readiness, failure with the log tail, stop by pid only."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flaskprod.errors import EnvironmentProblem, ServiceFailed
from flaskprod.stack import process
from flaskprod.stack.ports import (
    PortInUse,
    free_port,
    free_ports,
    port_is_free,
    retry_on_port_in_use,
)

PY = sys.executable


def script(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def sleeper(tmp_path: Path, name: str = "sleeper", pid_file: Path | None = None) -> process.Process:
    return process.start(
        script("import time\nwhile True: time.sleep(0.05)"),
        name=name,
        log_path=tmp_path / f"{name}.log",
        pid_file=pid_file,
    )


def wait_for_state(pid: int, states: set[str]) -> bool:
    # Signals are delivered asynchronously: poll the state briefly.
    for _ in range(200):
        if process._state(pid) in states:
            return True
        time.sleep(0.01)
    return False


def test_ready_when_the_probe_passes_and_output_goes_to_the_log(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    proc = process.start(
        script(f"""
            import time, pathlib
            print("booting", flush=True)
            time.sleep(0.2)
            pathlib.Path({str(marker)!r}).touch()
            while True: time.sleep(0.05)
        """),
        name="toy",
        log_path=tmp_path / "toy.log",
    )
    try:
        proc.wait_ready(marker.exists, timeout=10)
        assert proc.alive()
        assert "booting" in (tmp_path / "toy.log").read_text()
    finally:
        proc.stop()
    assert not proc.alive()


def test_a_process_dying_at_startup_fails_early_with_its_log_tail(tmp_path: Path) -> None:
    proc = process.start(
        script("""
            import sys
            for i in range(1, 51):
                print(f"line {i}", flush=True)
            sys.exit(3)
        """),
        name="doomed",
        log_path=tmp_path / "doomed.log",
    )
    with pytest.raises(process.ServiceStartFailed) as caught:
        proc.wait_ready(lambda: False, timeout=60)
    error = caught.value
    assert isinstance(error, ServiceFailed)
    # It reports the death (not the 60 s deadline) and why, from the log.
    assert "doomed exited with status 3 before it was ready" in error.message
    assert str(tmp_path / "doomed.log") in error.message
    tail = error.log_tail.splitlines()
    assert tail[-1] == "line 50"
    assert len(tail) == process.TAIL_LINES
    assert "line 30" not in tail
    assert "  | line 50" in str(error)


def test_not_ready_before_the_deadline_fails_and_stops_the_process(tmp_path: Path) -> None:
    proc = sleeper(tmp_path, "slowpoke")
    with pytest.raises(process.ServiceStartFailed, match="slowpoke did not become ready within"):
        proc.wait_ready(lambda: False, timeout=0.3)
    assert not process.is_alive(proc.pid)


def test_address_in_use_in_the_log_is_port_in_use(tmp_path: Path) -> None:
    proc = process.start(
        script("""print("bind: Address already in use", flush=True); raise SystemExit(1)"""),
        name="binder",
        log_path=tmp_path / "binder.log",
    )
    with pytest.raises(PortInUse) as caught:
        proc.wait_ready(lambda: False, timeout=10, port=4321)
    assert caught.value.port == 4321


def test_missing_executable_is_an_environment_problem(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="cannot run '/nonexistent/server'"):
        process.start(["/nonexistent/server"], name="ghost", log_path=tmp_path / "g.log")


def test_stop_terminates_the_process_and_its_children(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    proc = process.start(
        script(f"""
            import subprocess, sys, time, pathlib
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            pathlib.Path({str(child_pid_file)!r}).write_text(str(child.pid))
            while True: time.sleep(0.05)
        """),
        name="parent",
        log_path=tmp_path / "parent.log",
    )
    proc.wait_ready(
        lambda: child_pid_file.exists() and child_pid_file.read_text() != "", timeout=10
    )
    child = int(child_pid_file.read_text())
    assert process.is_alive(child)
    assert proc.stop() is True
    assert not process.is_alive(proc.pid)
    assert not process.is_alive(child)


def test_a_leader_dying_at_startup_leaves_no_orphans(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    proc = process.start(
        script(f"""
            import subprocess, sys, pathlib
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            pathlib.Path({str(child_pid_file)!r}).write_text(str(child.pid))
        """),  # exits at once, leaving its child behind in the group
        name="crasher",
        log_path=tmp_path / "crasher.log",
    )
    with pytest.raises(process.ServiceStartFailed):
        proc.wait_ready(lambda: False, timeout=10)
    # The failed start did not leave the orphan running...
    child = int(child_pid_file.read_text())
    assert process._wait_gone(child, 2.0)
    assert proc.stop() is False  # ...and there is nothing left to stop


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = process.start(
        script(f"""
            import signal, time, pathlib
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            pathlib.Path({str(ready)!r}).touch()
            while True: time.sleep(0.05)
        """),
        name="stubborn",
        log_path=tmp_path / "stubborn.log",
    )
    proc.wait_ready(ready.exists, timeout=10)
    assert proc.stop(timeout=0.3) is True
    assert not process.is_alive(proc.pid)
    assert proc.returncode() == -signal.SIGKILL


def test_stop_never_touches_other_pids(tmp_path: Path) -> None:
    ours = sleeper(tmp_path, "ours")
    # A process we did not start through this handle (a neighbour's server, say).
    neighbour = subprocess.Popen([PY, "-c", "import time; time.sleep(600)"], start_new_session=True)
    try:
        # A pid file naming the neighbour's pid with another start time (a recycled
        # pid, as after a reboot) must not get it signalled.
        stale = tmp_path / "stale.pid"
        stale.write_text(f"{neighbour.pid} {(process.start_time(neighbour.pid) or 0) + 1}\n")
        assert process.stop_pid_file(stale) is False
        assert not stale.exists()
        assert process.stop_pid(neighbour.pid, expected_start=1) is False
        assert neighbour.poll() is None

        assert ours.stop() is True
        assert not ours.alive()
        assert neighbour.poll() is None  # still running
        assert ours.stop() is False  # already gone: nothing signalled again
    finally:
        neighbour.kill()
        neighbour.wait()


def test_pid_file_names_pid_and_start_time_and_is_removed_on_stop(tmp_path: Path) -> None:
    pid_file = tmp_path / "run" / "sleeper.pid"
    proc = sleeper(tmp_path, pid_file=pid_file)
    record = process.read_pid_file(pid_file)
    assert record == process.PidRecord(proc.pid, process.start_time(proc.pid))
    assert process.stop_pid_file(pid_file) is True
    assert not pid_file.exists()
    assert not process.is_alive(proc.pid)


def test_pause_and_resume(tmp_path: Path) -> None:
    proc = sleeper(tmp_path)
    try:
        proc.pause()
        assert wait_for_state(proc.pid, {"T"})
        proc.resume()
        assert wait_for_state(proc.pid, {"S", "R"})
        proc.pause()
    finally:
        assert proc.stop(timeout=2) is True  # a paused process still stops


def test_die_with_parent_stops_servers_of_a_crashed_run(tmp_path: Path) -> None:
    # A "test run" that starts a server with die_with_parent and is then SIGKILLed.
    pid_file = tmp_path / "server.pid"
    runner = subprocess.Popen(
        script(f"""
            import sys, time
            from pathlib import Path
            from flaskprod.stack import process
            process.start([sys.executable, "-c", "import time; time.sleep(600)"],
                          name="orphan", log_path=Path({str(tmp_path / "o.log")!r}),
                          pid_file=Path({str(pid_file)!r}), die_with_parent=True)
            time.sleep(600)
        """)
    )
    try:
        for _ in range(200):
            if process.read_pid_file(pid_file):
                break
            time.sleep(0.02)
        record = process.read_pid_file(pid_file)
        assert record is not None
        assert process.is_alive(record.pid)
    finally:
        runner.kill()
        runner.wait()
    assert process._wait_gone(record.pid, 5.0), "server outlived the crashed run"


def test_free_port_is_bindable_and_retry_moves_to_a_fresh_port() -> None:
    port = free_port()
    assert port_is_free(port)
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        assert not port_is_free(port)
        tried: list[int] = []

        def start(candidate: int) -> int:
            tried.append(candidate)
            if not port_is_free(candidate):
                raise PortInUse("taken", port=candidate)
            return candidate

        assert retry_on_port_in_use(start, port=port) != port
        assert tried[0] == port
        assert len(tried) == 2
        with pytest.raises(EnvironmentProblem, match=f"port {port} on 127.0.0.1 is already in use"):
            retry_on_port_in_use(start, port=port, attempts=1, name="toy")


def test_free_ports_are_distinct_and_free() -> None:
    # free_port() twice may return one port twice; a config needing many must not get that
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert all(port_is_free(port) for port in ports)
