"""What a project already says about its app target, outside its Python code.

- ``FLASK_APP`` in ``.flaskenv`` / ``.env`` (what ``flask run`` reads: microblog's
  ``FLASK_APP=microblog.py``);
- the commands that start it in production: Procfile, boot/entrypoint scripts,
  Dockerfile ``CMD``/``ENTRYPOINT``, compose ``command``, supervisor ``command=``
  (``gunicorn -b :5000 microblog:app``, ``granian --factory hello.app:create_app``,
  ``flask --app hello run``, ``waitress-serve --call hello:create_app``).

Nothing is imported or run: the launchers are read by :mod:`flaskprod.launch` (the
same reading ``check`` does). Detection (:mod:`flaskprod.spec.detect`) confirms each
target exists before using it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flaskprod.launch.launchers import read_launchers
from flaskprod.launch.targets import command_target

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?FLASK_APP\s*=\s*(.*?)\s*$")
_SCRIPT_DIRS = (".", "scripts", "bin", "docker", "deploy", "deployment")
#: The order production would use them in.
_ORDER = ("procfile", "script", "dockerfile", "compose", "supervisor")


@dataclass(frozen=True)
class Found:
    """A target and where it was read, for messages (``Procfile``, ``.flaskenv``)."""

    target: str
    where: str


def flask_app_setting(root: Path) -> Found | None:
    """``FLASK_APP`` from ``.flaskenv``, else ``.env`` (python-dotenv's syntax)."""
    for name in (".flaskenv", ".env"):
        try:
            lines = (root / name).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            match = _ENV_LINE.match(line)
            if match:
                value = match.group(1).split(" #", 1)[0].strip().strip("'\"")
                if value:
                    return Found(value, f"FLASK_APP in {name}")
    return None


def launcher_targets(root: Path, extra_dirs: tuple[Path, ...] = ()) -> list[Found]:
    """Every app target the project's launchers name, in the order production would
    use them: Procfile, scripts, Dockerfiles, compose files, supervisor configs.
    ``extra_dirs``: more folders whose compose files may start this one (the
    repository's root when the app is in a subfolder of it)."""
    found: list[Found] = []
    for launcher in read_launchers(launcher_files(root, extra_dirs), _ORDER):
        target = command_target(launcher.text)
        if target:
            path = launcher.file
            where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            found.append(Found(target, where))
    return found


def launcher_files(root: Path, extra_dirs: tuple[Path, ...]) -> dict[str, list[Path]]:
    """Where projects keep their launchers (not a walk of the whole tree: a launcher
    in some other folder starts some other program)."""
    composes = [
        path
        for folder in (root, *extra_dirs)
        for path in sorted([*folder.glob("docker-compose*.y*ml"), *folder.glob("compose*.y*ml")])
    ]
    return {
        "procfile": [root / "Procfile"],
        "script": [s for folder in _SCRIPT_DIRS for s in sorted((root / folder).glob("*.sh"))],
        "dockerfile": sorted(root.glob("Dockerfile*")),
        "compose": composes,
        "supervisor": sorted(
            [*root.glob("deployment/supervisor*/*.conf"), *root.glob("supervisor*.conf")]
        ),
    }
