"""``check`` keeps the app's import and the kit's render in the project's state folder
(flaskprod.check.memo): a second run with nothing changed does not import the app
again, and any change that matters (a file's content, the environment) imports it anew.

The app records each import in a file outside the project (not part of the digest), so
the tests count real imports rather than trust the cache's own word.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from project_files import write

from flaskprod.check.memo import CACHE_DIRNAME, STATE_DIRNAME, project_digest
from flaskprod.check.runner import CheckOptions, CheckResult, run_checks

APP = """\
import os
from flask import Flask

with open({log!r}, "a") as log:
    log.write("imported\\n")

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
app.config["GREETING"] = {greeting!r}
app.config["ROOT"] = os.path.dirname(os.path.abspath(__file__))


@app.get("/health")
def health():
    return "ok"
"""


def project(root: Path, log: Path, greeting: str = "hello") -> Path:
    """A gunicorn unit reading an env file that is on the server only: its secrets come
    from the template, as random stand-ins that differ each run."""
    return write(
        root,
        {
            "app.py": APP.format(log=str(log), greeting=greeting),
            "deploy/app.service": "[Service]\nUser=app\nEnvironmentFile=/etc/app/app.env\n"
            "ExecStart=/srv/app/.venv/bin/gunicorn -w 4 -b unix:/run/app/app.sock app:app\n",
            ".env.example": "SECRET_KEY=change-me\n",
        },
    )


def check(root: Path) -> CheckResult:
    return run_checks(CheckOptions(root=root, select=("APP",)))


def imports(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def without_secret(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "SECRET_KEY"}


def judged(result: CheckResult) -> set[tuple[str, str]]:
    return {(f.id, f.message) for f in result.findings}


def test_a_second_check_reuses_the_import_until_a_file_changes(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    root = project(tmp_path / "proj", log)
    first = check(root)
    assert first.context.app is not None, first.context.app_error
    assert imports(log) == 1
    again = check(root)
    assert imports(log) == 1, "the second check imported the app again"
    assert again.context.app is not None and first.context.app is not None
    assert without_secret(again.context.app.config) == without_secret(first.context.app.config)
    assert again.context.app.routes == first.context.app.routes
    # the kept config carries THIS run's stand-in secret, so no rule judges a stale one
    secret = again.context.app_config["SECRET_KEY"]
    assert secret == again.context.cache["stand_ins"]["SECRET_KEY"] != "change-me"
    assert secret != first.context.app_config["SECRET_KEY"]
    assert judged(again) == judged(first)
    assert not [f for f in again.findings if f.id == "APP002"]
    # the cache is in the state folder, ignored by git
    cache = root / STATE_DIRNAME / CACHE_DIRNAME
    assert (cache / "app-probe.json").is_file()
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"

    # same size, same mtime, other content: judged by content, imported again
    app = root / "app.py"
    stat = app.stat()
    app.write_text(app.read_text().replace("'hello'", "'howdy'"))
    os.utime(app, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = check(root)
    assert imports(log) == 2
    assert changed.context.app_config["GREETING"] == "howdy"


def test_another_environment_imports_again(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    root = project(tmp_path / "proj", log)
    check(root)
    env_file = write(tmp_path / "env", {"prod.env": "SECRET_KEY=" + "k" * 40 + "\n"})
    given = run_checks(CheckOptions(root=root, select=("APP",), env_file=env_file / "prod.env"))
    assert imports(log) == 2
    assert given.context.app_config["SECRET_KEY"] == "k" * 40


def test_an_app_that_fails_to_import_is_kept_failing(tmp_path: Path) -> None:
    """A refusal to start is a result (APP000): kept like any other, same message."""
    log = tmp_path / "imports.log"
    root = project(tmp_path / "proj", log)
    (root / "app.py").write_text(
        (root / "app.py").read_text().replace("app = Flask", "raise RuntimeError('no db')\napp=F")
    )
    first = check(root)
    second = check(root)
    assert imports(log) == 1
    assert first.context.app_error == second.context.app_error
    assert "RuntimeError: no db" in (second.context.app_error or "")


def test_the_digest_is_by_content_and_leaves_out_state_and_venvs(tmp_path: Path) -> None:
    root = write(tmp_path / "p", {"a.py": "x = 1\n", ".venv/lib/b.py": "", ".flaskprod/s": ""})
    before = project_digest(root)
    (root / ".venv" / "lib" / "b.py").write_text("changed")
    (root / ".flaskprod" / "s").write_text("changed")
    assert project_digest(root) == before
    (root / "a.py").write_text("x = 2\n")
    assert project_digest(root) != before


def test_an_unwritable_state_folder_costs_only_the_work(tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    root = project(tmp_path / "proj", log)
    (root / STATE_DIRNAME).write_text("a file where the folder would be")
    assert check(root).context.app is not None
    assert check(root).context.app is not None
    assert imports(log) == 2  # nothing kept, nothing broken


def test_a_copied_project_is_imported_at_its_new_place(tmp_path: Path) -> None:
    """Same files, other folder (the cache copied along): the app's paths (its
    instance folder, anything built from __file__) are the copy's, so it is imported."""
    log = tmp_path / "imports.log"
    root = project(tmp_path / "proj", log)
    check(root)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    moved = check(copy)
    assert imports(log) == 2
    assert moved.context.app_config["ROOT"] == str(copy.resolve())
