"""Files a launcher names, found in the project: ``./boot.sh`` run by a Dockerfile's
``ENTRYPOINT``, ``-c /srv/app/gunicorn.conf.py``. A path is written as the server or
the image sees it; ``bases`` are the folders the code is installed in there
(``WORKDIR``, a systemd ``WorkingDirectory``, the spec's install dir)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def project_file(root: Path, text: str, bases: list[str]) -> Path | None:
    """A path as the server sees it -> the file in the project at ``root``, if it is one."""
    path = PurePosixPath(text)
    if not path.is_absolute():
        for base in ["", *bases]:
            candidate = (root / base.lstrip("/") / path) if base else root / path
            if candidate.is_file():
                return candidate
    for base in bases:
        if base and path.is_relative_to(base):
            candidate = root / path.relative_to(base)
            if candidate.is_file():
                return candidate
    for start in range(1, len(path.parts)):  # the longest tail that exists here
        candidate = root.joinpath(*path.parts[start:])
        if candidate.is_file():
            return candidate
    return None


def launched_script(
    root: Path, words: list[str] | tuple[str, ...], bases: list[str]
) -> Path | None:
    """The project's shell script a command runs (docker-entrypoint.sh, start.sh), if any."""
    script_word = next((w for w in words[:3] if w.endswith(".sh")), None)
    if script_word is None:
        return None
    script = project_file(root, script_word, bases)
    if script is None:  # copied into the image under another folder: find it by name
        name = PurePosixPath(script_word).name
        found = [p for depth in ("", "*/", "*/*/") for p in sorted(root.glob(depth + name))]
        script = next((p for p in found if p.is_file()), None)
    return script


def module_file(root: Path, value: str, bases: list[str]) -> Path | None:
    """The file of ``FILE`` or of ``python:package.module`` (a module the server
    imports from its working directory: looked up under the project and its bases)."""
    if not value.startswith("python:"):
        return project_file(root, value, bases)
    module = value.removeprefix("python:").strip()
    parts = module.split(".")
    if not module or not all(part.isidentifier() for part in parts):
        return None
    for relative in (Path(*parts).with_suffix(".py"), Path(*parts) / "__init__.py"):
        found = project_file(root, relative.as_posix(), bases)
        if found is not None:
            return found
    return None
