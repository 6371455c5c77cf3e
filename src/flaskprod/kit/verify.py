"""Test what ``init`` and ``render`` rendered with the real tool, before it is written.

nginx is the one artifact whose refusal shows only when it is loaded (a duplicate
``location /`` passes every template and fails at ``up`` or on the server): the site
is run through ``nginx -t`` exactly as ``up`` would run it (the same overlay: local
certificate, temporary folders), so a kit nginx refuses is never written.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from flaskprod.spec.model import Spec
from flaskprod.stack.nginx import NGINX_CANDIDATES, Overlay, nginx_command, prepare_nginx


def nginx_binary() -> str | None:
    """nginx on this machine, or None (then the site cannot be tested here)."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((c for c in NGINX_CANDIDATES if Path(c).is_file()), None)


def nginx_refusal(site_text: str, spec: Spec, binary: str) -> str | None:
    """nginx's first error for the rendered site, or None when ``nginx -t`` accepts it."""
    from flaskprod.stack.ca import ensure_ca

    with tempfile.TemporaryDirectory(prefix="flaskprod-nginx-t-") as temporary:
        folder = Path(temporary)
        site = folder / "rendered.conf"
        site.write_text(site_text, encoding="utf-8")
        tls = ensure_ca(folder / "tls")
        overlay = Overlay(
            https_port=8443,
            http_port=8080,  # nginx -t binds nothing: any ports will do
            certificate=tls.server_cert,
            certificate_key=tls.server_key,
            socket_from=spec.socket_path,
            socket_to=folder / "app.sock",
            folders=((spec.static_dir, folder / "static"), (spec.media_dir, folder / "media")),
            logs=folder,
            prefix=folder / "prefix",
            canonical_domain=spec.app.domains[0],
        )
        files = prepare_nginx(site, overlay)
        result = subprocess.run(
            nginx_command(binary, files, "-t", "-q"),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.splitlines() if "[emerg]" in line]
    first = (lines or result.stderr.splitlines() or ["nginx -t failed"])[0]
    # "... [emerg] 16227#16227: duplicate location "/" in /tmp/.../site.conf:88"
    message = first.split("[emerg] ", 1)[-1].split(" in /", 1)[0]
    return re.sub(r"^\d+#\d+: ", "", message)
