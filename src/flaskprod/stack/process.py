"""Supervise one server process: start it, wait until it is ready, stop it by its pid.

Every server flaskprod runs (PostgreSQL, Redis, gunicorn, nginx) goes through here:

- :func:`start` runs the command in its own session (so its process-group id is its
  pid and stopping the group stops its children), with stdout and stderr appended to
  a log file, optionally as another user (``setpriv``) and optionally dying with us.
- :meth:`Process.wait_ready` polls a readiness probe quickly until a deadline and
  fails early, with the tail of the log, when the process dies.
- :func:`stop_pid` stops exactly one process we started: it checks the pid still
  belongs to the process we started (its kernel start time, kept in the pid file),
  sends a signal, waits, then SIGKILLs its group after a timeout. Never by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flaskprod.errors import EnvironmentProblem, ServiceFailed
from flaskprod.stack.ports import PortInUse

#: Default deadlines, in seconds.
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
#: How many log lines an error shows.
TAIL_LINES = 20

# What servers print when their port is taken: the strerror of EADDRINUSE (PostgreSQL,
# Redis, nginx) and gunicorn's own wording.
_PORT_IN_USE_MARKERS = ("Address already in use", "Connection in use")

_PR_SET_PDEATHSIG = 1


class ServiceStartFailed(ServiceFailed):
    """A server died or did not become ready; carries where its log is and its tail."""

    def __init__(self, message: str, *, log_path: Path, log_tail: str) -> None:
        super().__init__(message)
        self.log_path = log_path
        self.log_tail = log_tail

    def __str__(self) -> str:
        # First line is the error; the log tail follows, indented, because it is
        # usually the only place that says why.
        if not self.log_tail:
            return self.message
        tail = "\n".join(f"  | {line}" for line in self.log_tail.splitlines())
        return f"{self.message}\n{tail}"


# -- pids -----------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """The kernel start time of ``pid`` (clock ticks since boot), ``None`` if gone.

    Together with the pid it identifies a process for good: a recycled pid has a
    different start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2]


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as dead)."""
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def _reap(pid: int) -> None:
    # If the process is our child, collect its exit status so it does not stay a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_gone(pid: int, timeout: float, popen: subprocess.Popen[bytes] | None = None) -> bool:
    if popen is not None:
        # Our own child: let Popen reap it, so that its exit status is kept.
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        _reap(pid)
        if not is_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _threads_stopped(pid: int) -> bool:
    """Every thread of ``pid`` stopped (or gone): the group stop SIGSTOP asks for is done."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return True
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] not in "TtZX":
            return False
    return True


def descendants(pid: int) -> list[int]:
    """Children of ``pid``, their children, and so on (from /proc)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                    children = [int(c) for c in (task / "children").read_text().split()]
                    found += children
                    todo += children
    return found


def _leads_group(pid: int) -> bool:
    # Whether pid's process group is its own (true for everything `start` runs).
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _signal(pid: int, sig: int, *, group: bool) -> None:
    # Signal the whole group only when the pid leads it (as everything started by
    # `start` does); otherwise just the pid, so that we never reach someone else's.
    with contextlib.suppress(ProcessLookupError):
        if group and _leads_group(pid):
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_pid(
    pid: int,
    *,
    expected_start: int | None = None,
    sig: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT,
    group: bool = True,
    popen: subprocess.Popen[bytes] | None = None,
) -> bool:
    """Stop the process ``pid``: ``sig``, wait up to ``timeout``, then SIGKILL.

    ``expected_start`` (from :func:`start_time` when we started it) guards against a
    recycled pid: if it does not match, nothing is signalled. ``group`` sends ``sig`` to
    its whole process group (when ``pid`` leads one); ``False`` sends it to the leader
    only, for servers that stop their children themselves (PostgreSQL). The SIGKILL
    after the timeout, and the sweep of leftovers, always cover the group we started.
    Returns whether a process was stopped; ``False`` when it was gone or is not ours.
    ``popen``: the handle when ``pid`` is our child, so that it reaps its exit status.
    """
    if (popen is not None and popen.poll() is not None) or not is_alive(pid):
        # Already exited; what it started may still run in its group.
        _reap(pid)
        _sweep_group(pid, expected_start, grace=0.0)
        return False
    started = start_time(pid)
    if expected_start is not None and started != expected_start:
        return False
    deadline = time.monotonic() + timeout
    # A paused (SIGSTOPped) process would not act on the signal until continued.
    _signal(pid, signal.SIGCONT, group=True)
    _signal(pid, sig, group=group)
    if not _wait_gone(pid, timeout, popen):
        # Descendants that left the group (PostgreSQL backends setsid()) are ours too:
        # collect them before the leader dies and they are re-parented.
        stragglers = descendants(pid)
        _signal(pid, signal.SIGKILL, group=True)
        for child in stragglers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        _wait_gone(pid, 5.0, popen)
    # The rest of the group gets what is left of the timeout to finish.
    _sweep_group(pid, started, grace=max(0.0, deadline - time.monotonic()))
    return True


def group_members(pgid: int) -> list[int]:
    """The living processes (zombies excluded) whose process group is ``pgid``."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:  # fields 3 and 5
            members.append(int(entry.name))
    return members


