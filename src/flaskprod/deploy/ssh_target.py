"""The release pipeline's target on an SSH host (``flaskprod deploy``).

Layout on the host (``/work/agents/deploy-contract.md``): ``{root}/releases/<id>/`` the
shipped revision with its own ``.venv``; ``{root}/slots/{a,b}`` symlinks to releases;
``{root}/current`` the live release (nginx's static files); ``{root}/releases.json``
the ledger; the app unit ``{name}@{slot}``; nginx's upstream include
``/etc/nginx/{name}-upstream.conf``. Every step is one SSH command (a short shell
script), so a release costs a handful of round trips over the shared connection.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flaskprod.deploy import ledger
from flaskprod.deploy.source import Source, host_requirements
from flaskprod.errors import DeployError
from flaskprod.kit.deploy_site import current_link, upstream_line, upstream_path
from flaskprod.release.pipeline import Echo, NotReady, Release
from flaskprod.spec.flask_cli import flask_env
from flaskprod.spec.model import Spec
from flaskprod.spec.servers import slot_socket

if TYPE_CHECKING:
    from pathlib import Path

    from flaskprod.deploy.remote import Remote

#: Seconds a release may take to build its venv (pip from the index on a first release).
BUILD_TIMEOUT = 900

#: Run on the host by python3: GET the ready path on the slot's socket until it answers
#: 200, the unit fails or restarts, or the time is up. Prints the last answer.
READY_PROBE = r"""
import http.client, socket, subprocess, sys, time
unit, sock, path, host, seconds = sys.argv[1:6]
deadline = time.monotonic() + float(seconds)
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(sock)
def crashes(invocation):
    # the app server respawning workers that die at import: the same failure again
    log = subprocess.run(["journalctl", "-o", "cat", "--no-pager",
                          "_SYSTEMD_INVOCATION_ID=" + invocation],
                         capture_output=True, text=True).stdout
    return log.count("Traceback (most recent call last)")
last, checked = "no answer on " + sock, 0.0
while time.monotonic() < deadline:
    show = subprocess.run(["systemctl", "show", "-p", "ActiveState,NRestarts,InvocationID",
                           unit], capture_output=True, text=True).stdout
    state = dict(l.split("=", 1) for l in show.split() if "=" in l)
    if state.get("ActiveState") == "failed" or int(state.get("NRestarts", "0") or 0) > 0:
        print(f"{unit} exited ({last})"); sys.exit(2)
    if time.monotonic() - checked > 1 and state.get("InvocationID"):
        checked = time.monotonic()
        if crashes(state["InvocationID"]) >= 2:
            print(f"{unit}: its workers keep crashing ({last})"); sys.exit(3)
    try:
        conn = Conn("localhost", timeout=5)
        conn.request("GET", path, headers={"Host": host, "X-Forwarded-Proto": "https"})
        answer = conn.getresponse()
        body = answer.read(300)
        if answer.status == 200:
            print("ready"); sys.exit(0)
        last = f"{path} answered {answer.status}: {body[:200].decode(errors='replace')}"
    except OSError as error:
        last = f"{path}: {error}"
    time.sleep(0.1)
print(last); sys.exit(1)
"""


#: Run on the host by python3: the ``name==version`` pins of a requirements file that
#: the wheelhouse lacks (so only those are fetched; "?" when a line is not a plain pin).
MISSING_PINS = r"""
import os, re, sys
requirements, house = sys.argv[1:3]
norm = lambda name: re.sub(r"[-_.]+", "_", name).lower()
have = set()
for file in os.listdir(house):
    parts = file[:-4].split("-") if file.endswith(".whl") else []
    if len(parts) >= 2:
        have.add((norm(parts[0]), parts[1]))
for raw in open(requirements):
    line = raw.split(" #")[0].strip()
    if not line or line.startswith("#") or " @ " in line:
        continue
    pin = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^]]*\])?==([^;\s]+)", line)
    if pin is None:
        print("?"); continue
    if (norm(pin.group(1)), pin.group(3)) not in have:
        print(pin.group(1) + "==" + pin.group(3))
