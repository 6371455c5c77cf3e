"""The stack's commands: ``up``, ``down``, ``status``, ``logs``, ``reload``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO

import click

from flaskprod.errors import ExitCode, Refused
from flaskprod.spec.interpreter import require_supported, resolve_python
from flaskprod.stack import up as stack_up
from flaskprod.stack.state import StackState, StateDir, process_rss

_COLOURS = {
    "postgres": "blue",
    "mariadb": "blue",
    "redis": "red",
    "gunicorn": "green",
    "granian": "green",
    "nginx": "magenta",
    "release": "yellow",
}

project_argument = click.argument(
    "path",
    required=False,
    default=".",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="FLASKPROD_STATE_DIR",
    help="Where the stack keeps its state (default: PATH/.flaskprod).",
)


def _say(message: str) -> None:
    click.echo(message)


def _dirs(path: Path, state_dir: Path | None) -> StateDir:
    return StateDir.for_project(path.resolve(), state_dir)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


# -- logs -------------------------------------------------------------------------------------


class LogFollower:
    """Merged, coloured service logs: each new line prefixed by its service."""

    def __init__(self, files: dict[str, list[Path]], *, from_end: bool) -> None:
        from rich.console import Console

        self.console = Console(highlight=False, soft_wrap=True)
        self.handles: dict[Path, tuple[str, IO[bytes]]] = {}
        self.pending: dict[Path, bytes] = {}
        self.width = max((len(name) for name in files), default=8)
        for name, paths in files.items():
            for path in paths:
                self.handles[path] = (name, stack_up.open_follow(path, from_end))

    def line(self, name: str, text: str) -> None:
        from rich.text import Text

        prefix = Text(f"{name:>{self.width}} | ", style=_COLOURS.get(name, "cyan"))
        self.console.print(prefix + Text(text))

    def tick(self) -> None:
        for path, (name, handle) in self.handles.items():
            data = self.pending.pop(path, b"") + handle.read()
            if not data:
                continue
            *complete, rest = data.split(b"\n")
            if rest:
                self.pending[path] = rest
            for raw in complete:
                self.line(name, raw.decode("utf-8", "replace").rstrip("\r"))

    def close(self) -> None:
        for _, handle in self.handles.values():
            handle.close()


# -- up ---------------------------------------------------------------------------------------


@click.command("up")
@project_argument
@click.option("-d", "--detach", is_flag=True, help="Start the stack and return.")
@click.option("--https-port", type=click.IntRange(1, 65535), default=stack_up.DEFAULT_HTTPS_PORT)
@click.option("--http-port", type=click.IntRange(1, 65535), default=stack_up.DEFAULT_HTTP_PORT)
@click.option("--embedded", is_flag=True, help="SQLite in the state folder, no PostgreSQL/Redis.")
@click.option(
    "--print-config", is_flag=True, help="Print what up changes in the rendered configs; exit."
)
@click.option(
    "--timeout", "ready_timeout", type=float, default=stack_up.READY_TIMEOUT, show_default=True,
    help="Seconds to wait for readiness through nginx.",
)  # fmt: skip
@click.option(
    "--release", "release", multiple=True, metavar="CMD",
    help="Another release command after the migrations, e.g. 'flask seed' (repeatable).",
)  # fmt: skip
@click.option("-y", "--yes", is_flag=True, help="Never prompt.")
@click.option(
    "--python",
    metavar="PATH",
    help="The project's interpreter or venv that runs the app, its migrations and release "
    "commands (default: $VIRTUAL_ENV, else .venv, venv or env in the project).",
)
@state_dir_option
def up_command(
    path: Path,
    detach: bool,
    https_port: int,
    http_port: int,
    embedded: bool,
    print_config: bool,
    ready_timeout: float,
    release: tuple[str, ...],
    yes: bool,
    python: str | None,
    state_dir: Path | None,
) -> None:
    """Run the project's production stack here: nginx (TLS) -> the app server -> the app,
    PostgreSQL and Redis, from the rendered kit. Serves https://localhost:8443."""
    project = path.resolve()
    try:
        spec = stack_up.load_project_spec(project)
    except stack_up.NoSpec:
        if yes or not _interactive():
            raise
        if not click.confirm(f"{project} has no flaskprod.toml. Run 'flaskprod init' now?"):
            raise
        from flaskprod.kit.commands import init_command

        click.get_current_context().invoke(
            init_command,
            path=project,
            target=None,
            name=None,
            domains=(),
            force=False,
            no_import=False,
            python=python,
        )
        spec = stack_up.load_project_spec(project)
    interpreter = resolve_python(project, python)
    require_supported(interpreter, project)  # before anything starts
    _say(interpreter.describe())
    options = stack_up.UpOptions(
        project=project,
        https_port=https_port,
        http_port=http_port,
        embedded=embedded,
        state_dir=state_dir,
        ready_timeout=ready_timeout,
        release=release,
        python=interpreter,
    )
    stack = stack_up.Stack(spec, options, _say)
    stack_up.ensure_kit(spec, project, _say, stack.dirs, interpreter.executable)
    if print_config:
        click.echo(stack.print_config(), nl=False)
        return
    began = time.monotonic()
    state = stack.start()
    took = time.monotonic() - began
    ca = stack.dirs.tls / "ca.pem"
    click.echo(f"ready in {took:.1f}s: {state.url}")
    click.echo(f"  trust it: curl --cacert {ca} {state.url}")
    if detach:
        click.echo("  running in the background: flaskprod status | logs -f | reload | down")
        return
    state.supervisor_pid = os.getpid()
    stack.dirs.write(state)
    click.echo("  Ctrl-C stops the stack (data is kept)")
    follower = LogFollower(stack_up.log_files(stack.dirs, state), from_end=True)
    try:
        code = stack_up.wait_forever(stack.dirs, state, follower.tick, _say)
    finally:
        follower.close()
    if code:
        sys.exit(code)