def _wait_group_empty(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _sweep_group(pid: int, started: int | None, *, grace: float) -> None:
    """Once the leader ``pid`` has exited, give the rest of its process group ``grace``
    seconds to exit, SIGKILL what is left, and wait until it is gone.

    While any member lives, the kernel does not hand out ``pid`` again, so the group
    can only be ours — unless ``pid`` itself now is another process (recycled after its
    exit), checked by its start time. Without a known start time, nothing is swept.
    """
    if started is None:
        return
    current = start_time(pid)
    if current is not None and current != started:
        return
    if current is not None and is_alive(pid):
        return  # still running (it ignored SIGKILL?): never sweep under a live leader
    if _wait_group_empty(pid, grace):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _wait_group_empty(pid, 5.0)


# -- pid files --------------------------------------------------------------------------


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start: int | None


def write_pid_file(path: Path, pid: int) -> None:
    """Write ``pid`` and its start time to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{pid} {start_time(pid) or ''}".rstrip() + "\n")
    tmp.replace(path)


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in ``path``; ``None`` when the file is missing or unreadable."""
    try:
        parts = path.read_text().split()
        pid = int(parts[0])
        started = int(parts[1]) if len(parts) > 1 else None
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return PidRecord(pid, started)


def stop_pid_file(path: Path, *, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the process a pid file names (if it is still that process), then remove the file."""
    record = read_pid_file(path)
    stopped = False
    if record is not None:
        stopped = stop_pid(record.pid, expected_start=record.start, sig=sig, timeout=timeout)
    path.unlink(missing_ok=True)
    return stopped


# -- logs -------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


# -- starting ---------------------------------------------------------------------------


def as_user(argv: Sequence[str], user: str, *, pdeathsig: int | None = None) -> list[str]:
    """``argv`` run as ``user`` through ``setpriv`` (exec, so the pid stays the same)."""
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    if pdeathsig is not None:
        # A change of uid clears the parent-death signal: setpriv sets it again after.
        prefix += ["--pdeathsig", signal.Signals(pdeathsig).name]
    return [*prefix, *argv]


def _die_with_parent(parent: int, sig: int) -> Callable[[], None]:
    def arm() -> None:  # runs in the child, between fork and exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: too late to be told
            os._exit(1)

    return arm


@dataclass
class Process:
    """A server process we started (see :func:`start`)."""

    name: str
    pid: int
    log_path: Path
    started: int | None
    pid_file: Path | None = None
    _popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return is_alive(self.pid) and start_time(self.pid) == self.started

    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    def wait_ready(
        self,
        probe: Callable[[], bool],
        *,
        timeout: float = READY_TIMEOUT,
        port: int | None = None,
    ) -> None:
        """Poll ``probe`` until it returns true; fail early when the process dies.

        Raises :class:`~flaskprod.stack.ports.PortInUse` when the process died saying
        its address was taken (so the caller can retry on another ``port``), and
        :class:`ServiceStartFailed` with the log tail otherwise or on timeout (after
        stopping the process).
        """
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            # Alive first: a probe could reach another server that holds our port.
            if not self.alive():
                self._died(port)
            if probe() and self.alive():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise ServiceStartFailed(
                    f"{self.name} did not become ready within {timeout:g}s (log: {self.log_path})",
                    log_path=self.log_path,
                    log_tail=self.log_tail(),
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def _died(self, port: int | None) -> None:
        tail = self.log_tail()
        self.stop()  # nothing to signal; sweeps what it may have left in its group
        if port is not None and any(marker in tail for marker in _PORT_IN_USE_MARKERS):
            raise PortInUse(f"{self.name}: port {port} is already in use", port=port)
        code = self.returncode()
        status = f" with status {code}" if code is not None else ""
        raise ServiceStartFailed(
            f"{self.name} exited{status} before it was ready (log: {self.log_path})",
            log_path=self.log_path,
            log_tail=tail,
        )

    def send(self, sig: int, *, group: bool = True) -> None:
        """Send ``sig`` to the process (and its group), if it is still the one we started."""
        if self.alive():
            _signal(self.pid, sig, group=group)

    def pause(self) -> None:
        """SIGSTOP it, its group and every descendant: the server hangs as a frozen
        host would, open sessions included (PostgreSQL's backends, which setsid() into
        groups of their own, are descendants)."""
        if not self.alive():
            return
        # The leader first, so that it cannot fork while we walk its descendants.
        _signal(self.pid, signal.SIGSTOP, group=True)
        frozen = [self.pid, *descendants(self.pid)]
        for pid in frozen[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        # kill() returns before every thread has stopped: on a busy machine a thread of
        # a multi-threaded server (MariaDB) could still answer a query sent right after.
        deadline = time.monotonic() + 2.0
        while not all(_threads_stopped(pid) for pid in frozen) and time.monotonic() < deadline:
            time.sleep(0.005)

    def resume(self) -> None:
        if not self.alive():
            return
        for pid in descendants(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        _signal(self.pid, signal.SIGCONT, group=True)

    def stop(
        self, *, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT, group: bool = True
    ) -> bool:
        """Stop it (see :func:`stop_pid`); returns whether it was still running."""
        stopped = stop_pid(
            self.pid,
            expected_start=self.started,
            sig=sig,
            timeout=timeout,
            group=group,
            popen=self._popen,
        )
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)
        return stopped


def start(
    argv: Sequence[str],
    *,
    name: str,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    pid_file: Path | None = None,
    die_with_parent: bool = False,
    death_signal: int = signal.SIGTERM,
) -> Process:
    """Start ``argv`` in its own session with its output appended to ``log_path``.

    ``user`` runs it as that user via ``setpriv`` (we must be root). ``die_with_parent``
    makes the kernel send it ``death_signal`` if this process dies (SIGINT suits
    PostgreSQL: fast shutdown), so a crashed test run does not leave servers behind;
    `flaskprod up` leaves it off so its servers outlive the CLI.
    Beware: the kernel ties that signal to the *thread* that started the process, so
    with ``die_with_parent`` start servers from a thread that lives as long as they do
    (the main thread), not from a short-lived worker thread.
    """
    command = list(argv)
    if user is not None:
        command = as_user(command, user, pdeathsig=death_signal if die_with_parent else None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            popen = subprocess.Popen(
                command,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(
                    _die_with_parent(os.getpid(), death_signal)
                    if die_with_parent and user is None
                    else None
                ),
            )
        except FileNotFoundError as error:
            raise EnvironmentProblem(f"{name}: cannot run {command[0]!r}: not found") from error
    process = Process(name, popen.pid, log_path, start_time(popen.pid), pid_file, popen)
    if pid_file is not None:
        write_pid_file(pid_file, popen.pid)
    return process
