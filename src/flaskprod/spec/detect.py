"""Find the Flask app of a project directory and what the kit needs to know about it.

Static first: the candidate files are parsed with :mod:`ast` (``Flask(...)`` instances,
``create_app`` factories), nothing is imported. Then, unless told not to, the chosen
app is imported in a child process (:mod:`flaskprod.spec.probe`) to confirm it loads and
to read what only the live app knows: its static folders, extensions, routes and
``MAX_CONTENT_LENGTH``. The result is a :class:`ProjectInfo`, which is also the
``project`` mapping :func:`flaskprod.kit.render.render_kit` takes.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from flaskprod.errors import EnvironmentProblem, ProjectError
from flaskprod.spec import launchers, probe, repository
from flaskprod.spec import routes as app_routes
from flaskprod.spec.buildinfo import BuildInfo, scan_build
from flaskprod.spec.csp_scan import TemplateLoads, scan_templates
from flaskprod.spec.interpreter import resolve_python
from flaskprod.spec.server_choice import ServerChoice, detect_server
from flaskprod.spec.settings_scan import AppSettings, scan_settings
from flaskprod.spec.sqlite_scan import scan_sqlite
from flaskprod.spec.stackdeps import DatabaseChoice, declared, detect_database

#: Files Flask itself looks for, in its order, then packages exposing a factory.
CANDIDATE_FILES = ("wsgi.py", "app.py", "application.py")
_FACTORIES = ("create_app", "make_app")
#: The src/ layout (PyPA's recommendation): packages live in src/, not at the root.
SOURCE_DIR = "src"
_APP_NAMES = ("app", "application")
#: Folders that never hold the app (and that the source scan skips).
_SKIP_DIRS = frozenset(
    {"tests", "test", "migrations", "node_modules", "venv", "env", "build", "dist", "docs"}
)
_TARGET = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*(\(.*\))?)?$")
#: The probe's one line for a missing environment variable: KeyError: 'DATABASE_URL'.
_ENV_KEY_ERROR = re.compile(r"KeyError: '([A-Z][A-Z0-9_]*)'")
_MAX_SCANNED = 2000  # source files read for imports; a bound for huge trees
PROBE_TIMEOUT = 30.0
_LOCK_FILES = ("Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "pdm.lock", "setup.py")


@dataclass(frozen=True)
class Candidate:
    """A place that exposes a Flask app, found without importing anything."""

    module: str
    file: str  # relative to the project root
    target: str  # module:app or module:create_app()
    imports: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProjectInfo(Mapping[str, Any]):
    """A Flask project as detected. Also a read-only mapping of its fields (without
    ``root``: rendered files must not depend on where the project sits locally)."""

    root: Path
    target: str
    name: str
    app_file: str
    static_dir: str | None = "static"
    static_url: str = "/static/"
    static_dirs: tuple[str, ...] = ()
    uses_sqlalchemy: bool = False
    uses_migrate: bool = False
    migrations_dir: str = "migrations"
    migrations_present: bool = False
    #: Render the migration steps (release phase, compose one-off, k8s Job): Flask-Migrate
    #: is used or a migrations folder exists. The kit's name for it (PROJECT_DEFAULTS).
    migrations: bool = False
    uses_redis: bool = False
    routes: tuple[str, ...] = ()
    max_content_length: int | None = None
    requirements_file: str | None = None
    dependency_files: tuple[str, ...] = ()
    #: The app's package is in src/: importable only once the project is installed.
    src_layout: bool = False
    #: True when the app was imported to confirm and describe it.
    imported: bool = False
    #: (rule, endpoint) of every route, when imported.
    endpoints: tuple[tuple[str, str], ...] = ()
    #: The app's own liveness/readiness routes; None: it has none (or was not imported).
    health_routes: app_routes.HealthRoutes | None = None
    #: The login route from the URL map (endpoint ``login``), when imported.
    login_path: str | None = None
    #: The project's folder inside its git repository, when it is a subfolder of one.
    repo_subdir: str | None = None
    #: The sources import flaskprod (Production answers /health and /health/ready).
    uses_flaskprod: bool = False
    #: The app server and database driver the project uses (spec/server_choice, stackdeps).
    server: ServerChoice | None = None
    database: DatabaseChoice | None = None
    #: The app's own environment settings and uploads setting (spec/settings_scan.py).
    settings: AppSettings | None = None
    #: Python version, lock file, build steps, task queue (spec/buildinfo.py).
    buildinfo: BuildInfo | None = None
    #: The lock file the image installs from: "uv", "poetry" or None (buildinfo.lock).
    lock: str | None = None
    #: What the templates load from where, for the CSP (spec/csp_scan.py).
    template_loads: TemplateLoads | None = None
    #: The app writes files in its instance folder ({root}/instance; spec/sqlite_scan.py).
    instance_folder: bool = False

    def _keys(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "root"]

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


def detect_project(
    root: Path | str,
    app: str | None = None,
    *,
    introspect: bool = True,
    timeout: float = PROBE_TIMEOUT,
    python: Path | None = None,
) -> ProjectInfo:
    """Detect the Flask app of ``root`` (or use ``app``, in Flask's ``--app`` syntax),
    importing it with ``python`` (default: :func:`flaskprod.spec.interpreter.resolve_python`)."""
    detection = Detection(root, app, introspect=introspect, timeout=timeout, python=python)
    try:
        return detection.result()
    finally:
        detection.cancel()


class Detection:
    """A detection under way: the app is found statically at once, and its import
    starts in a child process, so the caller can do other work (load its renderer)
    while the app imports. :meth:`result` waits for it; :meth:`cancel` stops it."""

    def __init__(
        self,
        root: Path | str,
        app: str | None = None,
        *,
        introspect: bool = True,
        timeout: float = PROBE_TIMEOUT,
        python: Path | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ProjectError(f"{self.root}: not a directory")
        self.candidate = _explicit(self.root, app) if app else _from_settings_or_scan(self.root)
        self.timeout = timeout
        self._deadline = time.monotonic() + timeout
        if introspect and python is None:
            python = resolve_python(self.root).executable
        self._process = (
            _start_probe(self.root, self.candidate, python) if introspect and python else None
        )
        try:
            self._facts = _static_facts(self.root, self.candidate)  # while the child imports
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Stop the child if it still runs (it is ours: we know its pid)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()

    def result(self) -> ProjectInfo:
        info = dict(self._facts)
        root = self.root
        migrations_dir = "migrations"
        if self._process is not None:
            live = self._wait()
            static = live["static_dir"]
            info.update(
                static_dir=static if static and (root / static).is_dir() else None,
                static_url=(live["static_url_path"] or "") + "/",
                static_dirs=tuple(live["static_dirs"]),
                uses_sqlalchemy=live["uses_sqlalchemy"] or info["uses_sqlalchemy"],
                uses_migrate=live["uses_migrate"] or info["uses_migrate"],
                uses_redis=live["uses_redis"] or info["uses_redis"],
                routes=tuple(live["routes"]),
                max_content_length=live["max_content_length"],
                imported=True,
                endpoints=tuple((rule, endpoint) for rule, endpoint in live["endpoints"]),
                health_routes=app_routes.health_routes(live["routes"], live["middleware_health"]),
                login_path=app_routes.login_path(live["endpoints"]),
            )
            migrations_dir = live["migrations_dir"] or migrations_dir
        info["migrations_dir"] = migrations_dir
        info["migrations_present"] = (root / migrations_dir / "env.py").is_file()
        info["migrations"] = info["uses_migrate"] or info["migrations_present"]
        return ProjectInfo(**info)

    def _wait(self) -> dict[str, Any]:
        assert self._process is not None
        target = self.candidate.target
        try:
            stdout, stderr = self._process.communicate(
                timeout=max(0.0, self._deadline - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            self.cancel()
            raise ProjectError(
                f"importing {target} took more than {self.timeout:g} s "
                "(does it connect to something or wait at import time?)",
                hint="fix it, or pass --no-import to detect without importing",
            ) from None
        lines = stdout.strip().splitlines()
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except (IndexError, ValueError):
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            raise ProjectError(
                f"importing {target} crashed (exit status {self._process.returncode}): {last}"
            ) from None
        if not result["ok"]:
            where = result.get("where") or self.candidate.file
            error = str(result["error"])
            variable = _ENV_KEY_ERROR.fullmatch(error)
            hint = "fix it, or pass --no-import to detect without importing"
            if variable:
                # os.environ["DATABASE_URL"] at import, as the articles write it: the
                # app is fine, this shell just lacks production's environment.
                name = variable.group(1)
                hint = (
                    f"if the app reads {name} from the environment when it is imported, "
                    f"set it for this command ({name}=... flaskprod ...) or pass --no-import"
                )
            raise ProjectError(f"cannot import the app {target}: {where}: {error}", hint=hint)
        return result


def _static_facts(root: Path, candidate: Candidate) -> dict[str, Any]:
    """What the sources say without importing anything."""
    sources = _scan_sources(root)
    imports = set().union(*(imported for imported, _ in sources.values())) if sources else set()
    mentions_redis = any(redis for _, redis in sources.values())
    static_dir, static_url = _static_guess(root, candidate)
    dependency_files = _dependency_files(root)
    repo_subdir, repo_name = repository.subfolder(root)
    names = declared(root, dependency_files)
    sqlite = scan_sqlite(_own_python_files(root))
    src_layout = candidate.file.startswith(f"{SOURCE_DIR}/")
    return {
        "server": detect_server(root, names),
        "database": detect_database(
            names, "flask_sqlalchemy" in imports, own_sqlite=sqlite.own_sqlite
        ),
        # its own SQLite file in its instance folder (flaskr): kept writable (an installed
        # src-layout package has its instance folder in the venv instead)
        "instance_folder": sqlite.own_sqlite and sqlite.uses_instance and not src_layout,
        "root": root,
        "target": candidate.target,
        "name": _slug(repo_name or root.name),  # a subfolder ("web") is named by its repo
        "repo_subdir": repo_subdir,
        "uses_flaskprod": "flaskprod" in imports,
        "app_file": candidate.file,
        "static_dir": static_dir,
        "static_url": static_url,
        "static_dirs": (static_dir,) if static_dir else (),
        "uses_sqlalchemy": "flask_sqlalchemy" in imports,
        "uses_migrate": "flask_migrate" in imports,
        "uses_redis": "redis" in imports or mentions_redis,
        "max_content_length": _max_content_length(root, sources),
        "requirements_file": _main_requirements(dependency_files),
        "dependency_files": dependency_files,
        "src_layout": src_layout,
        "settings": scan_settings(root, _python_files(root)),
        "buildinfo": (build := scan_build(root, dependency_files)),
        "lock": build.lock,
        "template_loads": scan_templates(root),
    }


# -- finding the app ------------------------------------------------------------------


def _explicit(root: Path, app: str, where: str = "--app") -> Candidate:
    app = app.strip()
    if app.endswith(".py") and ":" not in app:
        app = app[:-3].replace("/", ".").removesuffix(".__init__")
        if app.startswith(f"{SOURCE_DIR}.") and (root / SOURCE_DIR).is_dir():
            app = app[len(SOURCE_DIR) + 1 :]  # src/notes/__init__.py is the module notes
    if not _TARGET.match(app):
        raise ProjectError(
            f"{where} {app!r}: not a Flask app target",
            hint="use 'module', 'module:app' or 'module:create_app()'",
        )
    module, _, attribute = app.partition(":")
    file = _module_file(root, module)
    if file is None:
        base = module.replace(".", "/")
        raise ProjectError(
            f"{where} {app}: no module '{module}' in {root} (looked for {base}.py and "
            f"{base}/__init__.py, at the root and in src/)"
        )
    if attribute:
        imports = frozenset(_top_imports(_parse(root, file)))
        return Candidate(module, _rel(file, root), app, imports)
    found = _scan_module(root, module, file)
    if found is None:
        raise ProjectError(
            f"{where} {app}: {_rel(file, root)} defines no Flask app or factory",
            hint="name it, e.g. --app module:app or --app 'module:create_app()'",
        )
    return found


def _from_settings_or_scan(root: Path) -> Candidate:
    """FLASK_APP from .flaskenv/.env, else a scan of the sources, else the target the
    project's launchers (Procfile, scripts, Dockerfile, compose) name."""
    setting = launchers.flask_app_setting(root)
    if setting:
        return _explicit(root, setting.target, where=setting.where)
    try:
        return _automatic(root)
    except ProjectError:
        found = _from_launchers(root)
        if found is None:
            raise
        return found


def _from_launchers(root: Path) -> Candidate | None:
    repo = repository.find_repository(root)
    extra = (repo.root,) if repo and repo.root != root else ()
    for found in launchers.launcher_targets(root, extra):
        try:
            return _explicit(root, found.target, where=found.where)
        except ProjectError:
            continue  # a launcher of another app in the same repository
    return None


def _automatic(root: Path) -> Candidate:
    looked: list[str] = []
    found: list[Candidate] = []
    for name in CANDIDATE_FILES:
        looked.append(name)
        if (root / name).is_file():
            candidate = _scan_module(root, name[:-3], root / name)
            if candidate:
                found.append(candidate)
    for package in _packages(root):
        init = package / "__init__.py"
        looked.append(_rel(init, root))
        candidate = _scan_module(root, package.name, init)
        if candidate:
            found.append(candidate)
    # wsgi.py doing `from shop import create_app` is the entry point of shop, not a rival.
    # A package importing its own submodules (from blog.views import bp) stays a candidate.
    found = [
        candidate
        for candidate in found
        if not any(candidate.module in other.imports for other in found if other is not candidate)
    ]
    if not found:
        raise ProjectError(
            f"no Flask app found in {root} (looked in {', '.join(looked)} and the "
            "__init__.py of every top-level package, at the root and in src/, for a "
            "Flask(...) instance or a create_app() factory)",
            hint="pass --app module:app",
        )
    if len(found) > 1:
        listed = ", ".join(f"{candidate.target} ({candidate.file})" for candidate in found)
        raise ProjectError(
            f"several Flask apps found in {root}: {listed}",
            hint="choose one with --app",
        )
    return found[0]


def _packages(root: Path) -> Iterator[Path]:
    """Top-level packages: at the root, then in src/ (the src layout)."""
    for folder in (root, root / SOURCE_DIR):
        if folder.is_dir():
            for package in sorted(folder.iterdir()):
                if not _skipped(package.name) and (package / "__init__.py").is_file():
                    yield package


def _module_file(root: Path, module: str) -> Path | None:
    """A module's file at the root, else in src/ (where gunicorn finds it once the
    project is installed, as the kit's image and CI do with 'pip install .')."""
    for base_dir in (root, root / SOURCE_DIR):
        base = base_dir.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
    return None


def source_dir(root: Path, module: str) -> Path | None:
    """src/ when the module lives there (and not at the root): the folder to put on
    sys.path to import it without installing the project."""
    file = _module_file(root, module.split(".")[0])
    return root / SOURCE_DIR if file and _rel(file, root).startswith(f"{SOURCE_DIR}/") else None


def _parse(root: Path, file: Path) -> ast.Module:
    try:
        return ast.parse(file.read_bytes(), filename=str(file))
    except SyntaxError as error:
        raise ProjectError(
            f"{_rel(file, root)}:{error.lineno}: SyntaxError: {error.msg}",
            hint="fix it, then run the command again",
        ) from None
    except (OSError, ValueError) as error:
        raise ProjectError(f"{_rel(file, root)}: cannot read: {error}") from None


def _is_flask_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "Flask") or (
        isinstance(func, ast.Attribute) and func.attr == "Flask"
    )