"""


class StepFailed(DeployError):
    """A command of a release step failed on the host; ``lines``: its last output."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines


def q(value: str) -> str:
    return shlex.quote(value)


@dataclass
class SshTarget:
    """One host; ``source``/``wheels`` are what :meth:`build` ships (None: a rollback,
    which builds nothing)."""

    remote: Remote
    spec: Spec
    echo: Echo
    source: Source | None = None
    wheels: dict[str, Path] = field(default_factory=dict)
    release_commands: Sequence[str] = ()
    #: False on the app hosts after the first of several: migrations run once.
    run_release_step: bool = True
    label: str = ""
    _slot_of: dict[str, str] = field(default_factory=dict)  # release id -> slot
    _release_in: dict[str, str] = field(default_factory=dict)  # slot -> release id
    _old_workers: str = ""
    _entries: list[ledger.Entry] | None = None

    def __post_init__(self) -> None:
        self.label = self.label or self.remote.label

    # -- paths ---------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return self.spec.app.install_dir.rstrip("/")

    @property
    def name(self) -> str:
        return self.spec.app.name

    @property
    def user(self) -> str:
        return self.spec.resolve(self.spec.deploy.user)

    def folder(self, release_id: str) -> str:
        return f"{self.root}/releases/{release_id}"

    def unit(self, slot: str) -> str:
        return f"{self.name}@{slot}"

    def restart_processes(self) -> None:
        """The spec's long-running processes (workers) on the release now live: each
        finishes its current job (TERM, within its stop_timeout), then starts on the new
        code; enabled at boot. Scheduled ones need nothing: their timer starts the live
        release's code each time."""
        workers = {
            f"{self.name}-{name}.service": section.stop_timeout
            for name, section in sorted(self.spec.processes.items())
            if section.schedule is None
        }
        if not workers:
            return
        units = " ".join(q(unit) for unit in workers)
        self.echo(f"{self.label}: restarting {', '.join(workers)} on the new release")
        self.sh(
            f"systemctl enable --quiet {units}\nsystemctl restart {units}",
            "restart workers",
            timeout=max(workers.values()) + 60,
        )

    def sh(
        self, script: str, step: str, *, input: bytes | None = None, timeout: float = 120
    ) -> str:
        """Run ``script`` with sh on the host; a failure raises StepFailed naming host and step."""
        result = self.remote.run(
            f"set -e\n{script}", step=step, input=input, check=False, timeout=timeout
        )
        if result.returncode != 0:
            lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
            raise StepFailed(
                f"{self.label}: {step} failed" + (f": {lines[-1]}" if lines else ""),
                lines[-20:],
            )
        return str(result.stdout)

    # -- the pipeline's steps ------------------------------------------------------------
    def build(self, release: Release) -> None:
        if self.source is None:  # rollback: the release's folder and venv are there
            self.sh(f"test -x {q(self.folder(release.id))}/.venv/bin/python", "build")
            return
        folder = self.folder(release.id)
        self.echo(f"{self.label}: shipping {release.revision[:12]} to {folder}")
        self.sh(
            f"rm -rf {q(folder)}; mkdir -p {q(folder)}/.wheels {q(self.root)}/slots; "
            f"chmod 0755 {q(self.root)} {q(self.root)}/releases",
            "ship",
        )
        self.remote.put_tar(self.source.archive, folder, step="ship")
        shipped = {}
        for name, wheel in self.wheels.items():
            target = f"{folder}/.wheels/{wheel.name}"
            self.remote.put(wheel.read_bytes(), target, step="ship")
            shipped[name] = target
        steps = [f"cd {q(folder)}"]
        if self.source.requirements:
            requirements = host_requirements(self.source.requirements_text, shipped)
            self.remote.put(requirements, f"{folder}/.requirements.txt", step="build")
            steps += self._venv_steps(self._venv_key())
        else:  # the project installs itself (pyproject): a venv of this release's own
            steps += [
                "python3 -m venv .venv",
                ".venv/bin/pip install -q --use-pep517 --disable-pip-version-check .",
            ]
        for step in self.spec.app.build:
            steps.append(f"PATH={q(folder)}/.venv/bin:$PATH {self._flask(step)}")
        self.echo(f"{self.label}: building the release's venv")
        self.sh("\n".join(steps), "build", timeout=BUILD_TIMEOUT)

    def _venv_key(self) -> str:
        """The venv's identity: the pinned requirements and the shipped wheels' bytes."""
        assert self.source is not None
        digest = hashlib.sha256(self.source.requirements_text.encode())
        for name in sorted(self.wheels):
            digest.update(name.encode() + hashlib.sha256(self.wheels[name].read_bytes()).digest())
        return digest.hexdigest()[:16]

    def _venv_steps(self, key: str) -> list[str]:
        """``.venv`` -> ``{root}/venvs/<key>-py3X``, built once per set of pins (and
        minor Python): a release that changes only code reuses its venv; one that
        changes a pin gets a new venv, the old releases keep theirs. Packages come from
        the host's wheelhouse offline when it has every pin, else the missing ones are
        fetched into it first."""
        house = f"{self.root}/.wheelhouse"
        pip = '"$v/bin/pip" install -q --disable-pip-version-check --no-index'
        return [
            f"v={q(self.root)}/venvs/{key}-$(python3 -c "
            "'import sys; print(\"py%d%d\" % sys.version_info[:2])')",
            f"mkdir -p {q(house)} {q(self.root)}/venvs",
            'if [ ! -e "$v/.complete" ]; then',
            '  rm -rf "$v"; python3 -m venv "$v"',
            f"  missing=$(python3 -c {q(MISSING_PINS)} .requirements.txt {q(house)})",
            # only the new pins fetched (without dependencies: a fully pinned file names
            # them too); if that is not enough, the whole file is resolved into the house
            # --use-pep517: a package published only as an sdist (Flask-Mail, langdetect)
            # builds in its own environment with setuptools and wheel, which a fresh
            # venv of Debian's pip 23.0 lacks ("invalid command 'bdist_wheel'")
            f'  case "$missing" in ""|*"?"*) ;; *) "$v/bin/pip" wheel -q --use-pep517 '
            f"--disable-pip-version-check --no-deps -w {q(house)} $missing || true;; esac",
            f"  {pip} --find-links {q(house)} -r .requirements.txt 2>/dev/null || "
            f'{{ "$v/bin/pip" wheel -q --use-pep517 --disable-pip-version-check -w {q(house)} '
            f"--find-links {q(house)} -r .requirements.txt && "
            f"{pip} --find-links {q(house)} -r .requirements.txt; }}",
            '  touch "$v/.complete"',
            "fi",
            'ln -sfn "$v" .venv',
        ]

    def _flask(self, step: str) -> str:
        from flaskprod.spec.flask_cli import shell_step

        return shell_step(self.spec.app.target, step)

    def _run_as_app(self, release: Release, command: str) -> str:
        """``command`` in the release's folder, as the app user, with the env file —
        exactly as systemd gives it to the service."""
        folder = self.folder(release.id)
        env = flask_env(self.spec.app.target)
        setenv = " ".join(f"--setenv={k}={q(v)}" for k, v in env.items())
        return (
            "systemd-run --quiet --wait --pipe --collect --service-type=exec "
            f"-p User={q(self.user)} -p Group={q(self.user)} "
            f"-p EnvironmentFile={q(self.spec.resolve(self.spec.deploy.env_file))} "
            f"-p WorkingDirectory={q(folder)} --setenv=PATH={q(folder)}/.venv/bin:/usr/bin:/bin "
            f"{setenv} /bin/sh -c {q(command)} </dev/null"
        )

    def release_step(self, release: Release) -> None:
        if self.source is None:
            return  # a rollback runs no migrations (the schema stays as it is)
        if not self.run_release_step:
            self.echo(f"{self.label}: release step: done on the first app host")
            return
        folder = self.folder(release.id)
        check = self.remote.run(
            f"test -f {q(folder)}/migrations/env.py", step="release step", check=False
        )
        commands = ["flask db upgrade"] if check.returncode == 0 else []
        commands += list(self.release_commands)
        for command in commands:
            self.echo(f"{self.label}: release step: {command}")
            self.sh(self._run_as_app(release, command), "release step", timeout=600)

    def start(self, release: Release, slot: str) -> None:
        self._slot_of[release.id] = slot
        self._release_in[slot] = release.id
        link = f"{self.root}/slots/{slot}"
        self.sh(
            f"ln -sfn ../releases/{q(release.id)} {q(link)}.new && mv -T {q(link)}.new {q(link)}\n"
            f"systemctl reset-failed {q(self.unit(slot))} 2>/dev/null || true\n"
            # the unit's own lines when it does not start (systemctl only points at them)
            f"systemctl start {q(self.unit(slot))} 2>/dev/null || {{ "
            f"systemctl status --no-pager -n 0 {q(self.unit(slot))} | sed -n 1,4p; "
            f"journalctl --no-pager -o cat -n 15 -u {q(self.unit(slot))}; "
            f"echo 'systemctl start {self.unit(slot)} failed' >&2; exit 1; }}",
            "start",
        )

    def ready(self, slot: str, timeout: float) -> None:
        argv = [
            "python3", "-c", READY_PROBE, self.unit(slot), slot_socket(self.spec, slot),
            self.spec.http.ready_path, self.spec.app.domains[0], str(timeout),
        ]  # fmt: skip
        result = self.remote.run(argv, step="ready", check=False, timeout=timeout + 30)
        if result.returncode == 0:
            return
        journal = self.remote.run(
            f"journalctl -u {q(self.unit(slot))} -n 25 --no-pager -o cat",
            step="ready",
            check=False,
        )
        lines = [line for line in journal.stdout.splitlines() if line.strip()]
        raise NotReady(
            f"{self.label}: {self.unit(slot)} never got ready: {result.stdout.strip()}", lines
        )

    def switch(self, slot: str) -> None:
        include = upstream_path(self.spec)
        release = self._release_in.get(slot) or self._link_target(slot)
        current = current_link(self.spec)
        script = f"""
{swap_include(include)}
ln -sfn releases/{q(release)} {q(current)}.new && mv -T {q(current)}.new {q(current)}
master=$(cat /run/nginx.pid)
echo "workers: $(ps -o pid= --ppid "$master" | tr '\\n' ' ')"
systemctl reload nginx
systemctl enable --quiet {q(self.unit(slot))}
"""
        out = self.sh(script, "switch", input=upstream_line(self.spec, slot).encode())
        self._old_workers = next(
            (line.split(":", 1)[1] for line in out.splitlines() if line.startswith("workers:")),
            "",
        )

    def drain(self, old_slot: str) -> None:
        """Wait until the nginx workers of before the switch are gone: they held the
        last requests to the old slot (bounded by the app's graceful timeout)."""
        pids = " ".join(p for p in self._old_workers.split() if p.isdigit())
        if not pids:
            return
        self.sh(
            wait_gone(pids, self.spec.server.graceful_timeout + 10),
            "drain",
            timeout=self.spec.server.graceful_timeout + 30,
        )

    def retire(self, slot: str) -> None:
        self.sh(
            f"systemctl disable --quiet {q(self.unit(slot))} 2>/dev/null || true\n"
            f"systemctl stop {q(self.unit(slot))}",
            "retire",
            timeout=self.spec.server.graceful_timeout + 30,
        )

    def stop_slot(self, slot: str) -> None:
        self.remote.run(
            f"systemctl disable --quiet {q(self.unit(slot))} 2>/dev/null; "
            f"systemctl stop {q(self.unit(slot))}; systemctl reset-failed {q(self.unit(slot))}",
            step="stop the new slot",
            check=False,
            timeout=self.spec.server.graceful_timeout + 30,
        )

    def live_slot(self) -> str | None:
        entry = ledger.live(self.entries())
        return entry.slot if entry else None

    def record(self, release: Release, state: str) -> None:
        entry = ledger.Entry(
            id=release.id,
            revision=release.revision,
            created=release.created,
            state=state,
            slot=self._slot_of.get(release.id) if state == "live" else None,
        )
        entries = ledger.record(self.entries(), entry)
        gone: list[str] = []
        if state == "live":
            entries, gone = ledger.prune(entries, self.keep)
        self.write_entries(entries)
        if gone:
            folders = " ".join(q(self.folder(g)) for g in gone)
            self.sh(f"rm -rf {folders}", "prune")
            self.echo(f"{self.label}: pruned {len(gone)} old release(s) (keep {self.keep})")
        if state == "live":  # venvs no kept release links to
            root = q(self.root)
            self.sh(
                f"used=$(readlink {root}/releases/*/.venv 2>/dev/null || true)\n"
                f'for v in {root}/venvs/*; do [ -d "$v" ] || continue\n'
                f'  printf "%s\\n" "$used" | grep -qxF "$v" || rm -rf "$v"\n'
                "done",
                "prune",
            )

    # -- the ledger on the host ----------------------------------------------------------
    @property
    def keep(self) -> int:
        return self.spec.deploy.keep_releases

    def entries(self) -> list[ledger.Entry]:
        if self._entries is None:
            text = self.remote.read(f"{self.root}/releases.json", step="read the ledger")
            try:
                self._entries = ledger.parse(text or "")
            except ledger.LedgerDamaged as error:
                raise DeployError(f"{self.label}: {self.root}/{error}") from None
        return list(self._entries)

    def write_entries(self, entries: list[ledger.Entry]) -> None:
        path = f"{self.root}/releases.json"
        self.remote.put(ledger.dump(entries), path, step="write the ledger")
        self._entries = list(entries)

    def _link_target(self, slot: str) -> str:
        out = self.sh(f"readlink {q(self.root)}/slots/{slot}", "switch").strip()
        return out.rsplit("/", 1)[-1]


