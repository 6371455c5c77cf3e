"""Uploaded images: checked by their content, stored under a generated name.

The user's filename and declared content type are never trusted: Pillow must parse
the bytes as one of the allowed formats, and the stored name is a fresh uuid4 with the
extension of the format Pillow found. The folder (``MEDIA_ROOT``) lives outside the
code; nginx serves it in production, the app only in development.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from io import BytesIO
from pathlib import Path

from flask import Flask, current_app

EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif"}
MAX_PIXELS = 40_000_000  # refuse decompression bombs well before they cost memory


class NotAnImage(ValueError):
    pass


def media_root(app: Flask | None = None) -> Path:
    return Path((app or current_app).config["MEDIA_ROOT"])


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
    root = media_root(app)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}{extension}"
    # Write aside, then rename: nginx never serves a half-written file.
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Path(tmp).chmod(0o644)  # mkstemp makes 0600; nginx's user must be able to read it
        Path(tmp).replace(root / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def media_url(name: str | None) -> str | None:
    if not name:
        return None
    return str(current_app.config["MEDIA_URL"]).rstrip("/") + "/" + name
