"""``storage.kind = "s3"`` under ``flaskprod up``: the shop's uploads live in a bucket of
a real SeaweedFS (its S3 gateway) that up runs, nginx serves them at /media/ over TLS
from that bucket, the RQ worker makes thumbnails from and into it — and the bucket is
not writable or listable without the app's keys."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from shop_http import add_product, png, sign_up

from flaskprod.runtime.storage import s3_client

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(REPO))

from bench.shop_stack import RunningShop, copy_shop, running_shop  # noqa: E402

pytestmark = pytest.mark.services

TOKEN = "storage-token-0123456789abcdef0123456789"
PASSWORD = "storage-test-password-1"


@pytest.fixture(scope="module")
def shop() -> Iterator[RunningShop]:
    project = copy_shop("flaskprod-s3-")
    spec = project / "flaskprod.toml"
    spec.write_text(spec.read_text().replace("\n[tls]\n", '\n[storage]\nkind = "s3"\n\n[tls]\n', 1))
    with running_shop(RunningShop.on_free_ports(project, token=TOKEN)) as stack:
        yield stack
    assert not stack.leftovers, f"flaskprod down left {stack.leftovers} running"


def test_an_upload_is_stored_in_the_bucket_and_served_through_nginx(shop: RunningShop) -> None:
    env = shop.env
    assert env["MEDIA_BUCKET"] == "shop-media"
    s3 = s3_client(env)
    media = shop.dirs.media
    seeded = s3.list_objects_v2(Bucket="shop-media")["KeyCount"]
    assert seeded >= 3  # flask seed's demo images went to the bucket...
    assert not [p for p in media.rglob("*") if p.is_file()]  # ...not to the folder
    upload = png((900, 600), "orange")
    with shop.client() as client:
        sign_up(client, shop.url, "s3", PASSWORD)
        began = time.monotonic()
        product = add_product(client, shop.url, "S3 mug", "9.90", upload)
        found = client.get(f"/api/products/{product}").json()
        key = found["image_url"].removeprefix("/media/")
        # read back through the S3 API, with the app's keys
        stored = s3.get_object(Bucket="shop-media", Key=key)
        assert stored["Body"].read() == upload
        assert stored["ContentType"] == "image/png"
        # and at its URL, through nginx and TLS
        served = client.get(found["image_url"])
        assert served.status_code == 200, served.text[:200]
        assert served.content == upload
        assert served.headers["Content-Type"] == "image/png"
        assert "immutable" in served.headers["Cache-Control"]  # a uuid name
        assert "x-amz-request-id" not in served.headers
        # the worker's thumbnail, made from the bucket into the bucket
        thumbnail = None
        while time.monotonic() - began < 20 and thumbnail is None:
            thumbnail = client.get(f"/api/products/{product}").json()["thumbnail_url"]
            time.sleep(0.2)
        assert thumbnail is not None, "no thumbnail within 20 s"
        made = time.monotonic() - began
        thumb = client.get(thumbnail)
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
        with Image.open(io.BytesIO(thumb.content)) as image:
            assert max(image.size) == 320
        assert s3.head_object(Bucket="shop-media", Key=thumbnail.removeprefix("/media/"))
        # what the bucket refuses to the public, through nginx and directly
        assert client.get("/media/").status_code == 404  # no listing
        assert client.get("/media/no-such-file.png").status_code == 404
        # refused (403, shown as the 404 of any missing file), the object unchanged below
        assert client.put(f"/media/{key}", content=b"x").status_code == 404
    gateway = env["AWS_ENDPOINT_URL_S3"]
    assert httpx.put(f"{gateway}/shop-media/{key}", content=b"evil").status_code == 403
    assert httpx.get(f"{gateway}/shop-media?list-type=2").status_code == 403
    assert s3.get_object(Bucket="shop-media", Key=key)["Body"].read() == upload
    assert "shop.jobs.make_thumbnail" in shop.log("process-worker").read_text()
    print(f"upload stored in the bucket; thumbnail from and into it after {made:.2f} s")