# -- down -------------------------------------------------------------------------------------


@click.command("down")
@project_argument
@click.option("--volumes", is_flag=True, help="Also delete the data: database, Redis, uploads.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting data.")
@state_dir_option
def down_command(path: Path, volumes: bool, yes: bool, state_dir: Path | None) -> None:
    """Stop the project's stack (only the processes 'up' started)."""
    dirs = _dirs(path, state_dir)
    if volumes and not yes:
        what = f"the database, Redis data and uploads in {dirs.root}"
        if not _interactive():
            raise Refused(f"down --volumes would delete {what}", hint="pass --yes to confirm")
        if not click.confirm(f"Delete {what}?"):
            raise Refused("nothing deleted")
    with stack_up.project_lock(dirs):
        state = stack_up.live_state(dirs, _say)
        if state is None:
            click.echo(f"the stack of {dirs.root.parent} is not running")
        else:
            stack_up.stop_services(dirs, state, _say)
        if volumes:
            for removed in stack_up.remove_data(dirs):
                click.echo(f"deleted {removed}")


# -- status -----------------------------------------------------------------------------------


def _health(dirs: StateDir, state: StackState, name: str) -> str:
    from flaskprod.stack import gunicorn

    record = state.service(name)
    if record is None or not record.alive():
        return "-"
    if name in ("postgres", "mariadb", "redis"):
        port = int(record.address.rsplit(":", 1)[1])
        return "accepts" if stack_up.tcp_accepts(port) else "no answer"
    if name in stack_up.APP_SERVERS:
        return "accepts" if gunicorn.socket_accepts(Path(record.address[5:])) else "no answer"
    from flaskprod.stack.workers import PREFIX, is_scheduled, scheduled_health

    if name.startswith(PREFIX) and is_scheduled(record.address):
        return scheduled_health(Path(record.log))
    if name.startswith(PREFIX):
        from flaskprod.stack.state import children_of

        running = children_of(record.pid)
        return f"worker pid {running[0]}" if running else "no worker (restarting)"
    url = stack_up.https_url(state.https_port, state.ready_path)
    status, detail = stack_up.probe_https(url, dirs.tls / "ca.pem")
    return f"ready ({status})" if status == 200 else f"not ready ({status or detail})"


@click.command("status")
@project_argument
@state_dir_option
def status_command(path: Path, state_dir: Path | None) -> None:
    """Each service of the stack: pid, state, address, health."""
    from rich.console import Console
    from rich.table import Table

    from flaskprod.stack.state import children_of

    dirs = _dirs(path, state_dir)
    state = stack_up.live_state(dirs, _say)
    if state is None:
        raise stack_up.NotRunning(
            f"the stack of {dirs.root.parent} is not running", hint="start it with 'flaskprod up'"
        )
    table = Table(title=state.url, title_justify="left")
    for column in ("service", "pid", "state", "address", "health", "memory"):
        table.add_column(column)
    all_well = True
    for record in state.services:
        alive = record.alive()
        health = _health(dirs, state, record.name)
        all_well &= alive and not health.startswith(("no", "not"))
        rss = process_rss(record.pid) + sum(process_rss(c) for c in children_of(record.pid))
        table.add_row(
            record.name,
            str(record.pid),
            "running" if alive else "stopped",
            record.address,
            health,
            f"{rss / 2**20:.0f} MB" if alive else "-",
        )
    Console(highlight=False).print(table)
    if not all_well:
        sys.exit(int(ExitCode.SERVICE))


# -- logs -------------------------------------------------------------------------------------


@click.command("logs")
@project_argument
@click.argument("service", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", type=int, default=30, show_default=True, help="Lines per log.")
@state_dir_option
def logs_command(
    path: Path, service: str | None, follow: bool, lines: int, state_dir: Path | None
) -> None:
    """The stack's logs, merged and prefixed by service (SERVICE: only that one)."""
    dirs = _dirs(path, state_dir)
    files = stack_up.log_files(dirs, dirs.read())
    if service is not None:
        if service not in files:
            known = ", ".join(files) or "none yet"
            raise stack_up.NotRunning(f"no log for {service!r} (logs: {known})")
        files = {service: files[service]}
    follower = LogFollower(files, from_end=True)
    for name, paths in files.items():
        for log in paths:
            for text in stack_up.tail_lines(log, lines):
                follower.line(name, text)
    if not follow:
        follower.close()
        return
    try:
        while True:
            follower.tick()
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        follower.close()


# -- reload -----------------------------------------------------------------------------------


@click.command("reload")
@project_argument
@click.option(
    "--python",
    metavar="PATH",
    help="The project's interpreter or venv that imports the new code (as for up).",
)
@state_dir_option
def reload_command(path: Path, python: str | None, state_dir: Path | None) -> None:
    """Zero-downtime reload: the new code on the other slot, nginx switched once it is ready."""
    project = path.resolve()
    spec = stack_up.load_project_spec(project)
    # without --python: the venv up ran the stack with (state.json), else the usual order
    given = resolve_python(project, python) if python else None
    options = stack_up.UpOptions(project=project, state_dir=state_dir, python=given)
    from flaskprod.release.local import reload_stack

    took = reload_stack(spec, options, _say)
    click.echo(f"reloaded in {took:.1f}s")
