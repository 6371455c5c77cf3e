"""Finding ``pg_dump`` and ``pg_restore`` of the right major version.

A dump needs a ``pg_dump`` at least as new as the server (an older one refuses to
dump, or worse on old releases, dumps wrongly). Debian keeps one folder per major
under ``/usr/lib/postgresql/*/bin``; ``FLASKPROD_PG_BIN`` names the one folder to use.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flaskprod.errors import EnvironmentProblem

BIN_ENV = "FLASKPROD_PG_BIN"
DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def install_hint(major: int | None = None) -> str:
    package = f"postgresql-client-{major}" if major else "postgresql-client"
    return f"install it: apt-get install {package}, or set {BIN_ENV} to the folder holding it"


@dataclass(frozen=True)
class PgTools:
    """``pg_dump`` and ``pg_restore`` from one folder, and their version."""

    bin_dir: Path
    major: int
    version: str

    @property
    def pg_dump(self) -> Path:
        return self.bin_dir / "pg_dump"

    @property
    def pg_restore(self) -> Path:
        return self.bin_dir / "pg_restore"


def candidate_dirs(environ: dict[str, str] | None = None) -> list[Path]:
    """Folders to look in: ``$FLASKPROD_PG_BIN`` alone if set, else Debian's per-major
    folders and then PATH."""
    env = os.environ if environ is None else environ
    if env.get(BIN_ENV):
        return [Path(env[BIN_ENV])]
    dirs = sorted(Path("/").glob(DEBIAN_GLOB.lstrip("/")))
    on_path = shutil.which("pg_dump", path=env.get("PATH", os.defpath))
    if on_path:
        dirs.append(Path(on_path).parent)
    return dirs


def tool_version(binary: Path) -> tuple[int, str] | None:
    """(major, "15.10") of a PostgreSQL client binary, None if it does not run."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    match = _VERSION.search(out)
    if match is None:
        return None
    return int(match.group(1)), f"{match.group(1)}.{match.group(2) or 0}"


def available(dirs: list[Path]) -> list[PgTools]:
    """Every folder with both tools, newest first."""
    found: dict[Path, PgTools] = {}
    for folder in dirs:
        if not ((folder / "pg_dump").is_file() and (folder / "pg_restore").is_file()):
            continue
        version = tool_version(folder / "pg_dump")
        if version is not None and folder.resolve() not in found:
            found[folder.resolve()] = PgTools(folder, *version)
    return sorted(found.values(), key=lambda tools: tools.major, reverse=True)


def find_tools(dirs: list[Path] | None = None) -> list[PgTools]:
    """The installed client tools; none at all is a one-line error naming the fix."""
    dirs = candidate_dirs() if dirs is None else dirs
    tools = available(dirs)
    if not tools:
        where = ", ".join(str(d) for d in dirs) or f"{DEBIAN_GLOB} or PATH"
        raise EnvironmentProblem(
            f"pg_dump and pg_restore not found (looked in {where})", hint=install_hint()
        )
    return tools


def for_server(tools: list[PgTools], server_major: int, server_version: str) -> PgTools:
    """The newest tools, if they are at least the server's major version."""
    newest = tools[0]
    if newest.major < server_major:
        raise EnvironmentProblem(
            f"the PostgreSQL server is version {server_version} but the newest pg_dump "
            f"found is {newest.version} ({newest.pg_dump}): a dump needs pg_dump "
            f"{server_major} or newer",
            hint=install_hint(server_major),
        )
    return newest