def _scan_module(root: Path, module: str, file: Path) -> Candidate | None:
    """The app a module exposes, in Flask's own order of preference: a variable named
    ``app`` or ``application``, then a single ``Flask(...)`` instance, then a factory."""
    tree = _parse(root, file)
    named: list[str] = []
    instances: list[str] = []
    factories: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            named += [a.asname or a.name for a in node.names if (a.asname or a.name) in _APP_NAMES]
        elif isinstance(node, ast.FunctionDef) and node.name in _FACTORIES:
            factories.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
            if _is_flask_call(node.value):
                instances += names
            if isinstance(node.value, ast.Call):
                named += [name for name in names if name in _APP_NAMES]
    chosen = next((name for name in _APP_NAMES if name in named), None)
    if chosen is None and instances:
        chosen = instances[0]
    target = f"{module}:{chosen}" if chosen else None
    if target is None and factories:
        target = f"{module}:{factories[0]}()"
    if target is None:
        return None
    return Candidate(module, _rel(file, root), target, frozenset(_top_imports(tree)))


def _top_imports(tree: ast.Module) -> set[str]:
    """Top-level names of the modules a module imports at its top level."""
    imports: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            imports.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imports.add(node.module.split(".")[0])
    return imports


# -- what the sources say, statically ----------------------------------------------


