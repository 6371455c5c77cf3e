"""A real project deployed exactly as the shop is: microblog (miguelgrinberg/microblog,
unchanged, from the shared real projects), after `flaskprod init` and nothing else but
the spec's [tls] pointing at the lab's ACME server: provisioned, released (its pinned
requirements, two of them published only as source; its translations compiled by its
build step; its Alembic migrations), its RQ worker running from the live release, and
the deploy's own checks of the host clean and of the site naming the one thing microblog
itself gets wrong (its session cookie without Secure)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
from flaskprod_cli import FLASKPROD
from real_projects import copy_project
from shop_project import set_tls

from flaskprod.lab import Lab
from flaskprod.lab.pebble import Pebble
from flaskprod.spec.load import load_spec


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


def test_microblog_is_deployed_with_its_worker_and_passes_the_deploys_checks(
    lab: Lab, tmp_path: Path
) -> None:
    host = lab.boot("microblog1")
    try:
        pebble = Pebble.start(host, tmp_path / "pebble")
        app = copy_project("microblog", tmp_path / "src")
        init = subprocess.run(
            [FLASKPROD, "init", str(app)], capture_output=True, text=True, timeout=300
        )
        assert init.returncode == 0, init.stderr
        set_tls(
            app,
            acme_directory=pebble.directory,
            acme_ca=str(pebble.ca_file),
            acme_email="ops@example.com",
        )
        _git(app, "add", "-A")
        _git(app, "commit", "-qm", "flaskprod init")
        https = host.forward(443)
        roots = tmp_path / "roots.pem"
        roots.write_text(pebble.issuing_roots())
        argv = [FLASKPROD, "deploy", str(app), "--host", host.name]
        argv += ["--ssh-config", str(lab.ssh_config)]
        argv += ["--check-url", f"https://localhost:{https}/", "--check-ca", str(roots)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        # Deployed and serving; the live check finds microblog's own session cookie sent
        # without Secure/SameSite (its config never sets them): exit 8, "deployed, but the
        # checks found errors" — and nothing else, on the site or the host.
        assert done.returncode == 8, done.stderr[-3000:]
        lines = done.stderr.splitlines()
        summaries = [line for line in lines if line.startswith("check --")]
        assert [line.partition(": ")[2] for line in summaries] == [
            "0 critical, 1 error, 0 warning, 1 info",
            "0 critical, 0 error, 0 warning, 2 info",
        ], summaries
        assert any(
            line.strip().startswith("LIV030 (error): session cookie 'session'") for line in lines
        )

        spec = load_spec(app / "flaskprod.toml")
        context = ssl.create_default_context(cafile=str(roots))
        with httpx.Client(
            base_url=f"https://localhost:{https}", verify=context, timeout=10
        ) as client:
            login = client.get("/auth/login")
            assert login.status_code == 200 and "Sign In" in login.text
            assert client.get(spec.http.ready_path).status_code == 200
            # its static files come from the live release, served by nginx
            gif = client.get("/static/loading.gif")
            shipped = (app / "app/static/loading.gif").read_bytes()
            assert gif.status_code == 200 and gif.content == shipped
        # its RQ worker (from its Procfile) runs the live release's code and listens on
        # the host's Redis
        assert host.run(["systemctl", "is-active", "microblog-worker.service"]).stdout.strip() == (
            "active"
        )
        unit = host.run(["systemctl", "cat", "microblog-worker.service"]).stdout
        assert "WorkingDirectory=/srv/microblog/current" in unit
        journal = host.run("journalctl -u microblog-worker.service --no-pager").stdout
        assert "microblog-tasks" in journal
    finally:
        host.kill()
