"""The shop's background job under ``flaskprod up``: creating a product with an image
answers at once (the request only queues the job), and the RQ worker up runs beside the
app server ([processes.worker]) makes its thumbnail within seconds, served by nginx."""

from __future__ import annotations

import io
import time

from e2e_support import ShopStack
from PIL import Image
from shop_http import add_product, csrf_token, png, sign_up

from flaskprod.stack.state import children_of

PASSWORD = "worker-test-password-1"


def test_the_thumbnail_job_runs_in_the_worker_within_seconds(shop_stack: ShopStack) -> None:
    keeper = shop_stack.pid("process-worker")
    assert children_of(keeper), "the worker runs under its keeper"
    with shop_stack.client() as client:
        sign_up(client, shop_stack.url, "seller", PASSWORD)
        token = csrf_token(client, "/products/new")
        began = time.monotonic()
        product = add_product(
            client, shop_stack.url, "Worker mug", "9.90", png((1200, 800), "teal"), token=token
        )
        answered = time.monotonic() - began
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