def _skipped(name: str) -> bool:
    return name.startswith((".", "_")) or name in _SKIP_DIRS or name.endswith(".egg-info")


def _python_files(root: Path) -> Iterator[Path]:
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        for name in sorted(files):
            if name.endswith(".py"):
                count += 1
                if count > _MAX_SCANNED:
                    return
                yield Path(folder) / name


def _own_python_files(root: Path) -> Iterator[Path]:
    """The project's Python files without the kit's own (flaskprod_wsgi.py, the
    gunicorn config: they name sqlite3 and DATABASE_URL for the readiness check)."""
    from flaskprod.kit.write import read_manifest

    ours = {root / path for path in read_manifest(root)}
    return (path for path in _python_files(root) if path not in ours)


def _scan_sources(root: Path) -> dict[Path, tuple[set[str], bool]]:
    """Per source file: the top-level modules it imports, and whether it names REDIS_URL.
    Files that do not parse are skipped here (the app's own file was parsed already)."""
    result: dict[Path, tuple[set[str], bool]] = {}
    for path in _python_files(root):
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (OSError, ValueError, SyntaxError):
            continue
        imports: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imports.add(node.module.split(".")[0])
        result[path] = (imports, "REDIS_URL" in text)
    return result


def _flask_call(root: Path, candidate: Candidate) -> tuple[Path, ast.Call] | None:
    """The ``Flask(...)`` call of the app: in its module, else in a project module it
    imports (``wsgi.py`` importing the package that builds the app)."""
    files = [root / candidate.file]
    files += [file for name in sorted(candidate.imports) if (file := _module_file(root, name))]
    for file in files:
        for node in ast.walk(_parse(root, file)):
            if isinstance(node, ast.Call) and _is_flask_call(node):
                return file, node
    return None


