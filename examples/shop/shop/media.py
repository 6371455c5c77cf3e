"""Uploaded images: checked by their content, stored under a generated name.

The user's filename and declared content type are never trusted: Pillow must parse
the bytes as one of the allowed formats, and the stored name is a fresh uuid4 with the
extension of the format Pillow found. The folder (``MEDIA_ROOT``) lives outside the
code; nginx serves it in production, the app only in development.

With ``MEDIA_BUCKET`` set (flaskprod's ``storage.kind = "s3"``: AWS_ENDPOINT_URL_S3 and
the key pair come with it) the files go to that S3 bucket instead, which every app
host and the thumbnail worker share; nginx proxies MEDIA_URL to it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from io import BytesIO
from pathlib import Path
from typing import Any

from flask import Flask, current_app

EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif"}
MAX_PIXELS = 40_000_000  # refuse decompression bombs well before they cost memory


class NotAnImage(ValueError):
    pass


def media_root(app: Flask | None = None) -> Path:
    return Path((app or current_app).config["MEDIA_ROOT"])


def media_bucket() -> str | None:
    """The S3 bucket of the uploads, when they live in one."""
    return os.environ.get("MEDIA_BUCKET") or None


_clients: dict[int, Any] = {}
CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


def s3() -> Any:
    """This process's S3 client (one per pid: a client is not safe across a fork)."""
    client = _clients.get(os.getpid())
    if client is None:
        from flaskprod.runtime.storage import s3_client

        client = _clients.setdefault(os.getpid(), s3_client())
    return client


def put_file(name: str, data: bytes, root: Path | None = None) -> None:
    """Store ``data`` as ``name`` (in the bucket, else under ``root``), whole or not at all."""
    bucket = media_bucket()
    if bucket:
        content_type = CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
        s3().put_object(Bucket=bucket, Key=name, Body=data, ContentType=content_type)
        return
    folder = root or media_root()
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write aside, then rename: nginx never serves a half-written file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Path(tmp).chmod(0o644)  # mkstemp makes 0600; nginx's user must be able to read it
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_file(name: str, root: Path | None = None) -> bytes:
    bucket = media_bucket()
    if bucket:
        body = s3().get_object(Bucket=bucket, Key=name)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()
    return ((root or media_root()) / name).read_bytes()


#: Names known to exist in the bucket: stored files are never replaced (uuid names).
_known: set[str] = set()


def file_exists(name: str, root: Path | None = None) -> bool:
    bucket = media_bucket()
    if not bucket:
        return ((root or media_root()) / name).is_file()
    if name in _known:
        return True
    from botocore.exceptions import ClientError

    try:
        s3().head_object(Bucket=bucket, Key=name)
    except ClientError:
        return False
    _known.add(name)
    return True


def image_extension(data: bytes) -> str:
    """The extension for ``data`` if it is a valid PNG/JPEG/WebP/GIF, else NotAnImage."""
    # Pillow on the first upload only: a worker that never receives one saves ~2 MiB.
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(BytesIO(data)) as image:
            kind = image.format
            width, height = image.size
            image.verify()  # walks the whole file: truncated or corrupt data fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise NotAnImage("the file is not a readable image") from None
    if kind not in EXTENSIONS:
        raise NotAnImage("only PNG, JPEG, WebP and GIF images are accepted")
    if width * height > MAX_PIXELS:
        raise NotAnImage("the image has too many pixels")
    return EXTENSIONS[kind]


def store_image(data: bytes, app: Flask | None = None) -> str:
    """Check and store ``data``; return the generated file name."""
    extension = image_extension(data)
    name = f"{uuid.uuid4().hex}{extension}"
    put_file(name, data, media_root(app))
    return name


def media_url(name: str | None) -> str | None:
    if not name:
        return None
    return str(current_app.config["MEDIA_URL"]).rstrip("/") + "/" + name
