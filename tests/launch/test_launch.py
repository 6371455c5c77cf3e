"""flaskprod/launch: the one reading of a project's launchers that ``init`` (spec) and
``check`` share. The layers stay apart (launch imports neither, spec never imports
check), and both read the same server, workers and target from the same files."""

from __future__ import annotations

import ast
from pathlib import Path

from project_files import write

from flaskprod.check.context import Context
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.launch.discover import discover
from flaskprod.launch.launchers import read_launchers
from flaskprod.launch.targets import command_target
from flaskprod.spec.detect import detect_project
from flaskprod.spec.launchers import launcher_targets

SRC = Path(__file__).resolve().parents[2] / "src" / "flaskprod"
APP = "from flask import Flask\napp = Flask(__name__)\n"


def imported(package: str) -> dict[str, set[str]]:
    """Module file -> the flaskprod modules it imports (top level or in a function)."""
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
        found[path.relative_to(SRC).as_posix()] = {n for n in names if n.startswith("flaskprod")}
    return found


def test_launch_imports_no_other_layer_and_spec_never_imports_check_or_kit() -> None:
    launch = imported("launch")
    assert "launch/shell.py" in launch and "launch/launchers.py" in launch
    for module, names in launch.items():
        assert all(name.startswith("flaskprod.launch") for name in names), (module, names)
    for module, names in imported("spec").items():
        downstream = ("flaskprod.check", "flaskprod.kit", "flaskprod.stack")
        assert not any(name.startswith(downstream) for name in names), (module, names)
    assert not (SRC / "check" / "parsers" / "shell.py").exists()


def test_every_kind_of_launcher_is_read_with_its_line_and_environment(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "Procfile": "# web dynos\nweb: flask db upgrade && gunicorn -w 2 p:app\n",
            "Dockerfile": (
                "FROM python:3.12-slim\nARG PORT=8000\nENV BIND=0.0.0.0:${PORT}\n"
                "WORKDIR /srv/app\n"
                'ENTRYPOINT ["gunicorn", "-k", "gevent"]\nCMD ["-w", "3", "d:app"]\n'
            ),
            "docker-compose.yml": (
                "services:\n  web:\n    build: .\n"
                "    command: [granian, --interface, wsgi, c:app]\n"
                "    environment:\n      - GRANIAN_WORKERS=2\n"
            ),
            "deployment/supervisor/app.conf": (
                '[program:app]\ndirectory=/home/u/app\nenvironment=A="1"\n'
                "command=/home/u/app/venv/bin/gunicorn\n  s:app\n"
            ),
            "deploy/app.service": (
                "[Service]\nWorkingDirectory=/srv/app\nExecStart=-/srv/app/.venv/bin/gunicorn "
                "'u:create_app()'\n"
            ),
        },
    )
    order = ("systemd", "supervisor", "procfile", "dockerfile", "compose")
    launchers = read_launchers(discover(root), order)
    seen = [(one.origin, one.file.name, one.line, command_target(one.text)) for one in launchers]
    assert seen == [
        ("systemd", "app.service", 3, "u:create_app()"),
        ("supervisor", "app.conf", 4, "s:app"),
        ("procfile", "Procfile", 2, "p:app"),
        # the final image's ENTRYPOINT with its CMD as arguments: one command
        ("dockerfile", "Dockerfile", 5, "d:app"),
        ("compose", "docker-compose.yml", 4, "c:app"),
    ]
    by_origin = {launcher.origin: launcher for launcher in launchers}
    assert by_origin["dockerfile"].env == {"BIND": "0.0.0.0:8000"}
    assert by_origin["dockerfile"].bases == ("/srv/app",)
    assert by_origin["compose"].env == {"GRANIAN_WORKERS": "2"}
    assert by_origin["supervisor"].env == {"A": "1"}
    assert by_origin["supervisor"].bases == ("/home/u/app",)
    assert by_origin["systemd"].bases == ("/srv/app",)
    assert by_origin["procfile"].env == {"PORT": "$PORT"}


def test_init_and_check_read_the_same_gunicorn_from_an_image(tmp_path: Path) -> None:
    """ENTRYPOINT gunicorn + CMD arguments, with a ``-c python:`` config module:
    init's server choice and check's gunicorn setup agree on target and workers."""
    root = write(
        tmp_path,
        {
            "app.py": APP,
            "requirements.txt": "flask\ngunicorn\ngevent\n",
            "conf/gunicorn.py": "workers = 5\nworker_class = 'gevent'\n",
            "Dockerfile": (
                "FROM python:3.12-slim\nWORKDIR /srv\nCOPY . .\n"
                'ENTRYPOINT ["gunicorn", "-c", "python:conf.gunicorn"]\nCMD ["app:app"]\n'
            ),
        },
    )
    server = detect_project(root, introspect=False).server
    assert server is not None
    assert (server.kind, server.settings, server.source) == (
        "gunicorn",
        {"worker_class": "gevent", "workers": 5},
        "Dockerfile:4",
    )
    (setup,) = gunicorn_setups(Context(root=root, files=discover(root)))
    assert (setup.target, setup.worker_class, setup.workers) == ("app:app", "gevent", 5)
    assert [found.target for found in launcher_targets(root)] == ["app:app"]


def test_a_launcher_the_parsers_cannot_read_is_no_target(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "Dockerfile": "CMD gunicorn a:app\n",  # no FROM: not an image
            "docker-compose.yml": "services: [web\n",  # broken YAML
            "Procfile": "web: echo 'unclosed\n",
            "start.sh": "\x00binary",
        },
    )
    assert launcher_targets(root) == []
