"""The probes of ``flaskprod check --url``: every request a reviewer would make by hand
with curl and openssl, run concurrently under ONE total timeout.

Each probe returns a JSON-safe value or fails; :func:`run_probes` records an
:class:`Outcome` per probe, and a probe still running when the budget is spent is
cancelled and recorded as timed out (rules report that, never a pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from flaskprod.check.live.tls import certificate_facts, protocol_accepted, verify_error

#: Paths probed for liveness/readiness when there is no spec.
COMMON_HEALTH = ("/health", "/healthz", "/livez", "/health/live", "/ready", "/readyz", "/up")
#: How long a health path may take (the issue's "within a second").
HEALTH_BUDGET = 1.0
#: How long we wait for a slow health path anyway, to still read its answer (a
#: readiness document reporting a failed dependency matters even when it is slow).
HEALTH_CAP = 5.0
#: Static assets inspected from the home page.
MAX_ASSETS = 6
_ASSET = re.compile(r"\.(css|js|mjs|svg|png|jpe?g|gif|webp|ico|woff2?|ttf)$")
_BODY_LIMIT = 256 * 1024


@dataclass
class Outcome:
    """What one probe found: its value, or why it has none."""

    value: Any = None
    error: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out

    def why_not(self, timeout: float) -> str:
        if self.timed_out:
            return f"the probe did not finish within the total timeout of {timeout:g}s"
        return self.error or "no result"


@dataclass
class LiveReport:
    url: str
    http_url: str | None
    timeout: float
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    duration: float = 0.0

    def get(self, name: str) -> Outcome:
        return self.outcomes.get(name, Outcome(error="not probed"))


@dataclass(frozen=True)
class ProbeSettings:
    url: str
    ca: str | None = None
    timeout: float = 10.0
    crawl: int = 0
    http_url: str | None = None
    health_paths: tuple[str, ...] = ()
    ready_path: str | None = None
    max_body: int | None = None
    static_prefix: str | None = None


def response_record(response: httpx.Response, elapsed: float | None = None) -> dict[str, Any]:
    """A response as rules read it: header names lower-cased, repeated headers kept."""
    content = response.content[:_BODY_LIMIT]
    return {
        "url": str(response.url),
        "status": response.status_code,
        "headers": [(k.lower(), v) for k, v in response.headers.multi_items()],
        "body": content.decode("utf-8", errors="replace"),
        "size": len(response.content),
        "elapsed": elapsed,
    }


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in ("href", "src"):
                self.links.append(value)


def links_of(html: str, base: str) -> list[str]:
    """Same-origin absolute URLs linked from a page (fragments dropped), in order."""
    parser = _Links()
    # A broken page yields the links read so far.
    with contextlib.suppress(Exception):
        parser.feed(html)
    origin = urlsplit(base)[:2]
    seen: dict[str, None] = {}
    for link in parser.links:
        absolute = urljoin(base, link.strip())
        parts = urlsplit(absolute)
        if parts[:2] == origin:
            seen[urlunsplit((*parts[:4], ""))] = None
    return list(seen)


def ssl_context(ca: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()


class Prober:
    def __init__(self, settings: ProbeSettings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        parts = urlsplit(settings.url)
        # Paths (health, the debugger, a missing page) are the site's, from its origin:
        # --url https://host/auth/login probes that page, and /health, not
        # /auth/login/health.
        self.base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 443
        self._home: asyncio.Future[dict[str, Any]] | None = None

    async def home(self) -> dict[str, Any]:
        """The home page, fetched once and shared by the probes that read it."""
        if self._home is None:
            self._home = asyncio.ensure_future(self._get(self.settings.url))
        return await asyncio.shield(self._home)

    async def _get(self, url: str, **kw: Any) -> dict[str, Any]:
        started = time.perf_counter()
        response = await self.client.get(url, **kw)
        return response_record(response, time.perf_counter() - started)

    async def redirect(self) -> dict[str, Any]:
        """Follow the plain-http entry by hand (at most 5 hops), keeping every hop."""
        if not self.settings.http_url:
            return {"skipped": "no http address known"}
        marker = f"/flaskprod-path-check?probe={secrets.token_hex(4)}"
        url = self.settings.http_url.rstrip("/") + marker
        hops: list[dict[str, Any]] = []
        try:
            for _ in range(5):
                response = await self.client.get(url)
                location = response.headers.get("location")
                hops.append({"url": url, "status": response.status_code, "location": location})
                if not response.is_redirect or not location:
                    break
                url = urljoin(url, location)
                if url.startswith("https://"):
                    hops.append({"url": url, "status": None, "location": None})
                    break
        except httpx.ConnectError as error:
            if not hops:
                return {"no_http": str(error) or "connection refused"}
            raise
        return {"hops": hops, "marker": marker}

    async def certificate(self) -> dict[str, Any]:
        facts = await asyncio.to_thread(certificate_facts, self.host, self.port)
        facts["verify_error"] = await asyncio.to_thread(
            verify_error, self.host, self.port, self.settings.ca
        )
        if self.settings.ca:
            facts["public_verify_error"] = await asyncio.to_thread(
                verify_error, self.host, self.port, None
            )
        return facts

    async def protocols(self) -> dict[str, bool | None]:
        names = ("TLSv1", "TLSv1_1", "TLSv1_3")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            results = await asyncio.gather(
                *(asyncio.to_thread(protocol_accepted, self.host, self.port, n) for n in names)
            )
        return dict(zip(names, results, strict=True))

    async def debugger(self) -> dict[str, Any]:
        url = f"{self.base}/?__debugger__=yes&cmd=resource&f=debugger.js"
        return await self._get(url)

    async def not_found(self) -> dict[str, Any]:
        return await self._get(f"{self.base}/flaskprod-missing-{secrets.token_hex(6)}")

    async def health(self) -> dict[str, Any]:
        paths = self.settings.health_paths or COMMON_HEALTH
        results = await asyncio.gather(*(self._timed(path) for path in paths))
        return {"from_spec": bool(self.settings.health_paths), "paths": dict(results)}

    async def _timed(self, path: str) -> tuple[str, dict[str, Any]]:
        started = time.perf_counter()
        try:
            record = await asyncio.wait_for(self._get(self.base + path), HEALTH_CAP)
        except TimeoutError:
            return path, {"status": None, "elapsed": time.perf_counter() - started, "slow": True}
        except httpx.HTTPError as error:
            return path, {"status": None, "error": f"{type(error).__name__}: {error}"}
        record["slow"] = record["elapsed"] > HEALTH_BUDGET
        return path, record

    async def assets(self) -> list[dict[str, Any]]:
        home = await self.home()
        urls = [u for u in links_of(home["body"], home["url"]) if _ASSET.search(urlsplit(u).path)]
        prefix = self.settings.static_prefix
        if prefix:  # the spec's static files first
            urls.sort(key=lambda u: not urlsplit(u).path.startswith(prefix))
        urls = urls[:MAX_ASSETS]
        headers = {"accept-encoding": "gzip, br"}
        return list(await asyncio.gather(*(self._get(u, headers=headers) for u in urls)))

    async def upload(self) -> dict[str, Any]:
        """Announce a body one byte over the limit and send none of it: a proxy that
        enforces the limit answers 413 at once from the headers alone."""
        limit = self.settings.max_body
        if limit is None:
            return {"skipped": "no body limit known (no flaskprod.toml)"}
        path = self.settings.health_paths[0] if self.settings.health_paths else "/"
        context = ssl_context(self.settings.ca)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=context, server_hostname=self.host
        )
        try:
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {urlsplit(self.settings.url).netloc}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {limit + 1}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(request.encode())
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
            except TimeoutError:
                return {"limit": limit, "status": None, "waited": True}
            body = b""  # a little of the body: whose error page it is
            with contextlib.suppress(TimeoutError):
                body = await asyncio.wait_for(reader.read(1024), 1.0)
        finally:
            writer.close()
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        server = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("server:")), ""
        )
        # Werkzeug's own 413 page: the app refused it, after the proxy let it through.
        by_app = b"<h1>Request Entity Too Large</h1>" in body
        return {"limit": limit, "status": status, "server": server, "by_app": by_app}

    async def crawl(self) -> list[dict[str, Any]]:
        """Breadth-first over same-origin links, at most ``crawl`` pages."""
        budget = self.settings.crawl
        if budget <= 0:
            return []
        home = await self.home()
        queue = links_of(home["body"], home["url"])
        seen = {home["url"], *queue}
        pages: list[dict[str, Any]] = []
        while queue and len(pages) < budget:
            batch, queue = queue[: budget - len(pages)], queue[budget - len(pages) :]
            records = await asyncio.gather(*(self._get(u) for u in batch), return_exceptions=True)
            for url, record in zip(batch, records, strict=True):
                if isinstance(record, BaseException):
                    pages.append({"url": url, "status": None, "error": str(record)})
                    continue
                pages.append({k: record[k] for k in ("url", "status", "headers", "body")})
                if "html" in dict(record["headers"]).get("content-type", ""):
                    for link in links_of(record["body"], record["url"]):
                        if link not in seen:
                            seen.add(link)
                            queue.append(link)
        return pages


PROBES: dict[str, Callable[[Prober], Awaitable[Any]]] = {
    "home": Prober.home,
    "redirect": Prober.redirect,
    "certificate": Prober.certificate,
    "protocols": Prober.protocols,
    "debugger": Prober.debugger,
    "not_found": Prober.not_found,
    "health": Prober.health,
    "assets": Prober.assets,
    "upload": Prober.upload,
    "crawl": Prober.crawl,
}


async def _run(settings: ProbeSettings) -> LiveReport:
    report = LiveReport(settings.url, settings.http_url, settings.timeout)
    started = time.perf_counter()
    verify: ssl.SSLContext | bool = ssl_context(settings.ca)
    if urlsplit(settings.url).scheme != "https":
        verify = False
    # verify against --ca when given; certificate problems are the certificate probe's
    # to report, so the other probes still run against an untrusted certificate.
    insecure = ssl_context(settings.ca)
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    async with httpx.AsyncClient(
        verify=insecure if verify is not False else False,
        timeout=settings.timeout,
        follow_redirects=False,
        headers={"user-agent": "flaskprod-check"},
        limits=httpx.Limits(max_connections=16),
    ) as client:
        prober = Prober(settings, client)
        tasks = {name: asyncio.ensure_future(probe(prober)) for name, probe in PROBES.items()}
        _done, pending = await asyncio.wait(tasks.values(), timeout=settings.timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for name, task in tasks.items():
            if task in pending:
                report.outcomes[name] = Outcome(timed_out=True)
            elif task.exception() is not None:
                error = task.exception()
                report.outcomes[name] = Outcome(error=f"{type(error).__name__}: {error}")
            else:
                report.outcomes[name] = Outcome(value=task.result())
    report.duration = time.perf_counter() - started
    return report


def run_probes(settings: ProbeSettings) -> LiveReport:
    return asyncio.run(_run(settings))
