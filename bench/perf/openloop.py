"""Fixed-rate (open-loop) latency, free of coordinated omission.

wrk is closed-loop: a slow response delays the next request on that connection, so
the stall is measured once instead of for every request that should have been sent
meanwhile (Gil Tene's "coordinated omission"); wrk2 fixes it but is not in Debian.
Here request ``i`` is *due* at ``t0 + i / rate`` whatever happened before, and its
latency runs from that due time, not from when a free connection could send it:
waiting for a connection counts as latency, as it would for a real user.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

from bench.perf.workloads import Request, RequestFactory

TIMEOUT = 5.0


@dataclass(frozen=True)
class OpenLoopResult:
    rate: float  # requests per second asked for
    sent: int
    achieved_rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    status_errors: int  # answers other than 2xx
    socket_errors: int  # refused, reset, timed out, unparsable
    client_cpu_seconds: float


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def encode(request: Request, host: str) -> bytes:
    head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}"]
    head += [f"{name}: {value}" for name, value in request.headers.items()]
    if request.body or request.method == "POST":
        head.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + request.body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep the connection) of one HTTP/1.1 response, body consumed."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # until the server closes
        return status, False
    return status, headers.get("connection") != "close"


async def _run(
    host: str,
    port: int,
    server_name: str,
    tls: ssl.SSLContext | None,
    factory: RequestFactory,
    rate: float,
    seconds: float,
    connections: int,
) -> tuple[list[float], int, int, float]:
    loop = asyncio.get_running_loop()
    total = max(1, int(rate * seconds))
    next_index = 0
    latencies: list[float] = []
    failures = {"status": 0, "socket": 0}
    start = loop.time() + 0.2

    async def connection() -> None:
        nonlocal next_index
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while next_index < total:
            index = next_index
            next_index += 1
            due = start + index / rate
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            payload = encode(factory(), server_name)
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(
                            host, port, ssl=tls, server_hostname=server_name if tls else None
                        ),
                        TIMEOUT,
                    )
                assert reader is not None and writer is not None
                writer.write(payload)
                status, keep = await asyncio.wait_for(_read_response(reader), TIMEOUT)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                failures["socket"] += 1
                latencies.append(loop.time() - due)
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            latencies.append(loop.time() - due)
            if not 200 <= status < 300:
                failures["status"] += 1
            if not keep and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = loop.time() - start
    return latencies, failures["status"], failures["socket"], elapsed


def run_open_loop(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    rate: float,
    seconds: float,
    server_name: str = "localhost",
    tls: ssl.SSLContext | None = None,
    connections: int = 64,
) -> OpenLoopResult:
    cpu = time.process_time()
    latencies, status_errors, socket_errors, elapsed = asyncio.run(
        _run(host, port, server_name, tls, factory, rate, seconds, connections)
    )
    cpu = time.process_time() - cpu
    ordered = sorted(latencies)
    return OpenLoopResult(
        rate=rate,
        sent=len(ordered),
        achieved_rps=len(ordered) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        p999_ms=percentile(ordered, 99.9) * 1000,
        status_errors=status_errors,
        socket_errors=socket_errors,
        client_cpu_seconds=cpu,
    )


def client_tls() -> ssl.SSLContext:
    """The benchmark measures the server, not certificate checks: no verification
    (loopback only, our own local CA), TLS 1.2+ as browsers negotiate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
