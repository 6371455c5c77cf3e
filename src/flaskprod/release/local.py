"""The release pipeline's target on this machine: ``flaskprod reload`` of an ``up`` stack.

Blue/green on two slots of the stack's state folder: the new code's app server
(gunicorn or granian alike) starts on the free slot's socket next to the live one,
is asked for the ready path on that socket directly, then nginx's upstream include
(``nginx/upstream.conf``) is rewritten atomically, checked (``nginx -t``) and nginx
reloaded (HUP): its new workers send new requests to the new slot while its old workers
finish theirs on the old one — they keep their own upstream connections until they
exit, so no request is sent on a connection the retiring server closes. Once they are
gone the old server gets TERM (graceful). ``state.json`` records the new server as soon
as it runs and which slot is live, so ``status``, ``logs`` and ``down`` always act on
what runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from flaskprod.errors import ServiceFailed
from flaskprod.release.pipeline import Echo, NotReady, Release, run_release
from flaskprod.spec.interpreter import resolve_python
from flaskprod.spec.model import Spec
from flaskprod.stack import process
from flaskprod.stack.nginx import NginxFiles, find_nginx, prepare_nginx, test_config
from flaskprod.stack.state import (
    ServiceRecord,
    StackState,
    StateDir,
    children_of,
    write_atomic,
)
from flaskprod.stack.up import (
    RECORDED_ENV,
    NotRunning,
    Stack,
    UpOptions,
    ensure_kit,
    https_url,
    live_state,
    missing_route,
    probe_https,
    probe_socket,
    project_lock,
    rendered_paths,
    restart_processes,
    stop_how,
)

#: Releases kept in the local ledger (``.flaskprod/releases.json``).
KEEP_RELEASES = 10
#: Lines of the new server's own output shown when it never gets ready.
ERROR_LINES = 20


class LocalTarget:
    """:class:`~flaskprod.release.pipeline.ReleaseTarget` for a running ``up`` stack."""

    label = "this machine"

    def __init__(self, stack: Stack, state: StackState, nginx: str, echo: Echo) -> None:
        self.stack = stack
        self.state = state
        self.nginx = nginx
        self.echo = echo
        self.kind = stack.spec.server.kind
        self.graceful = float(stack.spec.server.graceful_timeout) + 5.0
        self._env: dict[str, str] | None = None
        self._log_offset = 0
        self._new: process.Process | None = None
        self._old_workers: set[int] = set()

    @property
    def dirs(self) -> StateDir:
        return self.stack.dirs

    def _environment(self) -> dict[str, str]:
        if self._env is None:
            env = self.state.env
            self._env = self.stack.app_environment(
                env.get("DATABASE_URL", ""), env.get("REDIS_URL")
            )
            if env.get("DIRECT_DATABASE_URL"):  # PostgreSQL behind PgBouncer: kept
                self._env["DIRECT_DATABASE_URL"] = env["DIRECT_DATABASE_URL"]
        return self._env

    def _records(self, slot: str) -> list[ServiceRecord]:
        """The app server records of ``slot`` (a record without a slot, from a stack
        started before slots, is the live one)."""
        return [
            r
            for r in self.state.services
            if r.name == self.kind and (r.slot or self.state.slot) == slot
        ]

    def _forget(self, record: ServiceRecord) -> None:
        self.state.services = [s for s in self.state.services if s is not record]
        self.dirs.write(self.state)

    # -- the steps ---------------------------------------------------------------------
    def build(self, release: Release) -> None:
        """The code is the project folder as it is; the kit is re-rendered when stale;
        the project's interpreter is taken as it is now (a rebuilt venv, new packages)."""
        stack = self.stack
        ensure_kit(stack.spec, stack.project, self.echo, self.dirs, stack.python.executable)
        stack.server_command()  # the project's gunicorn/granian exists (else exit 3)
        self._environment()

    def release_step(self, release: Release) -> None:
        """Migrations and the release commands, before any request reaches the new code."""
        env = self._environment()
        self.stack._migrate(env)
        for command in self.stack.options.release:
            self.stack._release_step(shlex.split(command), env)

    def start(self, release: Release, slot: str) -> None:
        if self._records(slot):  # a server a crashed reload left behind
            self.stop_slot(slot)
        stack, kind = self.stack, self.kind
        sock = stack.socket_path(slot)
        sock.unlink(missing_ok=True)
        if kind == "gunicorn":
            stack.pid_file(slot).unlink(missing_ok=True)
        log = self.dirs.log(kind)
        self._log_offset = log.stat().st_size if log.exists() else 0
        proc = process.start(
            stack.server_command(slot),
            name=kind,
            log_path=log,
            cwd=stack.project,
            env=self._environment(),
        )
        self._new = proc
        record = ServiceRecord(
            name=kind,
            pid=proc.pid,
            started=proc.started,
            address=f"unix:{sock}",
            log=str(log),
            slot=slot,
        )
        services = self.state.services
        at = max((i + 1 for i, r in enumerate(services) if r.name == kind), default=len(services))
        services.insert(at, record)  # beside the live one: status lists it in its place
        self.dirs.write(self.state)  # recorded at once: `down` stops it whatever happens
        self.echo(f"{kind}: release {release.id} starting on slot {slot} (pid {proc.pid})")

    def _app_lines(self) -> list[str]:
        """The new server's own output since it started (its error, when it failed)."""
        log = self.dirs.log(self.kind)
        try:
            with log.open("rb") as handle:
                handle.seek(self._log_offset)
                text = handle.read(256 * 1024).decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()][-ERROR_LINES:]

    def ready(self, slot: str, timeout: float) -> None:
        """GET the ready path on the new slot's socket until it answers 200."""
        spec, kind = self.stack.spec, self.kind
        sock = self.stack.socket_path(slot)
        deadline = time.monotonic() + timeout
        status: int | None = None
        detail = "no answer yet"
        delay = 0.05
        while time.monotonic() < deadline:
            new = self._new
            if new is not None and not new.alive():
                code = new.returncode()
                exited = f"exited with {code}" if code is not None else "exited"
                raise NotReady(
                    f"{kind} on slot {slot}: the new code did not start ({kind} {exited})",
                    self._app_lines(),
                )
            status, detail = probe_socket(sock, spec.http.ready_path, self.state.https_port)
            if status == 200:
                self.echo(f"{kind}: slot {slot} serving ({spec.http.ready_path} answers 200)")
                return
            if status == 404:
                raise NotReady(missing_route(spec, "ready_path").message, self._app_lines())
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise NotReady(
            f"{kind} on slot {slot}: the new code did not start: {spec.http.ready_path} not "
            f"ready within {timeout:g}s (last: {status or detail})",
            self._app_lines(),
        )

    def _nginx_files(self) -> list[Path]:
        prefix = self.dirs.nginx
        return [prefix / "upstream.conf", prefix / "site.conf", prefix / "nginx.conf"]

    def switch(self, slot: str) -> None:
        """Rewrite nginx's upstream (and the overlaid site) for ``slot``, ``nginx -t``,
        HUP. Until the HUP nothing changed for clients; a refused config is put back."""
        _, site = rendered_paths(self.stack.spec, self.stack.project)
        before = {p: p.read_text() for p in self._nginx_files() if p.is_file()}
        nginx = self.state.service("nginx")
        try:
            files: NginxFiles = prepare_nginx(site, self.stack.overlay(slot))
            test_config(self.nginx, files)
            if nginx is None:
                raise NotRunning("nginx of the stack is not recorded (see 'flaskprod status')")
            self._old_workers = set(children_of(nginx.pid))
            if not nginx.send(signal.SIGHUP):
                raise NotRunning("nginx of the stack is not running (see 'flaskprod status')")
        except BaseException:
            for path, text in before.items():  # nginx keeps (or restarts with) the old slot
                write_atomic(path, text)
            raise
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:  # new workers: new requests go to the new slot
            if set(children_of(nginx.pid)) - self._old_workers:
                break
            time.sleep(0.02)
        self.state.slot = slot
        self.state.env = {k: v for k, v in self._environment().items() if k in RECORDED_ENV}
        self.dirs.write(self.state)
        self.echo(f"nginx: configuration reloaded: new requests go to slot {slot}")

    def drain(self, old_slot: str) -> None:
        """Wait until nginx's old workers finished their requests and exited (bounded by
        the app's graceful timeout: the old server's TERM lets them finish anyway)."""
        nginx = self.state.service("nginx")
        deadline = time.monotonic() + self.graceful
        while nginx is not None and time.monotonic() < deadline:
            if not self._old_workers & set(children_of(nginx.pid)):
                self.echo("nginx: old workers finished their requests and left")
                return
            time.sleep(0.05)
        if nginx is not None:
            self.echo(
                f"nginx: old workers still busy after {self.graceful:g}s: retiring slot "
                f"{old_slot} anyway (its server finishes what it has)"
            )

    def _stop(self, slot: str, timeout: float) -> list[int]:
        stopped: list[int] = []
        how = stop_how(self.kind, timeout)
        for record in self._records(slot):
            if record.stop(how.timeout, how.signum, group=how.group):
                stopped.append(record.pid)
            self._forget(record)
        self.stack.socket_path(slot).unlink(missing_ok=True)
        return stopped

    def retire(self, slot: str) -> None:
        """TERM the old slot's server: it finishes its requests (none is left: nginx's
        old workers are gone) and exits."""
        pids = self._stop(slot, float(self.stack.spec.server.graceful_timeout))
        shown = ", ".join(map(str, pids)) or "already gone"
        self.echo(f"{self.kind}: the old server (slot {slot}, pid {shown}) stopped and left")

    def stop_slot(self, slot: str) -> None:
        if slot == self.state.slot:
            return  # never the live one
        pids = self._stop(slot, 10.0)
        if pids:
            self.echo(f"{self.kind}: stopped the new server on slot {slot} (pid {pids[0]})")
        with contextlib.suppress(ChildProcessError, OSError):
            if self._new is not None:  # our child: reaped, no zombie while we run
                os.waitpid(self._new.pid, os.WNOHANG)

    def live_slot(self) -> str | None:
        live = self.state.service(self.kind)
        return self.state.slot if live is not None and live.alive() else None

    def record(self, release: Release, state: str) -> None:
        """The ledger, ``.flaskprod/releases.json``: newest first, the last
        KEEP_RELEASES releases; one live, the one before it previous."""
        path = self.dirs.root / "releases.json"
        try:
            ledger = json.loads(path.read_text())
        except (OSError, ValueError):
            ledger = []
        if not isinstance(ledger, list):
            ledger = []
        if state == "live":
            for entry in ledger:
                if entry.get("state") == "previous":
                    entry["state"] = "retired"
                elif entry.get("state") == "live":
                    entry["state"] = "previous"
        entry = {
            "id": release.id,
            "revision": release.revision,
            "created": release.created,
            "state": state,
            "slot": self.state.slot if state == "live" else None,
        }
        write_atomic(path, json.dumps([entry, *ledger][:KEEP_RELEASES], indent=2) + "\n")


