"""Every third-party module flaskprod imports is declared in pyproject.toml.

A clean ``pip install "flaskprod[cli]"`` must not end in ``No module named 'packaging'``
(issue #12, item 3): a module that only happens to be installed here, pulled in by
some other package, is a missing dependency waiting for a user.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "flaskprod"
#: Extras that are not for users of flaskprod (the reference shop and the test suite).
_NOT_SHIPPED = {"dev"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


#: Reached only through the user's app, which brings them (not flaskprod's to declare).
_APP_BROUGHT = {
    "alembic": "health.py reads migration heads only when the app uses Flask-Migrate",
    "pymysql": "stall_drivers.py probes MariaDB only for an app whose DATABASE_URL is "
    "mysql+pymysql: the app ships that driver",
}


class _Imports(ast.NodeVisitor):
    """Absolute imports that must succeed: not under ``if TYPE_CHECKING:`` (never run)
    nor in a ``try`` that catches ImportError (optional by design)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Try(self, node: ast.Try) -> None:
        caught = " ".join(ast.unparse(h.type) for h in node.handlers if h.type is not None)
        if "ImportError" not in caught and "ModuleNotFoundError" not in caught:
            self.generic_visit(node)
            return
        for statement in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(statement)

    def visit_Import(self, node: ast.Import) -> None:
        self.names += [alias.name for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.names.append(node.module)


def imported_modules(folder: Path) -> dict[str, Path]:
    """Top-level names of every required absolute import under ``folder`` (anywhere in
    a file, function-level imports included), with a file that imports each."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        visitor = _Imports()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for name in visitor.names:
            found.setdefault(name.partition(".")[0], path)
    return found


def declared_distributions(pyproject: Path) -> set[str]:
    """Distributions named in [project] dependencies and every shipped extra."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        if extra not in _NOT_SHIPPED:
            requirements += items
    return {_canonical(re.split(r"[\[<>=!~; ]", item, maxsplit=1)[0]) for item in requirements}


def undeclared(folder: Path, pyproject: Path) -> dict[str, str]:
    """Third-party modules imported under ``folder`` whose distribution is not
    declared: module -> the file importing it."""
    owners = packages_distributions()
    declared = declared_distributions(pyproject)
    missing: dict[str, str] = {}
    for module, path in imported_modules(folder).items():
        if module in sys.stdlib_module_names or module in ("flaskprod", "__future__"):
            continue
        if module in _APP_BROUGHT:
            continue
        distributions = {_canonical(d) for d in owners.get(module, [])}
        if not distributions:
            missing[module] = f"{path.relative_to(folder.parent)} (no installed distribution)"
        elif not distributions & declared:
            missing[module] = f"{path.relative_to(folder.parent)} ({', '.join(distributions)})"
    return missing


def test_every_imported_module_is_declared() -> None:
    assert undeclared(SOURCE, ROOT / "pyproject.toml") == {}


def test_an_undeclared_import_is_found(tmp_path: Path) -> None:
    """The check itself can fail: packaging imported, pyproject without it."""
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "a.py").write_text(
        "import os\n"
        "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n"
        "def f():\n    from packaging.version import Version\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "pkg"\ndependencies = ["flask"]\n'
        '[project.optional-dependencies]\ndev = ["packaging"]\n'
    )
    assert set(undeclared(package, tmp_path / "pyproject.toml")) == {"packaging"}
