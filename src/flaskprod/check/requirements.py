"""The project's declared dependencies, from requirements files, pyproject and locks.

One parse shared by the ``project`` rules (pinning) and the ``deps`` rules (known
vulnerabilities, debug tools in production). Production requirements are the ones a
deploy installs: ``requirements.txt`` / ``requirements/prod*.txt`` / ``[project]
dependencies``, not ``requirements-dev.txt`` or optional ``dev``/``test`` extras.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from flaskprod.check.context import Context

_DEV_WORDS = re.compile(r"(^|[-_./])(dev|develop|test|tests|testing|lint|docs|ci|local)([-_.]|$)")


@dataclass(frozen=True)
class Dependency:
    name: str  # canonical (lower-case, dashes)
    specifier: str  # "==3.0.3", ">=2", ""
    extras: frozenset[str]
    file: str  # relative
    line: int
    production: bool
    #: ``(name, version)`` from a lock file; ``specifier`` is then "==version".
    locked: bool = False

    #: Installed from a URL (``name @ https://...``): pinned by the URL itself.
    url: bool = False

    @property
    def pinned_version(self) -> str | None:
        spec = self.specifier.strip()
        if spec.startswith("===") or spec.startswith("=="):
            version = spec.lstrip("=").strip()
            return None if "*" in version or "," in version else version
        return None


def is_dev_file(relative: str) -> bool:
    return bool(_DEV_WORDS.search(Path(relative).name.lower())) or any(
        _DEV_WORDS.search(part.lower()) for part in Path(relative).parts[:-1]
    )


def looks_binary(text: str) -> bool:
    """Undecodable or NUL bytes: not a text file (other rules report it)."""
    return "\x00" in text or text.count("\ufffd") > max(2, len(text) // 100)


def _parse_requirements(ctx: Context, path: Path) -> list[Dependency]:
    relative = ctx.relative(path)
    production = not is_dev_file(relative)
    out = []
    text = ctx.read(path)
    if looks_binary(text):
        return []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", "git+", "http:", "https:", ".", "/")):
            continue
        line = line.split(";", 1)[0].strip() if "@" not in line else line
        try:
            req = Requirement(line.rstrip("\\").strip())
        except InvalidRequirement:
            continue
        out.append(_declared(req, relative, number, production, url=req.url is not None))
    return out


def _declared(
    req: Requirement, file: str, line: int, production: bool, *, url: bool = False
) -> Dependency:
    # One reading of a requirement for requirements files and pyproject alike.
    return Dependency(
        canonicalize_name(req.name),
        str(req.specifier),
        frozenset(req.extras),
        file,
        line,
        production,
        url=url,
    )


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    return 1


def _parse_pyproject(ctx: Context, path: Path) -> list[Dependency]:
    text = ctx.read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    relative = ctx.relative(path)
    project = data.get("project", {})
    groups: list[tuple[list[str], bool]] = [(project.get("dependencies", []) or [], True)]
    for extra, items in (project.get("optional-dependencies", {}) or {}).items():
        groups.append((items or [], not _DEV_WORDS.search(str(extra).lower())))
    for items in (data.get("dependency-groups", {}) or {}).values():
        groups.append(([i for i in items or [] if isinstance(i, str)], False))
    out = []
    for items, production in groups:
        for item in items:
            try:
                req = Requirement(str(item))
            except InvalidRequirement:
                continue
            out.append(_declared(req, relative, _line_of(text, str(item)), production))
    return out


_LOCK_ENTRY = re.compile(r'^name\s*=\s*"([^"]+)"\s*\nversion\s*=\s*"([^"]+)"', re.MULTILINE)
_PIPFILE_ENTRY = re.compile(r'"([A-Za-z0-9_.-]+)":\s*\{[^{}]*?"version":\s*"==([^"]+)"')


def _locked(name: str, version: str, file: str, line: int) -> Dependency:
    return Dependency(canonicalize_name(name), f"=={version}", frozenset(), file, line, True, True)


def _parse_lock(ctx: Context, path: Path) -> list[Dependency]:
    """poetry.lock / uv.lock / pdm.lock ([[package]] name + version), Pipfile.lock
    (JSON "name": {"version": "==x"}) and requirements*.lock (pip syntax)."""
    text = ctx.read(path)
    relative = ctx.relative(path)
    if path.name.startswith("requirements"):
        return [
            Dependency(d.name, d.specifier, d.extras, d.file, d.line, True, locked=True)
            for d in _parse_requirements(ctx, path)
        ]
    # Both patterns match (name, version); the line is where the entry starts.
    pattern = _PIPFILE_ENTRY if path.name == "Pipfile.lock" else _LOCK_ENTRY
    return [
        _locked(match[1], match[2], relative, text.count("\n", 0, match.start()) + 1)
        for match in pattern.finditer(text)
    ]


def dependencies(ctx: Context) -> list[Dependency]:
    """Every declared dependency (cached per run)."""
    if "dependencies" not in ctx.cache:
        found: list[Dependency] = []
        for path in ctx.of_kind("requirements"):
            found += _parse_requirements(ctx, path)
        for path in ctx.of_kind("pyproject"):
            if path.parent == ctx.root:
                found += _parse_pyproject(ctx, path)
        for path in ctx.of_kind("lock"):
            found += _parse_lock(ctx, path)
        ctx.cache["dependencies"] = found
    deps: list[Dependency] = ctx.cache["dependencies"]
    return deps


def installed_versions(ctx: Context) -> dict[str, tuple[str, Dependency]]:
    """Production package -> (exact version, where it is pinned), from locks first."""
    versions: dict[str, tuple[str, Dependency]] = {}
    for dep in sorted(dependencies(ctx), key=lambda d: not d.locked):
        version = dep.pinned_version
        if version and dep.production and dep.name not in versions:
            versions[dep.name] = (version, dep)
    return versions


def production_count(number: int) -> str:
    """'1 production dependency', '3 production dependencies' (for messages)."""
    return f"{number} production dependenc{'y' if number == 1 else 'ies'}"
