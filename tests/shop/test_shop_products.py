"""Products: creating one with a real image upload, and the bad inputs around it."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from shop_helpers import csrf_token, png_bytes, signup, sqlite_only
from sqlalchemy import inspect, select

SQL_SHAPED = "'); DROP TABLE products;--"


def _post_product(client: FlaskClient, *, name: str, image: bytes, filename: str, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/products/new",
        data={
            "csrf_token": csrf_token(client, "/products/new"),
            "name": name,
            "description": extra.get("description", "A fine thing."),
            "price": extra.get("price", "12.50"),
            "image": (BytesIO(image), filename),
        },
        content_type="multipart/form-data",
    )


def _media_files(app: Flask) -> list[Path]:
    root = Path(app.config["MEDIA_ROOT"])
    return sorted(p for p in root.iterdir() if p.is_file()) if root.exists() else []


def test_create_product_with_png_upload(shop_app: Flask, client: FlaskClient) -> None:
    signup(client)
    assert client.get("/api/products").get_json() == []  # (cached, with Redis)
    image = png_bytes()
    response = _post_product(client, name="Teal mug", image=image, filename="../../etc/x.png")
    assert response.status_code == 302, response.get_data(as_text=True)[:400]
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Teal mug" in detail and "€12.50" in detail

    # Stored under MEDIA_ROOT with a generated uuid4 name, never the user's filename.
    files = _media_files(shop_app)
    assert len(files) == 1
    assert re.fullmatch(r"[0-9a-f]{32}\.png", files[0].name)
    assert files[0].read_bytes() == image
    assert f"/media/{files[0].name}" in detail

    served = client.get(f"/media/{files[0].name}")  # development/testing serves media
    assert served.status_code == 200 and served.data == image

    listed = client.get("/api/products").get_json()  # creating invalidated the cache
    assert [p["name"] for p in listed] == ["Teal mug"]
    assert listed[0]["price_cents"] == 1250


@sqlite_only
def test_a_file_that_is_not_an_image_is_a_form_error(shop_app: Flask, client: FlaskClient) -> None:
    signup(client)
    fake = b"<?php system($_GET['c']); ?>" + b"\x00" * 100
    response = _post_product(client, name="Sneaky", image=fake, filename="evil.png")
    assert response.status_code == 400
    assert "not a readable image" in response.get_data(as_text=True)
    assert _media_files(shop_app) == []
    assert client.get("/api/products").get_json() == []


@sqlite_only
def test_a_truncated_png_is_refused(shop_app: Flask, client: FlaskClient) -> None:
    signup(client)
    response = _post_product(client, name="Half", image=png_bytes()[:60], filename="half.png")
    assert response.status_code == 400
    assert _media_files(shop_app) == []


@sqlite_only
def test_an_image_format_outside_the_list_is_refused(shop_app: Flask, client: FlaskClient) -> None:
    from PIL import Image

    signup(client)
    out = BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="BMP")
    response = _post_product(client, name="Bitmap", image=out.getvalue(), filename="a.png")
    assert response.status_code == 400
    assert "only PNG, JPEG, WebP and GIF" in response.get_data(as_text=True)


def test_an_upload_over_the_limit_is_413(make_shop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = make_shop({"MAX_CONTENT_LENGTH": 64 * 1024})
    client = app.test_client()
    signup(client)
    big = png_bytes() + b"\x00" * (80 * 1024)
    response = _post_product(client, name="Huge", image=big, filename="huge.png")
    assert response.status_code == 413
    assert "Traceback" not in response.get_data(as_text=True)
    assert _media_files(app) == []


def test_sql_shaped_text_is_stored_verbatim(shop_app: Flask, client: FlaskClient) -> None:
    from shop.extensions import db
    from shop.models import Product

    signup(client)
    response = _post_product(
        client, name=SQL_SHAPED, image=png_bytes(), filename="x.png", description=SQL_SHAPED * 2
    )
    assert response.status_code == 302
    with shop_app.app_context():
        assert "products" in inspect(db.engine).get_table_names()
        product = db.session.scalars(select(Product)).one()
        assert product.name == SQL_SHAPED
        assert product.description == SQL_SHAPED * 2
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "&#39;); DROP TABLE products;--" in page  # escaped in HTML, not interpreted


@sqlite_only
def test_bad_price_is_a_form_error(client: FlaskClient) -> None:
    signup(client)
    for price in ("abc", "-1", "1.234", "NaN"):
        response = _post_product(client, name="P", image=png_bytes(), filename="p.png", price=price)
        assert response.status_code == 400, price


@sqlite_only
def test_unknown_product_page_is_404_html(client: FlaskClient) -> None:
    response = client.get("/products/999999")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "This page does not exist" in page and 'href="/static/style.css' in page
    assert response.headers["X-Request-ID"] in page
