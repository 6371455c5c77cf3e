"""An S3 client for uploads and offsite backups (``storage.kind = "s3"``).

boto3, chosen over minio-py by a measurement (docs/scaling.md, "Storage"): the same
put/get speed against SeaweedFS, minio lighter (30 vs 50 MiB RSS), but boto3 is the
S3 SDK every S3 server is tested against, reads the standard variables itself
(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)
and brings multipart transfers for large backups. It is imported on first use only.

Bounded like the database and Redis clients: a stalled store fails a request after
seconds, not a worker forever.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: The bucket's name in the app's environment (the rest are boto3's own variables).
BUCKET_VARIABLE = "MEDIA_BUCKET"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_S3"
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 10.0


def s3_client(environ: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client from ``environ`` (default: the process's): path-style
    addressing (a self-hosted gateway has no per-bucket DNS names), two attempts,
    bounded timeouts."""
    import boto3
    from botocore.config import Config

    env = os.environ if environ is None else environ
    return boto3.session.Session().client(
        "s3",
        endpoint_url=env.get(ENDPOINT_VARIABLE) or None,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        region_name=env.get("AWS_DEFAULT_REGION") or "us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            # SeaweedFS (like most S3 servers but AWS) wants no trailing checksums
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def ensure_bucket(client: Any, bucket: str) -> bool:
    """Create ``bucket`` unless it exists; True when it was created."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    client.create_bucket(Bucket=bucket)
    return True