def swap_include(include: str) -> str:
    """Shell: stdin replaces nginx's ``include`` file atomically; the old one is put
    back when ``nginx -t`` refuses the new one."""
    return f"""old=$(cat {q(include)} 2>/dev/null || true)
cat > {q(include)}.new
mv -f {q(include)}.new {q(include)}
if ! nginx -t -q 2>/tmp/flaskprod-nginx-t; then
    printf '%s\\n' "$old" > {q(include)}; cat /tmp/flaskprod-nginx-t >&2; exit 1
fi"""


def wait_gone(pids: str, seconds: float) -> str:
    """Shell: until the processes ``pids`` exited (nginx's workers of before a reload,
    finishing their requests), at most ``seconds``."""
    rounds = int(seconds / 0.1)
    return (
        f"for i in $(seq {rounds}); do alive=; for p in {pids}; do "
        f'kill -0 $p 2>/dev/null && alive=1; done; [ -z "$alive" ] && exit 0; '
        f"sleep 0.1; done; echo 'old nginx workers still busy' >&2; exit 1"
    )


def new_release(source: Source, ready_timeout: float, when: datetime | None = None) -> Release:
    moment = when or datetime.now(UTC)
    return Release(
        id=ledger.release_id(source.revision, moment),
        revision=source.revision,
        created=moment.replace(microsecond=0).isoformat(),
        ready_timeout=ready_timeout,
    )
