"""``flaskprod check``: the preflight over a project's files and its app."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from flaskprod.check.model import REGISTRY, Level
from flaskprod.errors import UserError

if TYPE_CHECKING:
    from flaskprod.check.runner import CheckOptions

_LEVELS = [str(level) for level in Level]


def _write_atomic(path: Path, text: str) -> None:
    """Write the whole report or nothing (temp file in the same folder + os.replace)."""
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise UserError(f"--output {path}: folder {folder} does not exist")
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _list(fmt: str) -> str:
    from flaskprod.check.internal import INTERNAL
    from flaskprod.check.runner import load_rules

    if fmt == "markdown":
        from flaskprod.check.docs import render_markdown

        return render_markdown()
    load_rules()
    if fmt == "json":
        import json

        rules = [
            {"id": r.id, "layer": r.layer, "level": str(r.level), "title": r.title, "help": r.help}
            for r in REGISTRY
        ]
        return json.dumps({"rules": rules}, indent=2) + "\n"
    lines = [f"{r.id:8} {r.layer:9} {r.level!s:9} {r.title}" for r in REGISTRY]
    lines += [f"{c.id:8} {'flaskprod':9} {c.level!s:9} {c.title}" for c in INTERNAL.values()]
    return "\n".join(lines) + "\n"


def _live_host_options(
    options: CheckOptions, url: str | None, ca: Path | None, crawl: int, timeout: float, host: bool
) -> None:
    """--url and --host: their layers only, no app import (the app is the server's)."""
    if url is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"--url {url}: not an http(s) URL", hint="e.g. https://example.com")
        options.options.update(url=url, crawl=crawl, timeout=timeout)
    if ca is not None:
        if not ca.is_file():
            raise UserError(f"--ca {ca}: no such file", hint="give the CA certificate (PEM)")
        options.options["ca"] = str(ca)
    options.layers = tuple(
        layer for layer, wanted in (("live", url is not None), ("host", host)) if wanted
    )
    options.no_import = True


#: ``--host`` given without a destination: the server this runs on.
THIS_MACHINE = "@this-machine"


def _check_remote_host(
    project: Path,
    destination: str,
    ssh_config: Path | None,
    accept_new_key: bool,
    forwarded: list[str],
    output: Path | None,
) -> NoReturn:
    """The host checks of ``destination``, run there over SSH; its report and status."""
    from flaskprod.deploy.remote import Remote
    from flaskprod.deploy.remote_check import check_over_ssh

    if not (project / "flaskprod.toml").is_file():
        raise UserError(
            f"{project}: no flaskprod.toml", hint="run check --host DEST in the project folder"
        )
    forwarded = [*forwarded, *_roles_of(project, destination, ssh_config, accept_new_key)]
    with Remote(destination, ssh_config=ssh_config, accept_new_key=accept_new_key) as remote:
        done = check_over_ssh(remote, project, forwarded, lambda line: click.echo(line, err=True))
    if output:
        _write_atomic(output, done.report)
        click.echo(f"flaskprod: report written to {output}", err=True)
    else:
        click.echo(done.report, nl=False)
    sys.exit(done.exit_code)


def _roles_of(
    project: Path, destination: str, ssh_config: Path | None, accept_new_key: bool
) -> list[str]:
    """A spec with roles: the destination must be one of its hosts; the check there is
    told which, with every host's private address (found over SSH unless the spec
    gives them)."""
    from flaskprod.deploy.remote_check import role_args
    from flaskprod.deploy.roles import Topology
    from flaskprod.deploy.several import connected, place
    from flaskprod.spec.load import load_spec

    topology = Topology.of(load_spec(project / "flaskprod.toml"))
    if topology is None:
        return []
    if destination not in topology.hosts:
        raise UserError(
            f"--host {destination}: none of flaskprod.toml's hosts ({', '.join(topology.hosts)})",
            hint="name one of them, or check them all: flaskprod check --hosts",
        )
    with connected(topology, ssh_config, accept_new_key) as remotes:
        addresses = place(topology, remotes, lambda line: None).addresses
    return role_args(destination, addresses)


