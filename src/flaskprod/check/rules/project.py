"""Rules of the ``project`` layer: what the repository itself gets right or wrong
(secrets in git, ignore files, pinning, migrations)."""

from __future__ import annotations

import fnmatch
import math
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.envsource import app_unit, is_env_template, parse_env_file
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.compose import parse_compose
from flaskprod.check.requirements import dependencies, production_count
from flaskprod.launch.discover import source_files
from flaskprod.runtime.config import _is_placeholder

# -- git --------------------------------------------------------------------------------


def _git(ctx: Context, *args: str) -> str | None:
    """Output of a git command in the project, or None when it is not a git work tree
    (or git is missing): rules about git then say nothing rather than guess."""
    if shutil.which("git") is None:
        return None
    try:
        completed = subprocess.run(
            ["git", "-C", str(ctx.root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def tracked_files(ctx: Context) -> set[str] | None:
    """Files git tracks under the project root (relative), or None outside git."""
    if "git_tracked" not in ctx.cache:
        inside = _git(ctx, "rev-parse", "--is-inside-work-tree")
        output = _git(ctx, "ls-files", "-z", "--full-name", ".") if inside else None
        prefix = (_git(ctx, "rev-parse", "--show-prefix") or "").strip() if inside else ""
        ctx.cache["git_tracked"] = (
            None if output is None else {f.removeprefix(prefix) for f in output.split("\0") if f}
        )
    tracked: set[str] | None = ctx.cache["git_tracked"]
    return tracked


@rule(
    "PRJ001",
    layer="project",
    level=Level.CRITICAL,
    title="An environment file with secrets is committed",
    help="Remove it from git (git rm --cached .env), add it to .gitignore, and rotate "
    "every secret it held: they are in the history for anyone with a clone. Commit a "
    ".env.example with placeholders instead.",
    example="git ls-files  ->  .env",
)
def env_tracked(ctx: Context) -> Iterator[Finding]:
    tracked = tracked_files(ctx)
    if tracked is None:
        return
    for path in ctx.of_kind("env"):
        relative = ctx.relative(path)
        if relative not in tracked:
            continue
        if not is_env_template(path):
            yield env_tracked.finding(f"{relative} is tracked by git", file=relative)
            continue
        # A template (.env.example, .env.prod-sample) is meant to be committed, with
        # placeholders: only a value that looks like a real secret is a leak.
        real = [
            key
            for key, value in parse_env_file(ctx.read(path)).items()
            if re.fullmatch(_SECRET_NAME, key) and looks_secret(value)
        ]
        if real:
            yield env_tracked.finding(
                f"{relative} is a template tracked by git, but {', '.join(real)} "
                "holds what looks like a real secret, not a placeholder",
                file=relative,
            )


# -- PRJ002: secret literals ------------------------------------------------------------

_SECRET_WORDS = "SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|APIKEY|PRIVATE_KEY|ACCESS_KEY"  # noqa: S105
_SECRET_NAME = rf"[A-Za-z0-9_]*(?:{_SECRET_WORDS})[A-Za-z0-9_]*"
_ASSIGNMENT = re.compile(
    rf"""(?ix)^\s*(?:export\s+)?["']?({_SECRET_NAME})["']?\s*[:=]\s*(?:[rbuf]?)(["'])(.+?)\2"""
)
_BARE_ASSIGNMENT = re.compile(rf"(?i)^\s*({_SECRET_NAME})\s*[:=]\s*([^\s\"'#;]+)\s*$")
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+]*://[^:/\s@]+:([^@\s/]+)@")
_CONFIG_DIRS = ("config", "conf", "instance", "settings")
_CONFIG_SUFFIXES = (".py", ".ini", ".cfg", ".toml", ".yaml", ".yml", ".json", ".conf")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


#: A URL with no credentials in it (``https://accounts.google.com/o/oauth2/token`` under
#: a name like access_token_url): an address, not a secret. One with ``user:pass@`` is
#: judged by its password (_URL_PASSWORD).
_PLAIN_URL = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://[^@/\s]+(?:[/?#]\S*)?$")
#: Words template authors spell a placeholder with ("randomstringofcharacters",
#: "put-your-long-random-key-here"); a value made only of them is no secret, while a
#: passphrase of other words ("correcthorsebatterystaple") still is.
_PLACEHOLDER_LINES = (
    "a an the of to for with in is it my your our this that here there some any put",
    "insert fill replace change me set enter add use generate generated random string",
    "strings char chars character characters letter letters number numbers digit digits",
    "secret secrets key keys password passwords pass passphrase token tokens value values",
    "long longer very super really unique strong hard guess difficult something anything",
    "thing own new real actual production prod dev development local test testing",
    "example sample default placeholder dummy fake app flask django api private public",
    "session cookie signing hex base text word words goes go not and or",
)
_PLACEHOLDER_WORDS = frozenset(word for line in _PLACEHOLDER_LINES for word in line.split())
_LONGEST_WORD = max(len(word) for word in _PLACEHOLDER_WORDS)


def _only_placeholder_words(value: str) -> bool:
    """The value is letters only (any separators) and splits wholly into
    _PLACEHOLDER_WORDS: a sentence, not a key."""
    chunks = [c for c in re.split(r"[\s_.\-]+", value.lower()) if c]
    if not chunks or not all(chunk.isalpha() and chunk.isascii() for chunk in chunks):
        return False
    return all(_segments(chunk) for chunk in chunks)


def _segments(text: str) -> bool:
    # reachable[i]: text[:i] splits into words; short texts, a tiny dynamic programme
    reachable = [True] + [False] * len(text)
    for end in range(1, len(text) + 1):
        start = max(0, end - _LONGEST_WORD)
        reachable[end] = any(
            reachable[i] and text[i:end] in _PLACEHOLDER_WORDS for i in range(start, end)
        )
    return reachable[-1]


def looks_secret(value: str) -> bool:
    """A literal that looks like a real secret: long, varied, not a placeholder or a
    reference to somewhere else (``${VAR}``, ``{{ }}``, ``%(x)s``, ``os.environ``), not
    a plain URL, not a phrase of placeholder words."""
    if len(value) < 12 or any(mark in value for mark in ("${", "{{", "%(", "$(", "<", "environ")):
        return False
    if _is_placeholder(value) or value.lower().startswith(("your", "example", "dummy", "fake")):
        return False
    if _PLAIN_URL.match(value) or _only_placeholder_words(value):
        return False
    return _entropy(value) >= 3.0 and len(set(value)) >= 8


def _config_files(ctx: Context) -> Iterator[Path]:
    """Committed config-like files: named config/settings/conf, in a config folder,
    or ini/cfg (compose files are the compose layer's, env files PRJ001's)."""
    tracked = tracked_files(ctx)
    compose = set(ctx.of_kind("compose"))
    for path in source_files(ctx.root, _CONFIG_SUFFIXES, limit=2000):
        relative = path.relative_to(ctx.root)
        if path in compose:
            continue
        name = path.name.lower()
        configish = any(w in name for w in ("config", "settings", "conf", "secret", "credential"))
        in_config_dir = any(p.lower() in _CONFIG_DIRS for p in relative.parts[:-1])
        if not (configish or in_config_dir or path.suffix in (".ini", ".cfg")):
            continue
        if tracked is not None and relative.as_posix() not in tracked:
            continue  # not committed: a local file, not a leak
        yield path


@rule(
    "PRJ002",
    layer="project",
    level=Level.ERROR,
    title="A secret is written in a config file",
    help="Read secrets from the environment (os.environ['SECRET_KEY'], or the systemd "
    "EnvironmentFile / compose env_file) and rotate the one that was committed.",
    example='SECRET_KEY = "8f2c9a51e7b04d3f96a1c0e2b7d45f18"  # in config.py',
)
def secret_literals(ctx: Context) -> Iterator[Finding]:
    for path in _config_files(ctx):
        relative = ctx.relative(path)
        for number, line in enumerate(ctx.read(path).splitlines(), start=1):
            match = _ASSIGNMENT.match(line)
            if match and looks_secret(match.group(3)):
                yield secret_literals.finding(
                    f"{match.group(1)} has a literal secret value in {relative}",
                    file=relative,
                    line=number,
                )
                continue
            bare = _BARE_ASSIGNMENT.match(line)
            if bare and path.suffix in (".ini", ".cfg", ".conf") and looks_secret(bare.group(2)):
                yield secret_literals.finding(
                    f"{bare.group(1)} has a literal secret value in {relative}",
                    file=relative,
                    line=number,
                )
                continue
            url = _URL_PASSWORD.search(line)
            if url and looks_secret(url.group(1)):
                yield secret_literals.finding(
                    f"a URL with a password is written in {relative}", file=relative, line=number
                )


# -- PRJ003: .gitignore -------------------------------------------------------------------


def _ignore_patterns(text: str) -> list[tuple[str, bool]]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((line.lstrip("!").strip(), negated))
    return patterns


def ignored_by(patterns: list[tuple[str, bool]], path: str) -> bool:
    """Whether ``path`` (relative, POSIX) is excluded by gitignore/dockerignore-style
    patterns; the last matching pattern wins, ``!`` re-includes."""
    result = False
    parts = PurePosixPath(path).parts
    for pattern, negated in patterns:
        clean = pattern.strip("/")
        clean = clean.removeprefix("**/")
        if not clean:
            continue
        candidates = [path, *["/".join(parts[: i + 1]) for i in range(len(parts))]]
        anchored = pattern.startswith("/") or "/" in clean.rstrip("/")
        if not anchored:
            candidates += list(parts)
        if any(
            fnmatch.fnmatchcase(c, clean) or fnmatch.fnmatchcase(c, clean + "/**")
            for c in candidates
        ):
            result = not negated
    return result


@rule(
    "PRJ003",
    layer="project",
    level=Level.WARNING,
    title=".env is not in .gitignore where the project has or expects one",
    help="Add '.env' (and '*.env', keeping '!.env.example') to .gitignore before anyone "
    "runs git add . with real secrets in the folder.",
    example=".env.example to copy to .env, and a .gitignore without a line matching .env",
)
def env_not_ignored(ctx: Context) -> Iterator[Finding]:
    tracked = tracked_files(ctx)
    gitignore = ctx.root / ".gitignore"
    if tracked is None and not gitignore.is_file():
        return  # not a repository: nothing to commit it to
    patterns = _ignore_patterns(ctx.read(gitignore)) if tracked is None else []
    for relative, (why, source) in _env_files_expected(ctx).items():
        if tracked is not None:
            if relative in tracked:
                continue  # already committed: PRJ001's finding (or a template)
            # git itself answers, with every .gitignore and exclude file it reads
            if _git(ctx, "check-ignore", "-q", "--no-index", relative) is not None:
                continue
        elif ignored_by(patterns, relative):
            continue
        exists = (ctx.root / relative).is_file()
        yield env_not_ignored.finding(
            f"{relative} is not ignored by git ({why})",
            level=Level.ERROR if exists else Level.WARNING,
            # where to fix it, else what expects the file
            file=".gitignore" if gitignore.is_file() else source,
        )


def _env_files_expected(ctx: Context) -> dict[str, tuple[str, str | None]]:
    """The env files (relative path -> why, and the file saying so) that hold or will
    hold real values in this folder: the ones present, and the .env the project tells
    its users to create (a template beside it, compose's ${VAR}, python-dotenv, a unit's
    EnvironmentFile under its WorkingDirectory). A project with none of these has no
    .env to leak: no finding."""
    expected: dict[str, tuple[str, str | None]] = {}
    for path in ctx.of_kind("env"):
        relative = ctx.relative(path)
        if not is_env_template(path):
            expected[relative] = ("it is in the folder: 'git add .' commits it", relative)
        elif path.name.startswith(".env") or path.name.lower() in ("env.example", "example.env"):
            dot_env = ctx.relative(path.parent / ".env")
            expected.setdefault(dot_env, (f"{relative} is to be copied to it", relative))
    for compose in ctx.of_kind("compose"):
        name = ctx.relative(compose)
        if "${" in ctx.read(compose):
            dot_env = ctx.relative(compose.parent / ".env")
            expected.setdefault(dot_env, (f"{name} reads its ${{VAR}} from it", name))
        for service in parse_compose(ctx, compose).services.values():
            env_files = service.get("env_file") if isinstance(service, dict) else None
            for item in [env_files] if isinstance(env_files, str | dict) else env_files or []:
                file_name = item.get("path") if isinstance(item, dict) else item
                if isinstance(file_name, str):
                    local = ctx.relative((compose.parent / file_name).resolve())
                    expected.setdefault(local, (f"{name} reads it as an env_file", name))
    dotenv = _dotenv_user(ctx)
    if dotenv is not None:
        expected.setdefault(".env", ("python-dotenv loads it", dotenv))
    unit = app_unit(ctx)
    if unit is not None:
        workdir = unit.value("Service", "WorkingDirectory")
        for assignment in unit.all("Service", "EnvironmentFile"):
            server_path = PurePosixPath(assignment.value.lstrip("-"))
            if workdir and server_path.is_relative_to(workdir):
                inside = server_path.relative_to(workdir).as_posix()
                unit_name = ctx.relative(unit.path)
                expected.setdefault(
                    inside, (f"{unit_name} reads it from its WorkingDirectory", unit_name)
                )
    return expected


def _dotenv_user(ctx: Context) -> str | None:
    """The file showing that python-dotenv is installed (flask run then loads .env) or
    that the code loads it; None when neither."""
    for dep in dependencies(ctx):
        if dep.name == "python-dotenv":
            return dep.file
    for path in source_files(ctx.root, (".py",), limit=300):
        if re.search(r"^\s*(from|import)\s+dotenv\b", ctx.read(path), re.MULTILINE):
            return ctx.relative(path)
    return None


# -- PRJ004: pinning ------------------------------------------------------------------------


@rule(
    "PRJ004",
    layer="project",
    level=Level.WARNING,
    title="Dependencies unpinned, without a lock",
    help="Pin what production installs: a lock file (uv lock, poetry lock, pip-compile "
    "requirements.in > requirements.txt with ==versions), so every deploy installs the "
    "versions you tested.",
    example="requirements.txt: flask>=2  (no ==, no lock file)",
)
def unpinned(ctx: Context) -> Iterator[Finding]:
    if ctx.of_kind("lock"):
        return
    deps = dependencies(ctx)
    if not deps:
        if ctx.of_kind("requirements") or ctx.of_kind("pyproject"):
            return  # declared elsewhere (setup.py) or empty on purpose
        yield unpinned.finding(
            "no requirements file or [project] dependencies: the server installs whatever "
            "is current"
        )
        return
    by_file: dict[str, list[Any]] = {}
    for dep in deps:
        by_file.setdefault(dep.file, []).append(dep)
    if any(
        all(d.pinned_version or d.url for d in file_deps)
        for file, file_deps in by_file.items()
        if file.endswith(".txt")
    ):
        return  # a fully pinned requirements file is a lock
    loose = [d for d in deps if d.production and not d.pinned_version and not d.url]
    if loose:
        shown = ", ".join(f"{d.name}{d.specifier}" for d in loose[:4])
        yield unpinned.finding(
            f"{production_count(len(loose))} "
            f"{'is' if len(loose) == 1 else 'are'} not pinned and there is no lock: {shown}",
            file=loose[0].file,
            line=loose[0].line,
        )


# -- PRJ005: .dockerignore ------------------------------------------------------------------


def _build_contexts(ctx: Context) -> dict[Path, Path]:
    """Dockerfile -> its build context folder (compose build.context, else its folder)."""
    contexts = {path: path.parent for path in ctx.of_kind("dockerfile")}
    for compose in ctx.of_kind("compose"):
        for service in parse_compose(ctx, compose).services.values():
            build = service.get("build")
            if build is None:
                continue
            folder = compose.parent / (
                build if isinstance(build, str) else build.get("context", ".")
            )
            name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            dockerfile = (folder / name).resolve()
            if dockerfile in contexts:
                contexts[dockerfile] = folder.resolve()
    return contexts


_COPY_ALL = re.compile(r"^\s*(COPY|ADD)\s+(--\S+\s+)*(\.|\./|\*)\s", re.IGNORECASE | re.MULTILINE)


@rule(
    "PRJ005",
    layer="project",
    level=Level.WARNING,
    title="No .dockerignore next to a Dockerfile, or one that lets .env or .git in",
    help="Put a .dockerignore in the build context with at least .git, .env, .venv, "
    "__pycache__ and *.pyc: otherwise COPY . . bakes your secrets and history into "
    "every image layer.",
    example="Dockerfile with COPY . . and no .dockerignore",
)
def dockerignore(ctx: Context) -> Iterator[Finding]:
    for dockerfile, folder in _build_contexts(ctx).items():
        copies_all = bool(_COPY_ALL.search(ctx.read(dockerfile)))
        candidates = [
            dockerfile.parent / f"{dockerfile.name}.dockerignore",
            folder / ".dockerignore",
        ]
        ignore_file = next((c for c in candidates if c.is_file()), None)
        relative = ctx.relative(dockerfile)
        if ignore_file is None:
            if copies_all:
                yield dockerignore.finding(
                    f"{relative} copies its whole build context ({ctx.relative(folder) or '.'}) "
                    "and there is no .dockerignore: .env and .git go into the image",
                    file=relative,
                )
            continue
        patterns = _ignore_patterns(ctx.read(ignore_file))
        let_in = [name for name in (".env", ".git") if not ignored_by(patterns, name)]
        if let_in and copies_all:
            yield dockerignore.finding(
                f"{ctx.relative(ignore_file)} lets {' and '.join(let_in)} into the image",
                file=ctx.relative(ignore_file),
            )


# -- PRJ006: .env.example -------------------------------------------------------------------

_READS_ENV = re.compile(r"os\.environ|os\.getenv|environ\.get|from_prefixed_env|Production\(")


@rule(
    "PRJ006",
    layer="project",
    level=Level.INFO,
    title="No .env.example",
    help="Commit a .env.example listing every variable production needs, with "
    "placeholders: it is the checklist for whoever writes the server's environment file.",
    example="the app reads os.environ['DATABASE_URL'], no .env.example",
)
def no_env_example(ctx: Context) -> Iterator[Finding]:
    if any(is_env_template(path) for path in ctx.of_kind("env")):
        return
    # Where the environment is read: a .env file, else the first source that reads it
    # (the finding needs a place the user can open).
    where = next(iter(ctx.of_kind("env")), None) or next(
        (
            path
            for path in source_files(ctx.root, (".py",), limit=300)
            if _READS_ENV.search(ctx.read(path))
        ),
        None,
    )
    if where is not None:
        yield no_env_example.finding(
            "the app reads its settings from the environment but no .env.example documents them",
            file=ctx.relative(where),
        )


# -- PRJ007: migrations ---------------------------------------------------------------------


def _uses_migrate(ctx: Context) -> bool:
    if ctx.app is not None and "migrate" in ctx.app.extensions:
        return True
    if any(d.name == "flask-migrate" and d.production for d in dependencies(ctx)):
        return True
    for path in source_files(ctx.root, (".py",), limit=300):
        if re.search(r"^\s*(from|import)\s+flask_migrate\b", ctx.read(path), re.MULTILINE):
            return True
    return False


def _has_migrations(ctx: Context) -> bool:
    if ctx.app is not None:
        directory = ctx.app.config.get("MIGRATIONS_DIR")
        if isinstance(directory, str) and (ctx.root / directory / "env.py").is_file():
            return True
    return any(
        (folder / "env.py").is_file()
        for folder in [
            ctx.root / "migrations",
            *ctx.root.glob("*/migrations"),
            *ctx.root.glob("*/*/migrations"),
        ]
    )


@rule(
    "PRJ007",
    layer="project",
    level=Level.ERROR,
    title="Flask-Migrate is used but there is no migrations folder",
    help="Run 'flask db init' and 'flask db migrate -m initial', commit migrations/, and "
    "run 'flask db upgrade' on every deploy: without it production's schema is never "
    "created or changed.",
    example="Migrate(app, db) and no migrations/env.py",
)
def no_migrations(ctx: Context) -> Iterator[Finding]:
    if _uses_migrate(ctx) and not _has_migrations(ctx):
        yield no_migrations.finding(
            "Flask-Migrate is used but no migrations folder (migrations/env.py) is in the project"
        )


@rule(
    "PRJ008",
    layer="project",
    level=Level.ERROR,
    title="The app's connection pools can exceed PostgreSQL's max_connections",
    help="Lower database.pool_size / max_overflow (unset, they follow the worker model: "
    "one connection per thread) or server.workers, or raise database.max_connections: "
    "workers x (pool_size + max_overflow) plus a few connections for migrations, backups "
    "and psql must fit, or under load PostgreSQL refuses connections ('too many clients').",
    example="workers = 9, pool_size = 10, max_overflow = 10, max_connections = 100",
)
def pool_exceeds_connections(ctx: Context) -> Iterator[Finding]:
    from flaskprod.spec.workers import RESERVED_CONNECTIONS

    spec = ctx.spec
    if spec is None or spec.database.engine != "postgresql" or spec.database.pgbouncer:
        return  # through PgBouncer, PostgreSQL sees its pool only: PRJ015 counts that
    pool_size, max_overflow = spec.pool
    workers = spec.server.effective_workers
    needed = spec.pool_connections + RESERVED_CONNECTIONS
    limit = spec.database.max_connections
    if needed > limit:
        yield pool_exceeds_connections.finding(
            f"{workers} workers x (pool {pool_size} + overflow {max_overflow}) = "
            f"{spec.pool_connections} connections, plus {RESERVED_CONNECTIONS} reserved, "
            f"exceed database.max_connections = {limit}",
            file="flaskprod.toml",
        )


@rule(
    "PRJ015",
    layer="project",
    level=Level.ERROR,
    title="The connection budget of all app hosts exceeds PostgreSQL's max_connections",
    help="Every app host opens its own pools: deploy.hosts x workers x (pool_size + "
    "max_overflow), plus the processes' connections and a reserve, must fit "
    "database.max_connections (or, with database.pgbouncer, PgBouncer's pool must, and the "
    "app's connections PgBouncer's max_client_conn). Set database.pgbouncer = true, or "
    "lower the pools or workers, or raise max_connections. 'flaskprod deploy' refuses the "
    "same budget before it touches a host.",
    example="hosts = ['web1', 'web2', 'web3'], 4 workers x (pool 4 + overflow 1), "
    "max_connections = 50",
)
def connection_budget_exceeded(ctx: Context) -> Iterator[Finding]:
    from flaskprod.spec.budget import FIX, connection_budget
    from flaskprod.spec.workers import RESERVED_CONNECTIONS

    spec = ctx.spec
    if spec is None or spec.database.engine != "postgresql":
        return
    budget = connection_budget(spec)
    if budget.fits:
        return
    one_host = spec.pool_connections + RESERVED_CONNECTIONS > spec.database.max_connections
    if one_host and not spec.database.pgbouncer:
        return  # one host's web workers already do not fit: PRJ008 says so
    yield connection_budget_exceeded.finding(
        f"connection budget exceeded: {budget.describe()}; {FIX}", file="flaskprod.toml"
    )
