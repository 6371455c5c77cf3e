"""The shop's background job under ``flaskprod up``: creating a product with an image
answers at once (the request only queues the job), and the RQ worker up runs beside the
app server ([processes.worker]) makes its thumbnail within seconds, served by nginx."""

from __future__ import annotations

import io
import re
import time
import uuid

import httpx
from e2e_support import ShopStack
from PIL import Image

from flaskprod.stack.state import children_of

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PASSWORD = "worker-test-password-1"


def _form(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    match = _CSRF.search(page.text)
    assert match, path
    return match.group(1)


def _image() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1200, 800), "teal").save(out, format="PNG")
    return out.getvalue()


def test_the_thumbnail_job_runs_in_the_worker_within_seconds(shop_stack: ShopStack) -> None:
    keeper = shop_stack.pid("process-worker")
    assert children_of(keeper), "the worker runs under its keeper"
    referer = {"Referer": f"{shop_stack.url}/signup"}
    with shop_stack.client() as client:
        signup = client.post(
            "/signup",
            data={
                "csrf_token": _form(client, "/signup"),
                "email": f"seller-{uuid.uuid4().hex[:10]}@example.com",
                "password": PASSWORD,
                "confirm": PASSWORD,
            },
            headers=referer,
        )
        assert signup.status_code == 302, signup.text[:300]
        token = _form(client, "/products/new")
        began = time.monotonic()
        created = client.post(
            "/products/new",
            data={"csrf_token": token, "name": "Worker mug", "price": "9.90"},
            files={"image": ("mug.png", _image(), "image/png")},
            headers={"Referer": f"{shop_stack.url}/products/new"},
        )
        answered = time.monotonic() - began
        assert created.status_code == 302, created.text[:300]
        product = int(created.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        thumbnail = None
        while time.monotonic() - began < 15 and thumbnail is None:
            thumbnail = client.get(f"/api/products/{product}").json()["thumbnail_url"]
            time.sleep(0.1)
        made = time.monotonic() - began
        assert thumbnail is not None, "no thumbnail within 15 s"
        served = client.get(thumbnail)
        assert served.status_code == 200 and served.headers["Content-Type"] == "image/webp"
        with Image.open(io.BytesIO(served.content)) as image:
            assert max(image.size) == 320
    print(f"product created in {answered * 1000:.0f} ms; thumbnail served after {made:.2f} s")
    log = shop_stack.log("process-worker").read_text()
    assert "shop.jobs.make_thumbnail" in log  # the worker ran it, not the request
