"""granian rules (``server.kind = "granian"``): how the app server is started.

granian has no config file: each place that starts it (systemd, Procfile, Dockerfile,
compose; directly, in the kit's ``sh -c '... exec granian ...'`` launch line, or through
an older kit's ``python -m flaskprod.serve``) is judged on its
flags and its ``GRANIAN_*`` environment. Whether nginx reaches it is NGX002's (which
knows granian's address too); pools against max_connections are PRJ008's (the spec).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flaskprod.check.context import Context
from flaskprod.check.deployments import spec_governs
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.parsers.granian import GranianSetup, granian_setups
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.spec.servers import slot_socket


def _at(ctx: Context, setup: GranianSetup) -> dict[str, Any]:
    return {"file": ctx.relative(setup.file), "line": setup.line}


@rule(
    "GRN001",
    layer="granian",
    level=Level.ERROR,
    title="granian does not serve the app as WSGI",
    help="Add '--interface wsgi': granian's default interface is its own (rsgi), and a "
    "Flask app is a WSGI app; every request fails otherwise.",
    example="granian --uds /run/shop/app.sock wsgi:app   # no --interface wsgi",
)
def not_wsgi(ctx: Context) -> Iterator[Finding]:
    for setup in granian_setups(ctx):
        if setup.interface != "wsgi":
            yield not_wsgi.finding(
                f"granian runs {setup.target or 'the app'} with --interface "
                f"{setup.interface}: a Flask app needs --interface wsgi",
                **_at(ctx, setup),
            )


@rule(
    "GRN002",
    layer="granian",
    level=Level.ERROR,
    title="one dead granian worker stops the whole server",
    help="Add '--respawn-failed-workers'. Without it granian shuts down when a worker "
    "exits: a crash, the kernel's OOM killer, or flaskprod's request watchdog ending a "
    "worker whose request ran past server.timeout all take the site down.",
    example="granian --interface wsgi --workers 2 wsgi:app   # no --respawn-failed-workers",
)
def no_respawn(ctx: Context) -> Iterator[Finding]:
    for setup in granian_setups(ctx):
        if setup.setting("--respawn-failed-workers") is not True:
            yield no_respawn.finding(
                "granian runs without --respawn-failed-workers: when one worker dies, "
                "granian stops serving altogether",
                **_at(ctx, setup),
            )


@rule(
    "GRN003",
    layer="granian",
    level=Level.WARNING,
    title="a granian reload can wait forever for one request",
    help="Add '--workers-kill-timeout N' (server.graceful_timeout, e.g. 30): on reload "
    "(HUP) and stop, granian waits for each old worker to finish its requests with no "
    "limit; one hung request then blocks the reload, and every worker after it.",
    example="granian --interface wsgi --respawn-failed-workers wsgi:app",
)
def no_kill_timeout(ctx: Context) -> Iterator[Finding]:
    for setup in granian_setups(ctx):
        if setup.setting("--workers-kill-timeout") in (None, False):
            yield no_kill_timeout.finding(
                "granian has no --workers-kill-timeout: a reload or stop waits without limit "
                "for an old worker's last request",
                **_at(ctx, setup),
            )


@rule(
    "GRN004",
    layer="granian",
    level=Level.ERROR,
    title="the app server started is not the one flaskprod.toml describes",
    help="Make the launchers agree with flaskprod.toml (run 'flaskprod render'): "
    "server.kind names the server, and granian's --blocking-threads and --workers are "
    "server.threads and server.workers. The connection pool per worker and the check "
    "against PostgreSQL's max_connections are computed from the spec, so a launcher "
    "running more threads than it says can run out of connections or exceed the limit.",
    example='server.kind = "gunicorn", ExecStart=granian --interface wsgi wsgi:app',
)
def disagrees_with_spec(ctx: Context) -> Iterator[Finding]:
    spec = ctx.spec
    if spec is None:
        return
    granians = [s for s in granian_setups(ctx) if spec_governs(ctx, s.file)]
    if spec.server.kind == "gunicorn":
        for setup in granians:
            yield disagrees_with_spec.finding(
                f'{setup.origin} starts granian, but flaskprod.toml says server.kind = "gunicorn"',
                **_at(ctx, setup),
            )
        return
    for gunicorn in gunicorn_setups(ctx):
        if gunicorn.origin != "config" and spec_governs(ctx, gunicorn.file):
            yield disagrees_with_spec.finding(
                f"{gunicorn.origin} starts gunicorn, but flaskprod.toml says server.kind = "
                '"granian"',
                file=ctx.relative(gunicorn.file),
                line=gunicorn.line,
            )
    for setup in granians:
        threads = setup.setting("--blocking-threads")
        if isinstance(threads, str) and threads != str(spec.server.threads):
            yield disagrees_with_spec.finding(
                f"granian runs --blocking-threads {threads}, flaskprod.toml server.threads "
                f"= {spec.server.threads} (the pool per worker is sized from it)",
                **_at(ctx, setup),
            )
        workers = setup.setting("--workers")
        if spec.server.workers and isinstance(workers, str) and workers != str(spec.server.workers):
            yield disagrees_with_spec.finding(
                f"granian runs --workers {workers}, flaskprod.toml server.workers = "
                f"{spec.server.workers}",
                **_at(ctx, setup),
            )
        if setup.origin != "systemd":
            continue
        if "@." in setup.file.name:  # deploy's slot template: one socket per slot
            expected = f"unix:{slot_socket(spec, '%i')}"
            if expected not in setup.binds:
                yield disagrees_with_spec.finding(
                    f"granian listens on {', '.join(setup.binds)}, the slot template's "
                    f"socket is {expected} (what deploy's nginx upstream names)",
                    **_at(ctx, setup),
                )
        elif spec.bind not in setup.binds:
            yield disagrees_with_spec.finding(
                f"granian listens on {', '.join(setup.binds)}, flaskprod.toml server.bind "
                f"= {spec.bind} (what nginx's upstream is rendered from)",
                **_at(ctx, setup),
            )


@rule(
    "GRN005",
    layer="granian",
    level=Level.ERROR,
    title="granian is started but not among the production dependencies",
    help="Add granian to the production dependencies (requirements.txt or pyproject's "
    "dependencies, pinned like the rest, e.g. 'granian==2.8.7'): the server and the "
    "image install only what they list, and the kit's image build stops without it.",
    example='server.kind = "granian", requirements.txt without granian',
)
def not_a_dependency(ctx: Context) -> Iterator[Finding]:
    from flaskprod.check.requirements import dependencies

    setups = granian_setups(ctx)
    declared = [d for d in dependencies(ctx) if d.production]
    if not setups or not declared:
        return  # nothing starts granian, or no dependency list to judge (DEP/PRJ rules)
    if any(
        d.name == "granian" or (d.name == "flaskprod" and "granian" in d.extras) for d in declared
    ):
        return
    files = sorted({d.file for d in declared})
    yield not_a_dependency.finding(
        f"granian is started ({setups[0].origin}) but {', '.join(files)} does not list it",
        file=files[0],
        line=1,
    )


_WILDCARDS = {"0.0.0.0", "::", "*", ""}


@rule(
    "GRN006",
    layer="granian",
    level=Level.WARNING,
    title="granian listens on all interfaces of the server",
    help="Give granian a unix socket ('--uds /run/APP/granian.sock --uds-permissions 0660', "
    "what the kit renders) or '--host 127.0.0.1', and let nginx be the only public "
    "listener; only inside a container is 0.0.0.0 right.",
    example="ExecStart=/srv/shop/.venv/bin/granian --interface wsgi --host 0.0.0.0 wsgi:app",
)
def public_listen(ctx: Context) -> Iterator[Finding]:
    from flaskprod.check.parsers.gunicorn import parse_bind
    from flaskprod.check.parsers.proxy import has_proxy

    for setup in granian_setups(ctx):
        public = [b for b in setup.binds if parse_bind(b)[0] in _WILDCARDS]
        if setup.in_container or not public:
            continue
        behind = "behind a proxy, " if has_proxy(ctx) else ""
        yield public_listen.finding(
            f"granian listens on {public[0]} on the host: {behind}anyone can reach it "
            "directly, bypassing the proxy's TLS, limits and buffering",
            **_at(ctx, setup),
        )
