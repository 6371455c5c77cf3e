"""The app's own settings (``app.settings``) as ``up`` gives them to the app.

On this machine ``{root}`` is the project folder (the app's code is here, not in
``app.root``); a setting with a value is passed; an optional one without a value stays
unset (the app tests ``is not None``); a required secret (``os.environ["API_TOKEN"]``,
placeholder ``CHANGE-ME``) gets a value generated once and kept in the state folder, as
up's SECRET_KEY. The environment up runs with wins over all of them: it is how a user
gives a setting its real value. A required plain setting nobody gave is reported
(:attr:`LocalSettings.missing`), never invented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flaskprod.spec.model import Spec
from flaskprod.spec.settings_scan import IMAGE_SETTINGS, REQUIRED, is_secret
from flaskprod.stack.state import StateDir


@dataclass
class LocalSettings:
    env: dict[str, str] = field(default_factory=dict)
    #: Required secrets given a generated value (kept in the state folder).
    generated: list[str] = field(default_factory=list)
    #: Required plain settings with no value here: the app will not start without them.
    missing: list[str] = field(default_factory=list)


def local_value(spec: Spec, project: Path, value: str) -> str:
    """A spec value with ``{root}`` as the project folder, the rest as the spec says."""
    return spec.resolve(value.replace("{root}", str(project)))


def local_settings(
    spec: Spec, project: Path, dirs: StateDir, environ: Mapping[str, str]
) -> LocalSettings:
    found = LocalSettings()
    for name, value in spec.app.settings.items():
        if name in spec.paths.media_env or name in environ:
            continue  # the uploads folder is set by up itself; the user's value wins
        if name in IMAGE_SETTINGS:
            continue  # the python image's (PYTHON_VERSION): the project's interpreter's
        if value == REQUIRED:
            if is_secret(name):
                found.env[name] = dirs.generated_secret(name)
                found.generated.append(name)
            else:
                found.missing.append(name)
        elif value:
            found.env[name] = local_value(spec, project, value)
    return found


def media_folder(spec: Spec, project: Path, dirs: StateDir) -> Path:
    """Where uploads go under up. A ``media_dir`` inside the code (flask-on-docker:
    ``{root}/project/media``, where the app builds it from APP_FOLDER) is that folder of
    the project itself, so what the app writes is what nginx serves; one outside the
    code is the state folder's ``media/``."""
    install = spec.app.install_dir.rstrip("/")
    media = spec.media_dir.rstrip("/")
    if media == install or media.startswith(install + "/"):
        return project / media[len(install) :].lstrip("/")
    return dirs.media
