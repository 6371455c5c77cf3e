"""Pebble (Let's Encrypt's test ACME server, Debian package ``pebble``) inside a lab
host's network: certbot on the host gets a real certificate from it by the real ACME
protocol, at ``https://127.0.0.1:14000/dir`` of the host's own loopback.

Pebble's HTTPS certificate comes from a local CA made for the lab (give its ``ca.pem``
to certbot: ``tls.acme_ca``). The challenges are not validated (no DNS here:
``PEBBLE_VA_ALWAYS_VALID``); everything else — account, order, finalize, the chain —
is the protocol certbot speaks to Let's Encrypt.
"""

from __future__ import annotations

import json
import shutil
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from flaskprod.errors import EnvironmentProblem, ServiceFailed
from flaskprod.lab.host import LabHost
from flaskprod.stack import process
from flaskprod.stack.ca import ensure_ca

ACME_PORT = 14000
MANAGEMENT_PORT = 15000


@dataclass
class Pebble:
    host: LabHost
    server: process.Process
    #: The CA that signed pebble's own HTTPS certificate (certbot must trust it).
    ca_file: Path

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{ACME_PORT}/dir"

    @classmethod
    def start(cls, host: LabHost, workdir: Path) -> Pebble:
        binary = shutil.which("pebble")
        if binary is None:
            raise EnvironmentProblem(
                "pebble is not installed (the lab's ACME server)",
                hint="apt-get install pebble (scripts/bootstrap.sh installs it)",
            )
        workdir.mkdir(parents=True, exist_ok=True)
        tls = ensure_ca(workdir / "tls")
        config = workdir / "pebble.json"
        config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{ACME_PORT}",
                        "managementListenAddress": f"127.0.0.1:{MANAGEMENT_PORT}",
                        "certificate": str(tls.server_cert),
                        "privateKey": str(tls.server_key),
                        "httpPort": 80,
                        "tlsPort": 443,
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                    }
                }
            )
        )
        server = process.start(
            [*host.nsenter(network_only=True), binary, "-config", str(config)],
            name=f"{host.name}-pebble",
            log_path=workdir / "pebble.log",
            env={
                "PEBBLE_VA_ALWAYS_VALID": "1",
                "PEBBLE_VA_NOSLEEP": "1",
                "PEBBLE_WFE_NONCEREJECT": "0",
                "PEBBLE_AUTHZREUSE": "100",
            },
            die_with_parent=True,
        )
        host._helpers.append(server)  # stopped with the host, by pid
        pebble = cls(host=host, server=server, ca_file=tls.ca_cert)
        pebble._wait()
        return pebble

    def _wait(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.server.alive():
                raise ServiceFailed(f"pebble exited: {self.server.log_tail()}")
            probe = self.host.run(
                ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{ACME_PORT}"], check=False
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise ServiceFailed(f"pebble: not listening after {timeout:.0f}s")

    def issuing_roots(self) -> str:
        """PEM of pebble's root CA (made anew at each start): what a client must trust
        to verify a certificate pebble issued."""
        import httpx

        port = self.host.forward(MANAGEMENT_PORT)
        trusted = ssl.create_default_context(cafile=str(self.ca_file))
        response = httpx.get(f"https://127.0.0.1:{port}/roots/0", verify=trusted, timeout=10)
        response.raise_for_status()
        return response.text