def _revision(project: Path) -> str:
    """The project's git revision (short), "" when it is not a git checkout."""
    try:
        result = subprocess.run(
            ["git", "-C", str(project), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def reload_stack(spec: Spec, options: UpOptions, echo: Echo) -> float:
    """Zero-downtime reload of a running ``up`` stack through the release pipeline: the
    new code on the other slot, nginx switched once it is ready, the old slot drained
    and retired. Returns the seconds it took."""
    began = time.monotonic()
    stack = Stack(spec, options, echo)
    with project_lock(stack.dirs):
        state = live_state(stack.dirs)
        if state is None:
            raise NotRunning(
                f"the stack of {stack.project} is not running", hint="start it with 'flaskprod up'"
            )
        kind = spec.server.kind
        server, nginx = state.service(kind), state.service("nginx")
        if server is None or nginx is None or not server.alive() or not nginx.alive():
            raise NotRunning(
                f"{kind} or nginx of {stack.project} is not running",
                hint="see 'flaskprod status'; restart with 'flaskprod down' then 'flaskprod up'",
            )
        stack.options.https_port, stack.options.http_port = state.https_port, state.http_port
        stack.slot = state.slot
        recorded = state.env.get("VIRTUAL_ENV")
        if options.python is None and recorded and Path(recorded).is_dir():
            # the venv the running server came from (up's --python), not today's guess
            stack._python = resolve_python(stack.project, recorded)
        target = LocalTarget(stack, state, find_nginx(), echo)
        release = Release.new(_revision(stack.project), ready_timeout=options.ready_timeout)
        run_release(target, release, echo)
    ca = stack.dirs.tls / "ca.pem"
    status, detail = probe_https(https_url(state.https_port, spec.http.ready_path), ca)
    if status != 200:
        raise ServiceFailed(f"after the reload, readiness answers {status or detail}")
    restart_processes(state, echo)
    return time.monotonic() - began
