"""The workloads, each a separate measurement, for wrk (Lua) and the open-loop client.

Both generators build the same requests from one description, so the closed-loop
maximum and the fixed-rate latency run measure the same thing.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

#: The mix: a browsing-heavy shop (a page view reads the list or a product; few buy).
#: Static files are the share that misses the browser cache (they are immutable).
MIX = (("products", 40), ("product", 40), ("order", 5), ("static", 15))


@dataclass(frozen=True)
class Target:
    """What the workloads need to know about the shop being measured."""

    host: str  # Host header (nginx's server_name)
    product_ids: tuple[int, ...]
    token: str
    static_path: str = "/static/style.css"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


RequestFactory = Callable[[], Request]


def _order(target: Target, rng: random.Random) -> Request:
    product = rng.choice(target.product_ids)
    body = json.dumps({"items": [{"product_id": product, "quantity": 1}]}).encode()
    return Request(
        "POST",
        "/api/orders",
        {
            "Authorization": f"Bearer {target.token}",
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        },
        body,
    )


def factory(name: str, target: Target, seed: int = 1) -> RequestFactory:
    """Python side: a function returning the next request of workload ``name``."""
    rng = random.Random(seed)
    if name == "hello":
        return lambda: Request("GET", "/")
    if name == "products":
        return lambda: Request("GET", "/api/products")
    if name == "product":
        return lambda: Request("GET", f"/api/products/{rng.choice(target.product_ids)}")
    if name == "order":
        return lambda: _order(target, rng)
    if name == "static":
        return lambda: Request("GET", target.static_path)
    if name == "mix":
        parts = {part: factory(part, target, seed + index) for index, (part, _) in enumerate(MIX)}
        names = [part for part, _ in MIX]
        weights = [weight for _, weight in MIX]
        return lambda: parts[rng.choices(names, weights)[0]]()
    raise ValueError(f"unknown workload {name!r}")


# -- wrk (Lua) -------------------------------------------------------------------------

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, '
    .. '"read": %d, "write": %d, "status": %d, "timeout": %d, '
    .. '"p50_us": %d, "p99_us": %d, "p999_us": %d, "mean_us": %.1f, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
"""

_COMMON = """
local counter = 0
local thread_id = 0
local nonce = "%(nonce)s"
local ids = {%(ids)s}
local token = "%(token)s"
local host = "%(host)s"
math.randomseed(%(seed)d)

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

local function get(path)
  return wrk.format("GET", path, {["Host"] = host})
end

local function product()
  return get("/api/products/" .. ids[math.random(#ids)])
end

local function order()
  counter = counter + 1
  local body = '{"items": [{"product_id": ' .. ids[math.random(#ids)] .. ', "quantity": 1}]}'
  return wrk.format("POST", "/api/orders", {
    ["Host"] = host,
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = nonce .. "-" .. tostring(tid) .. "-" .. counter,
    ["Content-Type"] = "application/json",
  }, body)
end
"""

_REQUEST = {
    "hello": 'request = function() return get("/") end',
    # A new connection per request (a TLS handshake each, on an https URL).
    "hello-close": (
        'request = function() return wrk.format("GET", "/", '
        '{["Host"] = host, ["Connection"] = "close"}) end'
    ),
    "products": 'request = function() return get("/api/products") end',
    "product": "request = product",
    "order": "request = order",
    "static": 'request = function() return get("%(static)s") end',
    "mix": """
local weights = {%(weights)s}
local total = 0
for _, w in ipairs(weights) do total = total + w end
request = function()
  local pick = math.random(total)
  if pick <= weights[1] then return get("/api/products") end
  pick = pick - weights[1]
  if pick <= weights[2] then return product() end
  pick = pick - weights[2]
  if pick <= weights[3] then return order() end
  return get("%(static)s")
end
""",
}


def lua(name: str, target: Target, seed: int = 1) -> str:
    """wrk side: the Lua script of workload ``name``; its done() prints one WRKJSON line."""
    assert [part for part, _ in MIX] == ["products", "product", "order", "static"]
    values = {
        "nonce": uuid.uuid4().hex[:12],
        "ids": ", ".join(str(i) for i in target.product_ids) or "1",
        "token": target.token,
        "host": target.host,
        "seed": seed,
        "static": target.static_path,
        "weights": ", ".join(str(weight) for _, weight in MIX),
    }
    return (_COMMON % values) + (_REQUEST[name] % values) + "\n" + _DONE
