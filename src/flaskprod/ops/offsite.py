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
    return upload_files(backup.files(), settings, app)  # the manifest last


def upload_files(paths: list[Path], settings: Mapping[str, str], app: str) -> str:
    """Copy ``paths`` (in this order) under ``backups/<app>/``, each size checked."""
    client, bucket = s3_client(settings), settings[BUCKET_VARIABLE]
    folder = _folder(app)
    for path in paths:
        key = folder + path.name
        client.upload_file(str(path), bucket, key)
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if size != path.stat().st_size:
            raise UserError(
                f"s3://{bucket}/{key}: {size} bytes in the bucket, {path.stat().st_size} here",
                hint="run the backup again",
            )
    return f"s3://{bucket}/{folder}"


def _keys(client: Any, bucket: str, folder: str) -> set[str]:
    names: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        names |= {item["Key"].removeprefix(folder) for item in page.get("Contents", [])}
    return names


def download(settings: Mapping[str, str], app: str, name: str, folder: Path) -> Path:
    """Fetch the backup ``name`` (its stem, e.g. ``shop-20261207T171500Z``, or
    ``latest``) into ``folder``; returns its local manifest (or, for a backup of the
    kit's backup.sh, which has none, its database file)."""
    from flaskprod.ops.manifest import Manifest

    client, bucket = s3_client(settings), settings[BUCKET_VARIABLE]
    prefix = _folder(app)
    keys = _keys(client, bucket, prefix)
    # every backup has a .sha256 (flaskprod's and the kit's); its stem sorts by time
    stems = sorted(key.removesuffix(".sha256") for key in keys if key.endswith(".sha256"))
    if not stems:
        raise UserError(f"s3://{bucket}/{prefix}: no backup of {app} in the bucket")
    stem = stems[-1] if name == "latest" else name.removesuffix(".json")
    if stem not in stems:
        raise UserError(
            f"s3://{bucket}/{prefix}{stem}: no such backup",
            hint=f"the newest is {stems[-1]}; or pass 'latest'",
        )
    folder.mkdir(parents=True, exist_ok=True)

    def fetch(file_name: str) -> Path:
        client.download_file(bucket, prefix + file_name, str(folder / file_name))
        return folder / file_name

    sums = fetch(f"{stem}.sha256")
    if f"{stem}.json" not in keys:  # the kit's backup.sh: the file its .sha256 names
        return fetch(sums.read_text().split()[1])
    manifest_path = fetch(f"{stem}.json")
    manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
    fetch(manifest.database_file.name)
    if manifest.media_file is not None:
        fetch(manifest.media_file.name)
    return manifest_path
