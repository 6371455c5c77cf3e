"""pyinfra, driven through flaskprod's own OpenSSH connection (docs/deploy.md, "Why pyinfra").

pyinfra brings the idempotent operations (packages, users, files, services), the facts
they are decided on and the dry-run; the commands reach the host through
:class:`flaskprod.deploy.remote.Remote` — plain OpenSSH with the user's ssh_config,
known_hosts and one ControlMaster connection — instead of pyinfra's paramiko client, so
a deploy honours ssh_config exactly as ``ssh`` does and checks host keys one way.

Provisioning is a list of named steps, each a few pyinfra operations. A step runs
at once (progress per step), reports whether it changed anything, and a failed one
raises :class:`StepFailed` naming the step and the host's own error line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyinfra.api.command import QuoteString, StringCommand
from pyinfra.api.config import Config
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host
from pyinfra.api.inventory import Inventory
from pyinfra.api.operation import OperationMeta, add_op
from pyinfra.api.operations import run_host_op
from pyinfra.api.state import State
from pyinfra.api.util import get_file_io
from pyinfra.connectors.base import BaseConnector
from pyinfra.connectors.util import CommandOutput, OutputLine, make_unix_command_for_host
from pyinfra.context import ctx_host, ctx_inventory, ctx_state

from flaskprod.deploy.remote import Completed


class RemoteHost(Protocol):
    """What the engine needs of :class:`flaskprod.deploy.remote.Remote`."""

    @property
    def label(self) -> str: ...

    def connect(self) -> object: ...

    def run(
        self,
        command: str | Sequence[str],
        *,
        step: str,
        input: str | bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> Completed: ...


class StepFailed(Exception):
    """A provisioning step failed on the host: its name and the host's error lines."""

    def __init__(self, step: str, lines: list[str]) -> None:
        super().__init__(step)
        self.step = step
        self.lines = lines

    @property
    def reason(self) -> str:
        """The most telling line of the host's output (apt's ``E:``, an ``error:``)."""
        for line in reversed(self.lines):
            low = line.lower()
            if line.startswith("E:") or "error" in low or "failed" in low:
                return line.strip()
        return self.lines[-1].strip() if self.lines else "failed without output"


def _output(done: Completed) -> CommandOutput:
    lines = [OutputLine("stdout", line) for line in done.stdout.splitlines()]
    lines += [OutputLine("stderr", line) for line in done.stderr.splitlines()]
    return CommandOutput(lines)


#: pyinfra's connector arguments that only its own ssh/local connectors understand.
_IGNORED = ("_get_pty", "_timeout", "_stdin", "_success_exit_codes")


