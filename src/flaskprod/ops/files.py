"""Writing backup files safely: temp names, fsync, ``os.replace``, checksums, space.

A backup file only ever appears under its final name complete and flushed to disk.
Until then it lives under a hidden temp name carrying the writer's pid, so that a
later run can tell a dead writer's leftovers from a backup being written right now.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from flaskprod.errors import EnvironmentProblem

_CHUNK = 1 << 20


def temp_path(final: Path) -> Path:
    """The hidden name ``final`` is written under first (same folder: same filesystem)."""
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (the directory entry itself is data)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(temp: Path, final: Path) -> None:
    """fsync ``temp`` and rename it to ``final`` (atomic on one filesystem)."""
    fsync_file(temp)
    temp.replace(final)


def write_text_atomic(final: Path, text: str) -> None:
    temp = temp_path(final)
    try:
        with no_space_message(final.parent):
            temp.write_text(text, encoding="utf-8")
            publish(temp, final)
    finally:
        temp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remove_stale_temps(folder: Path, app: str) -> list[Path]:
    """Delete ``app``'s temp files whose writer is gone (killed mid-backup)."""
    removed = []
    candidates = [*folder.glob(f".{app}-*.tmp"), *folder.glob(f".verify-{app}-*.tmp")]
    for path in candidates:
        pid_text = path.suffixes[-2].lstrip(".") if len(path.suffixes) >= 2 else ""
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid != os.getpid() and not _alive(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def folder_lock(folder: Path, app: str) -> Iterator[None]:
    """One backup of ``app`` at a time in ``folder`` (two in the same second would
    otherwise pick the same name); the lock goes with the process if it dies."""
    import fcntl

    with (folder / f".{app}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def no_space(folder: Path) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"no space left on the device of {folder}",
        hint="free some space there or pass --output with another folder",
    )


@contextlib.contextmanager
def no_space_message(folder: Path) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT while writing into ``folder`` into a one-line error."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space(folder) from None
        raise


class Progress:
    """Periodic progress lines on stderr, only for work that takes a while.

    Nothing is printed in the first ``after`` seconds, so small databases stay quiet;
    then one line every ``every`` seconds (plain lines: they read well in a journal).
    """

    def __init__(
        self,
        label: str,
        *,
        after: float = 2.0,
        every: float = 2.0,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.after = after
        self.every = every
        self.stream = stream
        self.started = time.monotonic()
        self.last = self.started + after - every
        self.printed = False

    def update(self, done: int, total: int | None = None, unit: str = "bytes") -> None:
        now = time.monotonic()
        if now - self.last < self.every or now - self.started < self.after:
            return
        self.last = now
        amount = human_size(done) if unit == "bytes" else f"{done} {unit}"
        if total:
            whole = human_size(total) if unit == "bytes" else f"{total} {unit}"
            amount += f" of {whole} ({100 * done // max(total, 1)}%)"
        self.line(f"{amount}, {now - self.started:.0f} s")

    def tick(self, text: str) -> None:
        """``text`` and the elapsed time, on the same schedule as :meth:`update`."""
        now = time.monotonic()
        if now - self.last >= self.every and now - self.started >= self.after:
            self.last = now
            self.line(f"{text}, {now - self.started:.0f} s")

    def line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        print(f"{self.label}: {text}", file=stream, flush=True)
        self.printed = True


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - loop always returns