def _check_every_host(
    project: Path,
    fmt: str,
    fail_level: str,
    forwarded: list[str],
    ssh_config: Path | None,
    accept_new_key: bool,
    output: Path | None,
) -> NoReturn:
    """``--hosts``: every host of the spec checked there in parallel, one report."""
    from flaskprod.check.host.merged import merge
    from flaskprod.check.report import render
    from flaskprod.deploy.remote_check import check_hosts, hosts_of
    from flaskprod.spec.load import load_spec

    if not (project / "flaskprod.toml").is_file():
        raise UserError(
            f"{project}: no flaskprod.toml", hint="run check --hosts in the project folder"
        )
    spec = load_spec(project / "flaskprod.toml")
    if not hosts_of(spec):
        raise UserError(
            "flaskprod.toml: [deploy] hosts: no host to check",
            hint="list them: [deploy] hosts = [...], or check one: --host DEST",
        )

    def echo(line: str) -> None:
        click.echo(line, err=True)

    reports = check_hosts(
        project, spec, forwarded, echo, ssh_config=ssh_config, accept_new_key=accept_new_key
    )
    for report in reports:
        if report.error is not None:
            echo(f"{report.host}: could not be checked: {report.error}")
    result, summary = merge(reports, project.resolve(), spec, Level.parse(fail_level))
    text = render(
        result, summary, fmt, color=fmt == "text" and output is None and sys.stdout.isatty()
    )
    if output:
        _write_atomic(output, text)
        echo(f"flaskprod: report written to {output}")
    else:
        click.echo(text, nl=False)
    sys.exit(summary["exit_code"])


def _peers(values: tuple[str, ...]) -> dict[str, str]:
    peers = {}
    for value in values:
        name, equals, address = value.partition("=")
        if not equals or not name or not address:
            raise UserError(f"--peer {value}: expected HOST=ADDRESS")
        peers[name] = address
    return peers


