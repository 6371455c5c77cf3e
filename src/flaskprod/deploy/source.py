"""What a release ships: the project's committed revision, as a tar, and the wheels of
what the package index cannot give the host (flaskprod itself while unpublished).

A dirty tree is refused, naming the files, unless ``allow_dirty``: then the working
tree's files (tracked and untracked, not ignored) are shipped and the revision says
``-dirty``.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from flaskprod.deploy.wheels import flaskprod_wheel, source_root
from flaskprod.errors import Refused, UserError

#: Requirements files looked for in the release, in this order.
REQUIREMENTS_FILES = ("requirements.txt", "requirements/production.txt", "requirements/prod.txt")


@dataclass(frozen=True)
class Source:
    revision: str  # the commit (40 hex), with "-dirty" when the working tree was shipped
    archive: bytes  # tar of the project folder's files
    requirements: str | None  # path of the requirements file inside the archive
    requirements_text: str

    @property
    def short(self) -> str:
        return self.revision[:12]


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, check=False, timeout=120
    )


def _text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode("utf-8", "replace").strip()


def read_source(project: Path, *, allow_dirty: bool = False) -> Source:
    """The revision to ship from ``project`` (a git work tree or a folder inside one)."""
    project = project.resolve()
    top = _git(project, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise UserError(
            f"{project}: not in a git repository: deploy ships a committed revision",
            hint="git init && git add -A && git commit -m 'first release'",
        )
    root = Path(_text(top))
    prefix = project.relative_to(root).as_posix() if project != root else ""
    head = _git(root, "rev-parse", "--verify", "HEAD")
    if head.returncode != 0:
        raise UserError(f"{project}: the repository has no commit yet (git commit first)")
    revision = _text(head)
    dirty = _dirty_files(root, prefix)
    if dirty and not allow_dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise Refused(
            f"{project}: uncommitted changes would not be deployed: {shown}",
            hint="commit them, or pass --allow-dirty to ship the working tree as it is",
        )
    if dirty:
        archive = _working_tree_tar(root, prefix)
        revision += "-dirty"
    else:
        result = _git(root, "archive", "--format=tar", f"HEAD:{prefix}" if prefix else "HEAD")
        if result.returncode != 0:
            raise UserError(f"git archive failed in {root}: {result.stderr.decode()[:300]}")
        archive = result.stdout
    requirements, text = _requirements(archive)
    return Source(revision, archive, requirements, text)


def _dirty_files(root: Path, prefix: str) -> list[str]:
    status = _git(
        root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", prefix or "."
    )
    entries = [e for e in status.stdout.decode("utf-8", "replace").split("\0") if e]
    return [entry[3:] for entry in entries if len(entry) > 3]


def _working_tree_tar(root: Path, prefix: str) -> bytes:
    listing = _git(root, "ls-files", "-z", "-co", "--exclude-standard", "--", prefix or ".")
    names = sorted(n for n in listing.stdout.decode("utf-8", "replace").split("\0") if n)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in names:
            path = root / name
            if not path.exists() and not path.is_symlink():
                continue  # deleted, not yet committed
            arcname = name[len(prefix) + 1 :] if prefix else name
            tar.add(path, arcname=arcname, recursive=False)
    return buffer.getvalue()


def _requirements(archive: bytes) -> tuple[str | None, str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = set(tar.getnames())
        for candidate in REQUIREMENTS_FILES:
            if candidate in names:
                member = tar.extractfile(candidate)
                if member is not None:
                    return candidate, member.read().decode("utf-8", "replace")
    return None, ""


def required_names(requirements_text: str) -> set[str]:
    """Canonical names of the packages a requirements file lists (options, includes
    and URLs are skipped)."""
    names: set[str] = set()
    for raw in requirements_text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            names.add(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            continue
    return names


def local_wheels(requirements_text: str) -> dict[str, Path]:
    """Wheels to ship with the release: canonical name -> wheel file. flaskprod itself
    when the app's requirements name it and flaskprod runs from its source (then the
    package index does not have this version)."""
    if source_root() is None or "flaskprod" not in required_names(requirements_text):
        return {}
    return {"flaskprod": flaskprod_wheel(Path(tempfile.gettempdir()))}


def host_requirements(requirements_text: str, wheels: dict[str, str]) -> str:
    """The requirements as the host installs them: a line naming a shipped wheel's
    package points at that wheel (``name[extras] @ file:///...``), keeping its extras."""
    out = []
    for raw in requirements_text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        try:
            requirement = Requirement(line) if line and not line.startswith(("#", "-")) else None
        except InvalidRequirement:
            requirement = None
        name = canonicalize_name(requirement.name) if requirement else None
        if requirement is not None and name in wheels:
            extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
            out.append(f"{requirement.name}{extras} @ file://{wheels[name]}")
        else:
            out.append(raw)
    return "\n".join(out) + "\n"
