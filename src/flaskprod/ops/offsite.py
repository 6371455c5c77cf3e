"""Backups off the database host: a verified backup copied to the S3 bucket
(``storage.kind = "s3"``), and taken back from it for a restore.

Under ``backups/<app>/`` in the uploads' bucket (anonymous clients read only what the
media URL names; a backup's name is never published, and the gateway lists nothing
without the app's keys). The manifest goes last: a backup whose manifest is in the
bucket is whole. Each file's size is checked after the upload; the restore checks the
sha256 and every table against the manifest, as for a local backup.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flaskprod.errors import UserError
from flaskprod.ops.manifest import Backup
from flaskprod.runtime.storage import BUCKET_VARIABLE, ENDPOINT_VARIABLE, s3_client

PREFIX = "backups"
S3_VARIABLES = (
    ENDPOINT_VARIABLE,
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    BUCKET_VARIABLE,
)


def s3_settings(environ: Mapping[str, str], stack_env: Mapping[str, str]) -> dict[str, str]:
    """The S3 variables: the environment's, else those ``up`` gave the app; empty when
    neither names a bucket and keys."""
    for source in (environ, stack_env):
        if source.get(BUCKET_VARIABLE) and source.get("AWS_ACCESS_KEY_ID"):
            return {name: source[name] for name in S3_VARIABLES if source.get(name)}
    return {}


def _folder(app: str) -> str:
    return f"{PREFIX}/{app}/"


def upload(backup: Backup, settings: Mapping[str, str], app: str) -> str:
    """Copy every file of ``backup`` to the bucket; returns ``s3://bucket/prefix``."""
    client, bucket = s3_client(settings), settings[BUCKET_VARIABLE]
    folder = _folder(app)
    for path in backup.files():  # the manifest last
        key = folder + path.name
        client.upload_file(str(path), bucket, key)
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size != path.stat().st_size:
            raise UserError(
                f"s3://{bucket}/{key}: {size} bytes in the bucket, {path.stat().st_size} here",
                hint="run the backup again",
            )
    return f"s3://{bucket}/{folder}"


def _manifests(client: Any, bucket: str, folder: str) -> list[str]:
    names: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        names += [
            item["Key"].removeprefix(folder)
            for item in page.get("Contents", [])
            if item["Key"].endswith(".json")
        ]
    return sorted(names)


def download(settings: Mapping[str, str], app: str, name: str, folder: Path) -> Path:
    """Fetch the backup ``name`` (its stem, e.g. ``shop-20261207T171500Z``, or
    ``latest``) into ``folder``; returns its local manifest path."""
    from flaskprod.ops.manifest import Manifest

    client, bucket = s3_client(settings), settings[BUCKET_VARIABLE]
    prefix = _folder(app)
    manifests = _manifests(client, bucket, prefix)
    if not manifests:
        raise UserError(f"s3://{bucket}/{prefix}: no backup of {app} in the bucket")
    wanted = manifests[-1] if name == "latest" else f"{name.removesuffix('.json')}.json"
    if wanted not in manifests:
        raise UserError(
            f"s3://{bucket}/{prefix}{wanted}: no such backup",
            hint=f"the newest is {manifests[-1].removesuffix('.json')}; or pass 'latest'",
        )
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / wanted
    client.download_file(bucket, prefix + wanted, str(manifest_path))
    manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
    stem = wanted.removesuffix(".json")
    names = [manifest.database_file.name, f"{stem}.sha256"]
    if manifest.media_file is not None:
        names.append(manifest.media_file.name)
    for file_name in names:
        client.download_file(bucket, prefix + file_name, str(folder / file_name))
    return manifest_path
