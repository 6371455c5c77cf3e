"""The lab's door to the package registries: tinyproxy on the machine's loopback, behind
a unix socket that a relay inside each host's network namespace forwards to.

Hosts have no route out (their namespace holds only ``lo``); a unix socket crosses
namespaces because it lives in the file system, which the relay shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flaskprod.stack import process
from flaskprod.stack.ports import free_port

_CONFIG = """\
Port {port}
Listen 127.0.0.1
Allow 127.0.0.1
Timeout 120
MaxClients 64
ConnectPort 443
ConnectPort 80
LogLevel Warning
"""


@dataclass
class PackageProxy:
    socket: Path
    processes: list[process.Process]

    @classmethod
    def start(cls, workdir: Path) -> PackageProxy:
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = workdir / "tinyproxy.conf"
        config.write_text(_CONFIG.format(port=port))
        socket = workdir / "proxy.sock"
        socket.unlink(missing_ok=True)
        # -d: stay in the foreground, so the pid we keep is tinyproxy's own.
        tiny = process.start(
            ["tinyproxy", "-d", "-c", str(config)],
            name="tinyproxy",
            log_path=workdir / "tinyproxy.log",
        )
        relay = process.start(
            ["socat", f"UNIX-LISTEN:{socket},fork,mode=600", f"TCP:127.0.0.1:{port}"],
            name="proxy-relay",
            log_path=workdir / "proxy-relay.log",
        )
        return cls(socket=socket, processes=[tiny, relay])

    def stop(self) -> None:
        for proc in reversed(self.processes):
            process.stop_pid(proc.pid, expected_start=proc.started, timeout=5.0)
        self.socket.unlink(missing_ok=True)
