"""``make run-local``: serve the shop with gunicorn on SQLite at http://127.0.0.1:8000.

Production-shaped, not a development server: the production profile (JSON logs, the
startup checks), a generated SECRET_KEY kept in the instance folder (mode 0600,
created once), SQLite in the instance folder, migrations and the (idempotent) seed
run first, then gunicorn; the URL is printed once /health/ready answers 200.
No proxy is in front (TRUSTED_PROXIES=0) and no TLS yet (a later issue puts nginx
with TLS in front), so the session cookie is not marked Secure here and the app
serves the uploads itself.

Usage: python examples/shop/run_local.py [--host H] [--port P] [--instance DIR]
(``PORT=8001 make run-local`` picks another port.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0


def environment(instance: Path, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FLASKPROD_"))}
    env.pop("REDIS_URL", None)  # the embedded setup: signed-cookie sessions, DB-only reads
    env.update(
        {
            "FLASKPROD_ENV": "production",
            "SECRET_KEY": secret,
            "DATABASE_URL": f"sqlite:///{instance / 'shop.db'}",
            "TRUSTED_PROXIES": "0",
            "FLASKPROD_MEDIA_ROOT": str(instance / "media"),
            "FLASKPROD_SERVE_MEDIA": "true",
            # Plain HTTP on loopback: a Secure cookie would not come back from curl.
            "FLASKPROD_SESSION_COOKIE_SECURE": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def gunicorn_argv(bind: str, workers: int = 2) -> list[str]:
    """The gunicorn command (run it with ``cwd=HERE``); also used by the tests and
    bench/shop_memory.py, so that they measure what ``make run-local`` serves."""
    return [
        sys.executable, "-m", "gunicorn",
        "--config", str(HERE / "gunicorn_local.py"),
        "--bind", bind,
        "--workers", str(workers),
    ]  # fmt: skip


def flask(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=HERE,
        env=env,
        check=True,
        stdout=sys.stderr,  # stdout carries only JSON log lines
    )


def wait_ready(url: str, server: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health/ready", timeout=2) as response:  # noqa: S310 - our own http:// URL
                if response.status == 200:
                    return True
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--instance", type=Path, default=HERE / "instance")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from shop.secret import instance_secret

    from flaskprod.stack.ports import port_is_free

    if not port_is_free(args.port, args.host):
        print(
            f"run: port {args.port} on {args.host} is in use: stop what uses it, or pick "
            "another port:  PORT=8001 make run-local",
            file=sys.stderr,
        )
        return 3

    instance: Path = args.instance.resolve()
    env = environment(instance, instance_secret(instance))
    try:
        flask(env, "db", "upgrade")
        flask(env, "seed")
    except subprocess.CalledProcessError as error:
        print(
            f"run: '{' '.join(error.cmd[2:])}' failed with status {error.returncode}",
            file=sys.stderr,
        )
        return 1

    url = f"http://{args.host}:{args.port}"
    server = subprocess.Popen(
        gunicorn_argv(f"{args.host}:{args.port}", args.workers), cwd=HERE, env=env
    )
    # Ctrl-C reaches gunicorn too (same process group); TERM from a supervisor is passed on.
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        if wait_ready(url, server):
            print(
                json.dumps({"message": f"the shop is ready at {url}/", "url": url + "/"}),
                flush=True,
            )
            print(
                f"\n  the shop is ready: {url}/   (Ctrl-C stops it)\n", file=sys.stderr, flush=True
            )
        elif server.poll() is None:
            print(f"run: the shop did not become ready within {READY_TIMEOUT:g}s", file=sys.stderr)
            server.terminate()
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGINT)
        return server.wait()


if __name__ == "__main__":
    sys.exit(main())
