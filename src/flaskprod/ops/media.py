"""The media folder in a backup: one tar holding ``media/``, restored by a swap.

A restore extracts into a hidden sibling of ``MEDIA_ROOT`` first (tarfile's "data"
filter: no absolute paths, no ``..``, no devices or links out of the folder), then
swaps it in with two renames, so the app never sees a half-extracted folder.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from flaskprod.errors import Refused, VerificationFailed
from flaskprod.ops.files import no_space_message
from flaskprod.ops.verify import check_tar

ARCNAME = "media"


def archive(media: Path, temp: Path) -> None:
    """Write ``media`` as ``temp`` (a tar of ``media/``) and read it back."""
    with no_space_message(temp.parent), tarfile.open(temp, "w") as tar:
        tar.add(media, arcname=ARCNAME)
    check_tar(temp)


def check_replaceable(root: Path, *, yes: bool) -> None:
    """A media folder with files is replaced only with ``--yes``."""
    if root.is_dir() and any(root.iterdir()) and not yes:
        raise Refused(
            f"the media folder {root} is not empty: restoring would replace its files",
            hint="pass --yes to replace it",
        )


def restore(tar_path: Path, root: Path, *, yes: bool) -> int:
    """Replace ``root`` with the archive's ``media/``; return the number of files."""
    check_replaceable(root, yes=yes)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f".{root.name}.restore.{os.getpid()}.tmp")
    retired = root.with_name(f".{root.name}.old.{os.getpid()}.tmp")
    try:
        with no_space_message(root.parent), tarfile.open(tar_path) as tar:
            outside = [m.name for m in tar if not (m.name + "/").startswith(f"{ARCNAME}/")]
            if outside:
                raise VerificationFailed(
                    f"{tar_path.name}: {outside[0]!r} is outside media/: not a flaskprod "
                    "media archive"
                )
            tar.extractall(staging, filter="data")
        extracted = staging / ARCNAME
        extracted.mkdir(exist_ok=True)  # an archive of an empty folder
        count = sum(1 for p in extracted.rglob("*") if p.is_file())
        if root.exists():
            # The folder keeps its mode (the local stack opens it to nginx's workers).
            extracted.chmod(root.stat().st_mode & 0o7777)
            root.rename(retired)
        extracted.rename(root)
    except tarfile.TarError as error:
        raise VerificationFailed(f"{tar_path.name}: cannot extract: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return count