def _static_guess(root: Path, candidate: Candidate) -> tuple[str | None, str]:
    """Flask's defaults (``static/`` next to the app's module, URL ``/static``) unless
    the ``Flask(...)`` call names other ones with plain strings."""
    found = _flask_call(root, candidate)
    module_file, call = found if found else (root / candidate.file, None)
    keywords = {
        keyword.arg: keyword.value.value
        for keyword in (call.keywords if call else [])
        if isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str)
    }
    folder = module_file.parent / str(keywords.get("static_folder", "static"))
    url = str(keywords.get("static_url_path", "/" + folder.name)).rstrip("/") + "/"
    return (_rel(folder, root) if folder.is_dir() else None), url


_NUMBER_OPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Mult: lambda a, b: a * b,
    ast.Add: lambda a, b: a + b,
    ast.Pow: lambda a, b: int(a**b),
}


def _constant_int(node: ast.AST) -> int | None:
    """``16 * 1024 * 1024`` and the like, without evaluating anything else."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _NUMBER_OPS:
        left, right = _constant_int(node.left), _constant_int(node.right)
        if left is None or right is None or (isinstance(node.op, ast.Pow) and right > 64):
            return None
        return _NUMBER_OPS[type(node.op)](left, right)
    return None


def _max_content_length(root: Path, sources: Mapping[Path, Any]) -> int | None:
    """A literal ``MAX_CONTENT_LENGTH = ...`` or ``config["MAX_CONTENT_LENGTH"] = ...``."""
    for path in sources:
        text = path.read_text(encoding="utf-8")
        if "MAX_CONTENT_LENGTH" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                key: object = None
                if isinstance(target, ast.Name):
                    key = target.id
                elif isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    key = target.slice.value
                if key == "MAX_CONTENT_LENGTH":
                    value = _constant_int(node.value)
                    if value is not None:
                        return value
    return None


def _dependency_files(root: Path) -> tuple[str, ...]:
    found = [path for path in root.glob("requirements*.txt") if path.is_file()]
    found += [path for path in root.glob("requirements/*.txt") if path.is_file()]
    found += [path for path in root.glob("requirements*.in") if path.is_file()]
    found += [root / name for name in ("pyproject.toml", *_LOCK_FILES) if (root / name).is_file()]
    return tuple(sorted(_rel(path, root) for path in found))


def _main_requirements(files: tuple[str, ...]) -> str | None:
    """The file production installs from: requirements.txt, else the most production-
    looking requirements file; None when only pyproject.toml declares them."""
    texts = [name for name in files if name.endswith(".txt")]
    if "requirements.txt" in texts:
        return "requirements.txt"
    for word in ("prod", "main", "base"):
        for name in texts:
            if word in name.rsplit("/", 1)[-1]:
                return name
    runtime = [name for name in texts if not re.search(r"dev|test|lint|doc", name)]
    return runtime[0] if runtime else None


# -- importing, in a child process ----------------------------------------------------


def _start_probe(root: Path, candidate: Candidate, python: Path) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        # Detection is not production: the app's fail-fast gate must not block it.
        "FLASKPROD_ENV": "development",
        "PYTHONDONTWRITEBYTECODE": "1",  # leave no __pycache__ in the user's project
    }
    source = source_dir(root, candidate.module)
    if source is not None:  # the src layout, importable without installing the project
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(source), os.environ.get("PYTHONPATH")])
        )
    # The probe's source is passed with -c: it needs only Flask, not flaskprod, in the
    # project's interpreter, and the project folder (cwd) comes first on sys.path.
    code = Path(probe.__file__).read_text(encoding="utf-8") + "\nmain()\n"
    try:
        return subprocess.Popen(
            [str(python), "-c", code, candidate.target],
            cwd=root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError as error:
        # A .venv copied from another machine, or a python that is not executable.
        raise EnvironmentProblem(
            f"cannot run the project's Python {_rel(python, root)}: {error.strerror}",
            hint="recreate the virtual environment, or pass --no-import",
        ) from None


# -- small helpers ----------------------------------------------------------------------


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _slug(text: str) -> str:
    """A directory name -> a valid spec name (lowercase, letters first, 31 at most)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:31].rstrip("-")
    return slug or "app"
