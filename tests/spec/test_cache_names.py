"""Which names the kit's nginx serves as immutable and LIV060 accepts as such: one
pattern for both (flaskprod.spec.cache_names)."""

from __future__ import annotations

import pytest

from flaskprod.spec.cache_names import is_immutable_name


@pytest.mark.parametrize(
    "path",
    [
        "/media/3f2a9c1e0b7d4a55a1b2c3d4e5f60718.png",  # the shop's uuid4().hex + extension
        "/media/0f8fad5b-d9cb-469f-a165-70867728950e.jpg",  # a dashed uuid
        "/media/da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a sha1, no extension
        "/static/app.3f2a9c1e.css",  # webpack/esbuild fingerprint
        "/static/app-3f2a9c1e0b7d4a55a1b2c3d4e5f60718.css",  # Flask-Static-Digest
    ],
)
def test_names_that_never_mean_other_bytes(path: str) -> None:
    assert is_immutable_name(path)


@pytest.mark.parametrize(
    "path",
    [
        "/static/site.css",
        "/media/avatar.png",  # can be overwritten
        "/media/report-20240101.pdf",  # a date is no hash
        "/media/1234567890123456.jpg",  # nor is a numeric id
        "/static/jquery-3.7.1.min.js",
        "/media/cafebabe.png",  # 8 hex digits alone: too short to be a hash
    ],
)
def test_names_that_can_be_replaced(path: str) -> None:
    assert not is_immutable_name(path)
