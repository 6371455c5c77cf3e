"""The shop's background job: a thumbnail of each product image, made by an RQ worker.

Creating a product stores the uploaded image and answers at once; the job
(:func:`make_thumbnail`) writes ``thumbs/<name>.webp`` (at most 320 x 320) beside it in
MEDIA_ROOT (or the S3 bucket of MEDIA_BUCKET) within seconds, and the pages and the API
show the thumbnail as soon as it exists (the original until then). The worker is
``[processes.worker]`` of flaskprod.toml (``rq worker shop-jobs``): systemd unit,
compose service, Kubernetes Deployment, Procfile line, and ``flaskprod up`` runs it.

Why RQ rather than Celery: the shop already runs Redis, and RQ needs nothing more (no
broker settings, no result backend, no beat); a job is a plain function named by its
import path; its worker's warm shutdown on TERM lets the job in progress finish, which
is what systemd, compose and Kubernetes send. Celery's acks_late and visibility timeout
would have to be tuned for one small job.

Without REDIS_URL (development without Redis), or when Redis refuses the job, the
thumbnail is made in the request instead: slower, never missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import current_app
from redis.exceptions import RedisError

from flaskprod.runtime.redis import redis_client
from shop.media import file_exists, media_root, put_file, read_file

QUEUE = "shop-jobs"
THUMBNAIL_SIZE = (320, 320)
#: Seconds a thumbnail may take before RQ stops the job (then it is retried).
JOB_TIMEOUT = 60

log = logging.getLogger(__name__)


def thumbnail_name(filename: str) -> str:
    return f"thumbs/{Path(filename).stem}.webp"


def make_thumbnail(filename: str, root: str) -> str:
    """Write the thumbnail of ``root/filename`` (or of the bucket's ``filename`` when
    the worker has MEDIA_BUCKET); returns its name (relative to root). Idempotent: a
    retried job rewrites the same file, atomically."""
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(read_file(filename, Path(root)))) as image:
        image.thumbnail(THUMBNAIL_SIZE)
        out = BytesIO()
        image.save(out, "WEBP", quality=80)
    put_file(thumbnail_name(filename), out.getvalue(), Path(root))
    return thumbnail_name(filename)


def enqueue_thumbnail(filename: str) -> str:
    """Queue the thumbnail of a stored image: "queued", or "made" when it was made
    here (no Redis configured, or Redis refused the job)."""
    root = str(media_root())
    if current_app.config.get("REDIS_URL"):
        from rq import Queue, Retry

        try:
            Queue(QUEUE, connection=redis_client(current_app)).enqueue(
                make_thumbnail,
                filename,
                root,
                job_timeout=JOB_TIMEOUT,
                retry=Retry(max=3, interval=[1, 5, 15]),
            )
        except RedisError as error:
            log.warning("thumbnail job not queued (%s): made in the request", error)
        else:
            return "queued"
    make_thumbnail(filename, root)
    return "made"


def thumbnail_url(filename: str | None) -> str | None:
    """The thumbnail's URL once the worker made it, else None."""
    if not filename or not file_exists(thumbnail_name(filename)):
        return None
    return str(current_app.config["MEDIA_URL"]).rstrip("/") + "/" + thumbnail_name(filename)