class RemoteConnector(BaseConnector):
    """A pyinfra connector that runs every command through flaskprod's Remote."""

    handles_execution = True

    @staticmethod
    def make_names_data(name: str) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
        yield name, {}, []

    @property
    def remote(self) -> RemoteHost:
        remote: RemoteHost = self.host.data.get("flaskprod_remote")
        return remote

    def connect(self) -> None:
        """Remote connected (and checked the host key) before the engine started."""

    def _run(self, command: StringCommand, arguments: dict[str, Any], data: Any) -> Any:
        codes = arguments.get("_success_exit_codes")
        stdin = arguments.get("_stdin")
        for key in _IGNORED:
            arguments.pop(key, None)
        # Remote runs every command as root (sudo -n itself when the login user is not).
        arguments["_sudo"] = False
        shell = make_unix_command_for_host(self.state, self.host, command, **arguments)
        if data is None and stdin is not None:
            data = stdin if isinstance(stdin, str | bytes) else "\n".join(stdin) + "\n"
        step = self.host.connector_data.get("flaskprod_step", "provision")
        done = self.remote.run(shell.get_raw_value(), step=step, input=data, check=False)
        ok = done.returncode in codes if codes else done.returncode == 0
        return ok, _output(done)

    def run_shell_command(
        self,
        command: StringCommand,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> tuple[bool, CommandOutput]:
        ok, output = self._run(command, dict(arguments), None)
        return bool(ok), output

    def put_file(
        self,
        filename_or_io: Any,
        remote_filename: str,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        with get_file_io(filename_or_io) as handle:
            data = handle.read()
        payload = data.encode() if isinstance(data, str) else data
        # Atomic, and private until pyinfra sets the mode it was asked for: an
        # interrupted upload leaves the old file whole, a key is never world-readable.
        script = 'umask 077; t="$0.flaskprod-tmp"; cat > "$t" && mv -f "$t" "$0"'
        command = StringCommand("sh", "-c", QuoteString(script), QuoteString(remote_filename))
        ok, output = self._run(command, dict(arguments), payload)
        if not ok:
            raise OSError(output.stderr)
        return True

    def get_file(
        self,
        remote_filename: str,
        filename_or_io: Any,
        remote_temp_filename: str | None = None,
        print_output: bool = False,
        print_input: bool = False,
        **arguments: Any,
    ) -> bool:
        done = self.remote.run(
            ["cat", remote_filename], step="read " + remote_filename, check=False
        )
        if done.returncode:
            raise OSError(done.stderr)
        with get_file_io(filename_or_io, "wb") as handle:
            handle.write(done.stdout.encode())
        return True


@dataclass
class StepResult:
    name: str
    changed: bool
    #: What changed (or would), one short line per operation.
    details: list[str] = field(default_factory=list)


class Step:
    """The pyinfra operations of one provisioning step (see :meth:`Engine.step`)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.result = StepResult(name, changed=False)

    def op(self, operation: Callable[..., Any], label: str | None = None, **kwargs: Any) -> bool:
        """Run (or, dry, evaluate) one operation; True when it changed (would change)."""
        return self.engine.operation(self, operation, label, kwargs)


class Engine:
    """pyinfra's state for one host, reached through ``remote``; ``dry_run``: operations
    are only evaluated against the host's facts, nothing is executed."""

    def __init__(self, remote: RemoteHost, *, dry_run: bool = False) -> None:
        _quiet_pyinfra()
        _per_thread_pyinfra()
        self.remote = remote
        self.dry_run = dry_run
        remote.connect()  # refuses what cannot be provisioned: OS, sudo, host key
        inventory = Inventory(([(remote.label, {"flaskprod_remote": remote})], {}))  # type: ignore[no-untyped-call]
        for host in inventory:
            host.connector_cls = RemoteConnector
        config = Config()  # type: ignore[no-untyped-call]
        self.state = State(inventory, config, check_for_changes=dry_run)
        connect_all(self.state)
        hosts = list(self.state.inventory.iter_activated_hosts())
        assert len(hosts) == 1, "the connector cannot fail to connect"
        self.host: Host = hosts[0]
        self._count = 0
        #: The step running now (named when a deploy is interrupted).
        self.current = "connect"

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        self.current = name
        step = Step(self, name)
        yield step

    def operation(
        self, step: Step, operation: Callable[..., Any], label: str | None, kwargs: dict[str, Any]
    ) -> bool:
        self._count += 1
        kwargs.setdefault("name", f"{step.name} #{self._count}")
        self.host.connector_data["flaskprod_step"] = step.name
        try:
            meta: OperationMeta = add_op(self.state, operation, host=self.host, **kwargs)[self.host]
            if self.dry_run:
                return self._record(step, label, kwargs, bool(meta._maybe_is_change))
            with ctx_state.use(self.state), ctx_host.use(self.host):
                succeeded = run_host_op(self.state, self.host, meta._hash)
        except PyinfraError as error:  # an operation refusing what it found on the host
            raise StepFailed(step.name, [str(error)]) from None
        if not succeeded:
            lines = [line for line in meta.stderr_lines + meta.stdout_lines if line.strip()]
            raise StepFailed(step.name, lines)
        return self._record(step, label, kwargs, meta.did_change())

    @staticmethod
    def _record(step: Step, label: str | None, kwargs: dict[str, Any], changed: bool) -> bool:
        if changed:
            step.result.changed = True
            step.result.details.append(label or str(kwargs["name"]))
        return changed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            disconnect_all(self.state)


def _quiet_pyinfra() -> None:
    """pyinfra logs every operation and fact for its own CLI; flaskprod prints its own
    progress lines and the host's error lines, so only pyinfra's errors are kept out."""
    for name in ("pyinfra", "pyinfra_cli"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
        logging.getLogger(name).propagate = False


class _PerThread(threading.local):
    module: object = None


def _per_thread_pyinfra() -> None:
    """pyinfra keeps "the current state" in one process-wide slot (its CLI drives every
    host from one state, in greenlets); hosts provisioned in threads each have a state
    of their own, so the slot is made per thread (``ctx_host`` already is)."""
    for manager in (ctx_state, ctx_inventory):
        if not isinstance(manager.context._container, _PerThread):
            manager.context._container = _PerThread()
