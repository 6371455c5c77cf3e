"""The state folder of ``flaskprod up`` (``.flaskprod/`` in the project).

It holds what the stack makes and keeps between runs — the local CA, the secret key,
the PostgreSQL cluster, media, logs — and ``state.json``: which processes this
project's stack runs (pid *and* kernel start time, so that a recycled pid is never
mistaken for ours), on which ports. ``state.json`` is written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flaskprod.stack.process import is_alive, start_time, stop_pid

STATE_DIRNAME = ".flaskprod"

# A unix socket path must fit in sockaddr_un.sun_path (108 bytes with the NUL).
_SUN_PATH_MAX = 107


def process_rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads' children)."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return sorted(found)


@dataclass
class ServiceRecord:
    """One process of the stack as ``state.json`` remembers it."""

    name: str
    pid: int
    started: int | None  # process.start_time(pid) when we started it
    address: str
    log: str
    command: list[str] = field(default_factory=list)
    #: The folder to remove with ``down --volumes`` (data this service owns), if any.
    data: str | None = None
    #: The app server's blue/green slot ("a"/"b"); None for the other services.
    slot: str | None = None

    def alive(self) -> bool:
        """Whether the process we started still runs (the pid was not reused)."""
        return is_alive(self.pid) and start_time(self.pid) == self.started

    def send(self, signum: int) -> bool:
        """Send ``signum`` to this one process if it is still ours; False when gone."""
        if not self.alive():
            return False
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float, signum: int = signal.SIGTERM, *, group: bool = True) -> bool:
        """Stop it by pid (never by name); False when it was gone or not ours."""
        return stop_pid(
            self.pid, expected_start=self.started, sig=signum, timeout=timeout, group=group
        )


@dataclass
class StackState:
    """The content of ``state.json``."""

    project: str
    started_at: float
    supervisor_pid: int | None
    url: str
    http_port: int
    https_port: int
    services: list[ServiceRecord] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/health/ready"
    #: The live slot: the one nginx sends requests to (see flaskprod.release).
    slot: str = "a"

    def service(self, name: str) -> ServiceRecord | None:
        """The record of ``name``; of an app server, the live slot's (during a reload
        the new slot's server is recorded too, before it serves)."""
        found = [s for s in self.services if s.name == name]
        live = [s for s in found if s.slot in (None, self.slot)]
        chosen = live or found
        return chosen[0] if chosen else None

    def live(self, record: ServiceRecord) -> bool:
        """Whether ``record`` is part of the serving stack (not a slot being started
        or retired by a reload)."""
        return record.slot in (None, self.slot)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackState:
        raw: dict[str, Any] = json.loads(text)
        services = [ServiceRecord(**s) for s in raw.pop("services", [])]
        return cls(services=services, **raw)


class StateDir:
    """Paths inside ``.flaskprod/`` and the atomic ``state.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @classmethod
    def for_project(cls, project: Path, override: Path | None = None) -> StateDir:
        return cls(override if override is not None else project / STATE_DIRNAME)

    # -- folders ---------------------------------------------------------------------
    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def nginx(self) -> Path:
        return self.root / "nginx"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def mariadb(self) -> Path:
        return self.root / "mariadb"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def sqlite(self) -> Path:
        return self.root / "app.sqlite3"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "up.lock"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def prepare(self) -> None:
        """Make the folders. 0755 so that services running as other users (nginx
        workers, the postgres user) can reach what is theirs inside."""
        for folder in (self.root, self.tls, self.logs, self.run, self.nginx, self.media):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        # Uploads are written by the app and read by nginx workers (another user as root).
        self.media.chmod(0o777 if os.geteuid() == 0 else 0o755)

    def socket_path(self, name: str) -> Path:
        """A unix socket path for ``name``: in ``run/`` when it fits the kernel's limit,
        else in a short per-project folder under the temp dir."""
        path = self.run / name
        if len(os.fsencode(path)) <= _SUN_PATH_MAX:
            return path
        digest = hashlib.sha256(os.fsencode(self.root)).hexdigest()[:12]
        short = Path(tempfile.gettempdir()) / f"flaskprod-{digest}"
        short.mkdir(mode=0o755, exist_ok=True)
        return short / name

    # -- secret key ------------------------------------------------------------------
    def secret_key(self) -> str:
        """The app's SECRET_KEY: generated once (0600), so sessions survive restarts."""
        path = self.root / "secret_key"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        write_atomic(path, key + "\n", mode=0o600)
        return key

    def generated_secret(self, name: str) -> str:
        """A value for one of the app's required secrets (app.settings), generated once
        (0600 in secrets/), so what it signs or encrypts survives restarts."""
        path = self.root / "secrets" / name
        if path.exists():
            return path.read_text().strip()
        value = secrets.token_urlsafe(32)
        write_atomic(path, value + "\n", mode=0o600)
        path.parent.chmod(0o700)
        return value

    # -- state.json ------------------------------------------------------------------
    def read(self) -> StackState | None:
        try:
            return StackState.from_json(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return None  # half-understood state is treated as none; pids are re-checked

    def write(self, state: StackState) -> None:
        # 0600: it holds the app's DATABASE_URL / REDIS_URL, which may carry passwords.
        write_atomic(self.state_file, state.to_json(), mode=0o600)

    def clear(self) -> None:
        self.state_file.unlink(missing_ok=True)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` through a temp file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
