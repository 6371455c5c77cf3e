"""Dockerfile rules: the image the app ships in (judged on the final stage)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from flaskprod.check.context import Context
from flaskprod.check.deployments import kit_health_paths
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.compose import parse_compose_files
from flaskprod.check.parsers.dockerfile import parse_dockerfiles
from flaskprod.check.parsers.proxy import PROXY_IMAGES
from flaskprod.launch.dockerfile import Dockerfile, Instruction
from flaskprod.launch.shell import tokens

SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|_KEY$)", re.I)
#: Values that are obviously not secrets (empty, placeholders, interpolations).
_HARMLESS = re.compile(r"^(|\$\{?\w+\}?|changeme-at-runtime|none|null|false|true|0|1)$", re.I)


def _files(ctx: Context) -> list[Dockerfile]:
    return [d for d in parse_dockerfiles(ctx) if d.error is None]


@rule(
    "DOC001",
    layer="docker",
    level=Level.ERROR,
    title="Dockerfile cannot be parsed",
    help="Start the Dockerfile with FROM and keep one instruction per line (continue "
    "with a trailing backslash); check with 'docker build --check .'.",
    example="RUN pip install -r requirements.txt   # no FROM",
)
def unreadable(ctx: Context) -> Iterator[Finding]:
    for dockerfile in parse_dockerfiles(ctx):
        if dockerfile.error is not None:
            line, message = dockerfile.error
            where = ctx.relative(dockerfile.path)
            yield unreadable.finding(f"{where}: {message}", file=where, line=line or 1)


@rule(
    "DOC002",
    layer="docker",
    level=Level.WARNING,
    title="container runs as root",
    help="Create a user and switch to it at the end of the final stage: 'RUN useradd "
    "--system --uid 10001 app' then 'USER app' before CMD.",
    example='FROM python:3.11-slim\nCMD ["gunicorn", "wsgi:app"]   # no USER',
)
def runs_as_root(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        final = dockerfile.final
        if final is None or final.base.split("/")[-1].startswith(PROXY_IMAGES):
            continue  # nginx & co. start as root and drop to their own user
        user = dockerfile.inherited("USER")  # a USER of the stage it is built FROM counts
        name = user.value.split(":", 1)[0].strip() if user else "root"
        if name in ("root", "0"):
            yield runs_as_root.finding(
                "the final stage runs as root"
                + (f" (USER {user.value})" if user else " (no USER instruction)"),
                file=ctx.relative(dockerfile.path),
                line=user.line if user else final.line,
            )


@rule(
    "DOC003",
    layer="docker",
    level=Level.WARNING,
    title="base image not pinned",
    help="Pin the base image to a version tag (python:3.11-slim-bookworm), ideally with "
    "its digest (python:3.11-slim@sha256:...), so rebuilds get the same system.",
    example="FROM python:latest",
)
def unpinned_base(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        aliases = {s.alias for s in dockerfile.stages if s.alias}
        for stage in dockerfile.stages:
            image = stage.base
            if image in aliases or image == "scratch" or "@sha256:" in image or "$" in image:
                continue
            last = image.split("/")[-1]
            tag = last.rpartition(":")[2] if ":" in last else ""
            if not tag or tag == "latest":
                yield unpinned_base.finding(
                    f"FROM {image}: "
                    + ("'latest'" if tag else "no tag, so 'latest'")
                    + " changes under you",
                    file=ctx.relative(dockerfile.path),
                    line=stage.line,
                )


def _runs_dev_server(ctx: Context, dockerfile: Dockerfile, words: list[str]) -> str | None:
    text = " ".join(words)
    if re.search(r"\bflask\b.*\brun\b", text):
        return "flask run"
    for word in words:
        if word.endswith(".py") and "gunicorn" not in text:
            for base in [ctx.root, dockerfile.path.parent]:
                script = base / word.lstrip("/").split("/")[-1]
                try:
                    body = script.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if re.search(r"\.run\(", body) and "__main__" in body:
                    return f"python {word} (app.run, the Werkzeug dev server)"
    return None


@rule(
    "DOC004",
    layer="docker",
    level=Level.ERROR,
    title="the image runs Flask's development server",
    help='Run gunicorn instead: CMD ["gunicorn", "--bind", "0.0.0.0:8000", '
    '"wsgi:app"]; the Werkzeug server is single-process, unhardened and says so.',
    example='CMD ["flask", "run", "--host", "0.0.0.0"]',
)
def dev_server(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        command = dockerfile.command()
        if command is None:
            continue
        found = _runs_dev_server(ctx, dockerfile, command.argv())
        if found:
            yield dev_server.finding(
                f"the container starts with {found}",
                file=ctx.relative(dockerfile.path),
                line=command.line,
            )


def _health_paths(ctx: Context) -> list[str] | None:
    """Paths the app answers: its routes, plus the health paths flaskprod's runtime
    serves from its WSGI middleware (not routes, so only in the config)."""
    config = ctx.app_config or {}
    served = [str(config[k]) for k in ("HEALTH_PATH", "READY_PATH") if config.get(k)]
    if ctx.app_routes is not None:
        return [*ctx.app_routes, *served]
    if ctx.app is not None and ctx.app.paths:
        return [*ctx.app.paths, *served]
    if ctx.spec is not None:
        return [ctx.spec.http.health_path, ctx.spec.http.ready_path]
    return None


def _compose_healthcheck(ctx: Context, dockerfile: Path) -> bool:
    for compose in parse_compose_files(ctx):
        for service in compose.services.values():
            build = service.get("build")
            context = build.get("context", ".") if isinstance(build, dict) else build
            if not isinstance(context, str) or not isinstance(service.get("healthcheck"), dict):
                continue
            if (compose.path.parent / context).resolve() == dockerfile.parent.resolve():
                return True
    return False


@rule(
    "DOC005",
    layer="docker",
    level=Level.WARNING,
    title="no HEALTHCHECK, or one on a path the app does not serve",
    help="Add a HEALTHCHECK on the app's liveness route: 'HEALTHCHECK --interval=10s "
    "CMD python -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')\"'.",
    example="HEALTHCHECK CMD curl -f http://localhost:8000/healthz   # the app serves /health",
)
def healthcheck(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        final = dockerfile.final
        if final is None or dockerfile.command() is None:
            continue  # a base/builder image: nothing runs
        check = final.last("HEALTHCHECK")
        where = ctx.relative(dockerfile.path)
        if check is None:
            if not _compose_healthcheck(ctx, dockerfile.path):
                yield healthcheck.finding(
                    "the image has no HEALTHCHECK: a hung app keeps receiving traffic",
                    file=where,
                    line=final.line,
                    level=Level.INFO,
                )
            continue
        urls = re.findall(r"https?://[^\s'\"]+", check.value)
        paths = _health_paths(ctx)
        if not urls or paths is None:
            continue
        path = "/" + urls[0].split("://", 1)[1].partition("/")[2].split("?")[0]
        if path in kit_health_paths(ctx, dockerfile.path):
            continue  # the app misses the spec's own health path: APP011 says so, once
        if not any(_route_matches(rule_path, path) for rule_path in paths):
            yield healthcheck.finding(
                f"HEALTHCHECK requests {path}, which the app does not serve",
                file=where,
                line=check.line,
            )


def _route_matches(rule_path: str, path: str) -> bool:
    pattern = re.sub(
        r"<[^>]+>", "[^/]+", re.escape(rule_path).replace(r"\<", "<").replace(r"\>", ">")
    )
    return re.fullmatch(pattern, path) is not None or rule_path.rstrip("/") == path.rstrip("/")


@rule(
    "DOC006",
    layer="docker",
    level=Level.WARNING,
    title="CMD or ENTRYPOINT in shell form",
    help='Use the exec form, CMD ["gunicorn", "-c", "gunicorn.conf.py", '
    '"wsgi:app"]: in shell form /bin/sh is PID 1 and docker stop\'s SIGTERM never '
    "reaches gunicorn, so every stop waits 10 s and kills mid-request.",
    example="CMD gunicorn --bind 0.0.0.0:8000 wsgi:app",
)
def shell_form(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        final = dockerfile.final
        if final is None:
            continue
        for name in ("ENTRYPOINT", "CMD"):
            instruction = final.last(name)
            if instruction is None or instruction.exec_form is not None:
                continue
            if not instruction.value.strip():
                continue  # an empty CMD: nothing runs from it
            if instruction.value.strip().startswith("exec "):
                continue
            yield shell_form.finding(
                f"{name} {instruction.value[:60]} is in shell form",
                file=ctx.relative(dockerfile.path),
                line=instruction.line,
            )
            break


def _runs(dockerfile: Dockerfile) -> list[Instruction]:
    return [i for i in dockerfile.instructions() if i.name == "RUN"]


@rule(
    "DOC007",
    layer="docker",
    level=Level.INFO,
    title="pip's download cache is kept in the image",
    help="Use 'pip install --no-cache-dir ...' (or ENV PIP_NO_CACHE_DIR=1, or a "
    "'--mount=type=cache,target=/root/.cache/pip' build cache).",
    example="RUN pip install -r requirements.txt",
)
def pip_cache(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        envs = " ".join(i.value for i in dockerfile.instructions() if i.name in ("ENV", "ARG"))
        if "PIP_NO_CACHE_DIR" in envs:
            continue
        for run in _runs(dockerfile):
            if re.search(r"\bpip3?\s+install\b", run.value) and not re.search(
                r"--no-cache\b|type=cache|uv pip", run.value
            ):
                yield pip_cache.finding(
                    "pip install keeps its cache in the layer (tens of MB)",
                    file=ctx.relative(dockerfile.path),
                    line=run.line,
                )
                break


@rule(
    "DOC008",
    layer="docker",
    level=Level.INFO,
    title="apt lists are kept in the image",
    help="End the same RUN with '&& rm -rf /var/lib/apt/lists/*' (and use "
    "--no-install-recommends).",
    example="RUN apt-get update && apt-get install -y libpq5",
)
def apt_lists(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        for run in _runs(dockerfile):
            if re.search(r"\bapt(-get)?\s+install\b", run.value) and (
                "/var/lib/apt/lists" not in run.value and "type=cache" not in run.value
            ):
                yield apt_lists.finding(
                    "apt-get install without removing /var/lib/apt/lists in the same RUN",
                    file=ctx.relative(dockerfile.path),
                    line=run.line,
                )


@rule(
    "DOC009",
    layer="docker",
    level=Level.ERROR,
    title="secret in ARG or ENV",
    help="Never bake secrets into the image (they stay in its history): pass them at "
    "run time (compose env_file, 'docker run --env-file', a secrets manager) or use "
    "'RUN --mount=type=secret' at build time.",
    example="ENV SECRET_KEY=9f8e7d6c5b4a39281706f5e4d3c2b1a0",
)
def baked_secret(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        for instruction in dockerfile.instructions():
            if instruction.name not in ("ARG", "ENV"):
                continue
            words = tokens(instruction.value)
            pairs = [w.partition("=") for w in words]
            if instruction.name == "ENV" and len(words) >= 2 and "=" not in words[0]:
                pairs = [(words[0], "=", " ".join(words[1:]))]  # legacy 'ENV KEY value'
            for key, sep, value in pairs:
                if sep and SECRET_NAME.search(key) and not _HARMLESS.match(value.strip()):
                    yield baked_secret.finding(
                        f"{instruction.name} {key} has a literal value baked into the image",
                        file=ctx.relative(dockerfile.path),
                        line=instruction.line,
                    )


_INSTALL = re.compile(
    r"pip3?\s+install|poetry\s+install|uv\s+(pip\s+install|sync)|pipenv\s+install"
)


@rule(
    "DOC010",
    layer="docker",
    level=Level.INFO,
    title="the whole project is copied before installing dependencies",
    help="Copy the requirements first, install, then copy the code: 'COPY "
    "requirements.txt .' + 'RUN pip install -r requirements.txt' + 'COPY . .', so a code "
    "change does not reinstall every dependency.",
    example="COPY . .\nRUN pip install -r requirements.txt",
)
def copy_before_install(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        for stage in dockerfile.stages:
            copied_all: Instruction | None = None
            for instruction in stage.instructions:
                words = [w for w in instruction.value.split() if not w.startswith("--")]
                if instruction.name in ("COPY", "ADD") and words[:1] == ["."]:
                    copied_all = copied_all or instruction
                elif instruction.name == "RUN" and _INSTALL.search(instruction.value):
                    if copied_all is None or "--no-deps" in instruction.value:
                        break  # dependencies were installed before the code came in
                    if _installs_only_the_project(instruction.value):
                        break  # 'pip install .' needs the code: nothing to copy first
                    yield copy_before_install.finding(
                        f"COPY . (line {copied_all.line}) comes before installing "
                        "dependencies: every code change busts the install cache",
                        file=ctx.relative(dockerfile.path),
                        line=copied_all.line,
                    )
                    break


def _installs_only_the_project(command: str) -> bool:
    """``pip install .`` (or ``-e .``, ``.[extra]``) with no requirements file: a
    pyproject.toml project (the kit renders this for one) installs from its code."""
    words = [w.strip("'\"") for w in command.replace("&&", " ").split()]
    if any(w.startswith(("--requirement", "-r")) for w in words):
        return False
    return any(w == "." or w.startswith(".[") for w in words)


@rule(
    "DOC011",
    layer="docker",
    level=Level.WARNING,
    title="ADD used to copy local files",
    help="Use COPY for local files; ADD also fetches URLs and unpacks archives, which surprises.",
    example="ADD requirements.txt .",
)
def add_not_copy(ctx: Context) -> Iterator[Finding]:
    for dockerfile in _files(ctx):
        for instruction in dockerfile.instructions():
            if instruction.name != "ADD":
                continue
            sources = [w for w in instruction.value.split() if not w.startswith("--")][:-1]
            if sources and not any(
                s.startswith(("http://", "https://", "git@"))
                or re.search(r"\.(tar|tgz|tar\.\w+|txz|tbz2?)$", s)
                for s in sources
            ):
                yield add_not_copy.finding(
                    f"ADD {' '.join(sources)}: local files, COPY is meant",
                    file=ctx.relative(dockerfile.path),
                    line=instruction.line,
                )