@click.command("check")
@click.argument("path", required=False, default=".", type=click.Path(path_type=Path))
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="The environment production has (KEY=VALUE lines).",
)
@click.option("--no-import", is_flag=True, help="Do not import the app (file checks only).")
@click.option(
    "--python",
    metavar="PATH",
    help="The project's interpreter or venv (default: $VIRTUAL_ENV, else .venv/venv/env).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "html", "markdown"]),
    default="text",
    show_default=True,
    help="Report format (markdown: only with --list).",
)
@click.option(
    "--output", "-o", type=click.Path(path_type=Path), help="Write the report to this file."
)
@click.option(
    "--fail-level",
    type=click.Choice(_LEVELS),
    default="warning",
    show_default=True,
    help="Exit 1 when a finding is at or above this level.",
)
@click.option("--select", multiple=True, help="Only these ids or prefixes (NGX004,APP).")
@click.option("--ignore", "ignore_ids", multiple=True, help="Leave out these ids or prefixes.")
@click.option("--list", "list_rules", is_flag=True, help="Print every rule and exit.")
@click.option("--url", help="Probe this running deployment (layer live), e.g. https://example.com.")
@click.option(
    "--ca", type=click.Path(path_type=Path), help="Trust this CA file for --url (a private CA)."
)
@click.option(
    "--crawl",
    type=click.IntRange(0, 500),
    default=0,
    show_default=True,
    help="With --url: follow up to N same-origin links from the home page.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.5, 300),
    default=10.0,
    show_default=True,
    help="With --url: one total timeout for all probes, in seconds.",
)
@click.option(
    "--host",
    "host",
    is_flag=False,
    flag_value=THIS_MACHINE,
    default=None,
    metavar="[DEST]",
    help="Check a server (layer host; read-only): alone, the one this runs on; with DEST "
    "(an ssh_config alias or [user@]host[:port]), that server over SSH.",
)
@click.option(
    "--ssh-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --host DEST or --hosts: the ssh_config to use instead of ~/.ssh/config.",
)
@click.option(
    "--accept-new-host-key",
    is_flag=True,
    help="With --host DEST: trust the server's key on first contact (else it must be known).",
)
@click.option(
    "--hosts",
    "all_hosts",
    is_flag=True,
    help="Check every host of the spec over SSH, in parallel (each for its roles): one "
    "report naming the host of each finding; the exit status is the worst of all.",
)
@click.option("--as-host", hidden=True, help="With --host: which of the spec's hosts this is.")
@click.option(
    "--peer", "peers", multiple=True, hidden=True, help="With --host: HOST=ADDRESS (repeat)."
)
def check_command(
    path: Path,
    env_file: Path | None,
    no_import: bool,
    python: str | None,
    fmt: str,
    output: Path | None,
    fail_level: str,
    select: tuple[str, ...],
    ignore_ids: tuple[str, ...],
    list_rules: bool,
    url: str | None,
    ca: Path | None,
    crawl: int,
    timeout: float,
    host: str | None,
    ssh_config: Path | None,
    accept_new_host_key: bool,
    all_hosts: bool,
    as_host: str | None,
    peers: tuple[str, ...],
) -> None:
    """Check a Flask project's app, files and dependencies before production.

    Exit status: 0 nothing at or above --fail-level, 1 findings, 2 the check could
    not run. The report goes to stdout (or --output); progress goes to stderr.
    """
    if list_rules:
        text = _list(fmt)
        if output:
            _write_atomic(output, text)
        else:
            click.echo(text, nl=False)
        return
    if fmt == "markdown":
        raise UserError(
            "--format markdown is only for --list", hint="use text, json, sarif or html"
        )
    if all_hosts:
        if host is not None or url is not None:
            raise UserError(
                "--hosts checks every host of the spec: leave out --host and --url",
                hint="one host: check --host DEST; the site: check --url URL",
            )
        forwarded = ["--fail-level", fail_level]
        forwarded += [f"--select={item}" for item in select]
        forwarded += [f"--ignore={item}" for item in ignore_ids]
        _check_every_host(path, fmt, fail_level, forwarded, ssh_config, accept_new_host_key, output)
    if host is not None and host != THIS_MACHINE:
        if url is not None:
            raise UserError(
                "--url and --host DEST run in different places",
                hint="run them as two checks: check --url URL, then check --host DEST",
            )
        forwarded = ["--format", fmt, "--fail-level", fail_level]
        forwarded += [f"--select={item}" for item in select]
        forwarded += [f"--ignore={item}" for item in ignore_ids]
        _check_remote_host(path, host, ssh_config, accept_new_host_key, forwarded, output)
    from flaskprod.check.report import render
    from flaskprod.check.runner import CheckOptions, parse_ids, run_checks
    from flaskprod.check.summary import summarize

    options = CheckOptions(
        root=path,
        env_file=env_file,
        no_import=no_import,
        python=python,
        select=parse_ids(select, "--select"),
        ignore=parse_ids(ignore_ids, "--ignore"),
    )
    if url or host:  # the live/host layers replace the file checks for this run
        _live_host_options(options, url, ca, crawl, timeout, host is not None)
    if as_host is not None or peers:  # the check --host DEST runs here, told its roles
        options.options.update(host_name=as_host, host_addresses=_peers(peers))
    if host is not None and path.is_dir():
        from flaskprod.check.host.roles import roles_of
        from flaskprod.check.runner import load_spec

        # a host the spec does not name: its one line before any progress line
        roles_of(load_spec(path.resolve()), as_host, _peers(peers))
    result = run_checks(
        options, on_start=lambda: click.echo(f"flaskprod: checking {path}", err=True)
    )
    level = Level.parse(fail_level)
    summary = summarize(result, level)
    color = fmt == "text" and output is None and sys.stdout.isatty()
    report = render(result, summary, fmt, color=color)
    if output:
        _write_atomic(output, report)
        click.echo(f"flaskprod: report written to {output}", err=True)
    else:
        click.echo(report, nl=False)
    sys.exit(summary["exit_code"])
