"""The public surface is exactly ``__all__``, and every name in it resolves."""

import re
import subprocess
import sys
from pathlib import Path

import flaskprod


def test_all_names_resolve() -> None:
    for name in flaskprod.__all__:
        assert getattr(flaskprod, name) is not None


def test_production_is_the_runtime_class() -> None:
    from flaskprod.runtime.production import Production

    assert flaskprod.Production is Production


def test_unknown_attribute_raises() -> None:
    try:
        flaskprod.NotAThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as error:
        assert "NotAThing" in str(error)
    else:
        raise AssertionError("an unknown attribute resolved")


def test_cli_import_does_not_import_flask() -> None:
    code = "import sys, flaskprod.cli; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _cli_without(package: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The console script in an install without the [cli] extra: ``package`` cannot be
    imported (None in sys.modules makes Python raise ModuleNotFoundError for it)."""
    code = (
        f"import sys; sys.modules[{package!r}] = None; sys.argv[0] = 'flaskprod'\n"
        f"from flaskprod.cli import main; main({list(args)!r})"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_without_the_cli_extra_help_works_and_commands_say_what_to_install(
    tmp_path: Path,
) -> None:
    """'pip install flaskprod' (for Production(app)) has no pydantic, jinja2 ...:
    --help still lists every command, and running one is one line, exit 3, naming the
    missing package and the extra, never an ImportError traceback."""
    listed = _cli_without("pydantic", "--help")
    assert listed.returncode == 0, listed.stderr
    # (the column's width follows the longest command name)
    assert re.search(r"\n  up +\(needs pip install 'flaskprod\[cli\]'\)\n", listed.stdout)
    (tmp_path / "app.py").write_text("from flask import Flask\n\napp = Flask(__name__)\n")
    for command in (["up", str(tmp_path)], ["init", str(tmp_path)], ["check", str(tmp_path)]):
        ran = _cli_without("pydantic", *command)
        assert ran.returncode == 3, ran.stderr
        assert ran.stderr == (
            f"flaskprod: error: flaskprod {command[0]} needs the command-line extras (the "
            "package 'pydantic' is not installed) (pip install 'flaskprod[cli]', or "
            "'flaskprod[all]' with PostgreSQL and Redis)\n"
        ), command
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.py"]  # nothing written
