"""A throwaway (or project-local) redis-server on 127.0.0.1 with a generated config."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import BinaryIO, Unpack
from urllib.parse import quote

from flaskprod.errors import EnvironmentProblem
from flaskprod.stack import process
from flaskprod.stack.ports import LOOPBACK
from flaskprod.stack.server import LoopbackServer, ServerOptions

INSTALL_HINT = "apt-get install redis-server"


def find_redis_server(binary: Path | None = None) -> Path:
    """``binary`` if given and present, else ``redis-server`` on PATH."""
    found = str(binary) if binary is not None and binary.is_file() else None
    if binary is None:
        found = shutil.which("redis-server")
    if found is None:
        where = str(binary) if binary is not None else "PATH"
        raise EnvironmentProblem(f"redis-server not found in {where}", hint=INSTALL_HINT)
    return Path(found)


def _quote(value: str) -> str:
    # redis.conf strings: double quotes with backslash escapes.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RedisServer(LoopbackServer):
    """redis-server with its config, data and log in ``dir``, on ``127.0.0.1:port``.

    No persistence unless ``persistence=True`` (append-only file in ``dir``), so a
    restart starts empty by default. ``port``, ``die_with_parent`` and ``stop_at_exit``
    as for :class:`~flaskprod.stack.server.LoopbackServer`; :meth:`stop` sends SIGTERM
    (redis saves the append-only file if persistent).
    """

    name = "redis-server"

    def __init__(
        self,
        dir: Path,
        port: int | None = None,
        password: str | None = None,
        *,
        persistence: bool = False,
        maxmemory: str | None = None,
        maxmemory_policy: str | None = None,
        binary: Path | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        super().__init__(port, **options)
        self.dir = Path(dir).absolute()
        self.binary = find_redis_server(binary)
        self.password = password
        self.persistence = persistence
        #: The spec's limit and what is evicted at it (a job queue: noeviction).
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.config_path = self.dir / "redis.conf"
        self.log_path = self.dir / "redis.log"

    def url(self, db: int = 0) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{LOOPBACK}:{self.port}/{db}"

    def _write_config(self) -> None:
        lines = [
            "# Written by flaskprod.stack.redis; rewritten on every start.",
            f"bind {LOOPBACK}",
            f"port {self.port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',  # stdout, which goes to our log file
            f"dir {_quote(str(self.dir))}",
            'save ""',
            f"appendonly {'yes' if self.persistence else 'no'}",
        ]
        if self.password:
            lines.append(f"requirepass {_quote(self.password)}")
        if self.maxmemory:
            lines.append(f"maxmemory {self.maxmemory}")
        if self.maxmemory_policy:
            lines.append(f"maxmemory-policy {self.maxmemory_policy}")
        tmp = self.config_path.with_name(".redis.conf.tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o600)  # it may hold the password
        tmp.replace(self.config_path)

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def _launch(self, port: int) -> process.Process:
        self._write_config()
        return process.start(
            [str(self.binary), str(self.config_path)],
            name=f"{self.name} on port {port}",
            log_path=self.log_path,
            cwd=self.dir,
            die_with_parent=self.die_with_parent,
        )

    def command(self, *args: str, timeout: float = 1.0) -> bytes:
        """Send one command and return its reply (bulk payload, or the status line).

        Speaks RESP over a socket itself, so that starting a server needs no client
        library. Raises :class:`OSError` when unreachable, ``RuntimeError`` on an error reply.
        """
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as sock:
            reader = sock.makefile("rb")
            if self.password:
                _send(sock, ["AUTH", self.password])
                _read_reply(reader)
            _send(sock, list(args))
            return _read_reply(reader)

    def _ready(self) -> bool:
        # INFO's process_id proves we reached our server, not another on the same port.
        try:
            # Short: if another server holds the port, it may accept and never answer.
            reply = self.command("INFO", "server", timeout=0.25)
        except OSError:
            return False
        return self._process is not None and f"process_id:{self._process.pid}\r".encode() in reply

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer({str(self.dir)!r}, port={self.port}, {state})"


def _send(sock: socket.socket, args: list[str]) -> None:
    parts = [arg.encode() for arg in args]
    sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))


def _read_reply(reader: BinaryIO) -> bytes:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed by redis-server")
    kind, rest = line[:1], line[1:-2]
    if kind == b"-":
        raise RuntimeError(rest.decode(errors="replace"))
    if kind == b"$":
        size = int(rest)
        return b"" if size < 0 else reader.read(size + 2)[:-2]
    return rest
