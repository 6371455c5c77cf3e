"""A trial's GETs through the stack's nginx+TLS (trusting its local CA): the home page
and what a browser would refuse on it under its CSP, one static file byte for byte, the
health and ready paths."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from bench.trials_csp import blocked, resources
from bench.trials_steps import TIMEOUTS, Step, first_error, server_error


def static_file(app: Path, spec: dict[str, Any]) -> tuple[str, Path] | None:
    """One file of the app's static folder and its URL (a stylesheet or script first)."""
    folder = app / spec["static_dir"]
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: (p.suffix not in (".css", ".js"), len(p.parts), str(p)))
    if not files:
        return None
    prefix = "/" + spec["static_url"].strip("/")
    url = f"{prefix.rstrip('/')}/{files[0].relative_to(folder).as_posix()}"
    return url, files[0]


def http_steps(app: Path, https_port: int, spec: dict[str, Any]) -> Iterator[Step]:
    """GET through nginx+TLS, trusting the stack's local CA."""
    ca = app / ".flaskprod" / "tls" / "ca.pem"
    base = f"https://localhost:{https_port}"
    context = ssl.create_default_context(cafile=str(ca))
    found = static_file(app, spec)
    wanted: list[tuple[str, str | None, bytes | None]] = [("get-home", "/", None)]
    if found is not None:
        wanted.append(("get-static", found[0], found[1].read_bytes()))
    elif (app / spec["static_dir"]).exists():
        wanted.append(("get-static", None, None))  # a folder without files: a failure
    else:  # no static folder (assets served by the app, or an API): what the page loads
        wanted.append(("get-static", _FROM_HOME, None))
    wanted += [("get-health", spec["health_path"], None), ("get-ready", spec["ready_path"], None)]
    home_asset: str | None = None
    with httpx.Client(verify=context, base_url=base, timeout=TIMEOUTS["http"]) as client:
        for name, path, body in wanted:
            if path is None:
                yield Step(name, "(none)", False, 0.0, first_error="no file in the static folder")
                continue
            if path == _FROM_HOME:
                if home_asset is None:
                    shown = f"no {spec['static_dir']}/ folder, no same-origin asset on the page"
                    yield Step(name, "(none)", True, 0.0, output=shown)
                    continue
                path = home_asset
            began = time.monotonic()
            command = f"GET {base}{path}"
            try:
                response = client.get(path, follow_redirects=True)
            except httpx.HTTPError as exc:
                took = round(time.monotonic() - began, 1)
                yield Step(name, command, False, took, first_error=f"{type(exc).__name__}: {exc}")
                continue
            took = round(time.monotonic() - began, 1)
            hops = " -> ".join(
                f"{r.status_code} {r.headers.get('location', '')}" for r in response.history
            )
            status = f"{hops} -> " if hops else ""
            status += f"{response.status_code} {response.headers.get('content-type', '')}"
            ok = response.status_code == 200 and (body is None or response.content == body)
            error = None
            if response.status_code != 200:
                error = f"{response.status_code}: {first_error(response.text)}"
                if response.status_code >= 500:
                    error += f" — {server_error(app) or 'no exception in the server log'}"
            elif body is not None and response.content != body:
                error = f"200 but {len(response.content)} bytes, the file has {len(body)}"
            yield Step(
                name,
                command,
                ok,
                took,
                first_error=error,
                output=f"{status}, {len(response.content)} bytes",
                data={"status": response.status_code},
            )
            if name == "get-home" and ok:
                yield csp_step(response)
                home_asset = same_origin_asset(response)


_FROM_HOME = "(the first same-origin asset of the home page)"


def same_origin_asset(response: httpx.Response) -> str | None:
    """The path of the first stylesheet, script or image the page loads from its own
    origin (the assets an app serves itself, CTFd's themes for one)."""
    page = urlsplit(str(response.url))
    for resource in resources(response.text):
        if resource.url is None:
            continue
        url = urlsplit(urljoin(str(response.url), resource.url))
        if (url.scheme, url.netloc) == (page.scheme, page.netloc):
            return url.path + (f"?{url.query}" if url.query else "")
    return None


def csp_step(response: httpx.Response) -> Step:
    """Whether a browser would load what the home page names under the policy it came
    with (a 200 page whose stylesheet the CSP refuses is still a broken page)."""
    header = response.headers.get("content-security-policy", "")
    refused = blocked(response.text, str(response.url), header) if header else []
    report_only = response.headers.get("content-security-policy-report-only")
    shown = f"Content-Security-Policy: {header}" if header else "no enforced CSP"
    if report_only:  # reported, not enforced: nothing is blocked by it
        shown += f" (Report-Only: {report_only[:160]})"
    return Step(
        "csp-home",
        f"the resources of {response.url.path}",
        not refused,
        0.0,
        first_error=f"the CSP blocks {len(refused)}: {', '.join(refused[:6])}" if refused else None,
        output=shown + ("" if refused else "; nothing on the page is blocked"),
        data={"blocked": refused},
    )
