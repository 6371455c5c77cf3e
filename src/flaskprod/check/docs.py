"""The checks reference (docs/checks.md), generated from the registry.

Each rule gets an anchor equal to its id lower-cased (``#ngx004``), the target of
``Finding.url``. ``python -m flaskprod.check.docs > docs/checks.md`` or
``flaskprod check --list --format markdown`` writes it; a test fails when the
committed file differs from what this module renders.
"""

from __future__ import annotations

import sys
from itertools import groupby

from flaskprod.check.internal import INTERNAL
from flaskprod.check.live.docs import live_host_section
from flaskprod.check.model import REGISTRY
from flaskprod.check.runner import load_rules
from flaskprod.check.summary import GRADES, PENALTY

_INTRO = """\
# Checks reference

Generated from the registry by `flaskprod check --list --format markdown`: do not edit.

`flaskprod check [PATH]` reads a project's files (and imports its app under the
environment production will really have: the systemd unit's `EnvironmentFile`, the
compose service's `environment`/`env_file`, or `--env-file`) and reports findings.
Each finding has an id, a level (info, warning, error, critical), a layer, a message,
a hint and, when it comes from a file, the file and line.

- **Exit status**: 0 when nothing is at or above `--fail-level` (default `warning`),
  1 when something is, 2 when the check could not run (bad arguments, unreadable
  project, invalid `flaskprod.toml`).
- **Score**: 100 minus {penalties} per finding that is not silenced, never below 0.
  Grades: {grades}, F below.
- **Silencing**, always with a reason (kept in every report; a silence without one is
  FP001): `[ignore]` in `flaskprod.toml` (`NGX004 = "TLS ends at the load balancer"`),
  `[tool.flaskprod] ignore = {{NGX004 = "..."}}` in `pyproject.toml`, or a comment in
  the config file: `# flaskprod: ignore=NGX004 reason` on the offending line or the
  line above it, or in the comment block at the top of the file for the whole file.
  Ids may be layer prefixes (`NGX`).
- `--select` / `--ignore` take ids or prefixes, comma-separated.

## How the app is evaluated

Unless `--no-import` is given, the app is imported in a subprocess (the project's own
`.venv` interpreter when it has one; 30 s timeout; the project folder on `sys.path`;
`FLASKPROD_ENV=production` unless the environment says otherwise; nothing from the shell
running the check), started as soon as the files it depends on are read: the file rules
run meanwhile, and a rule that reads the app runs once it is imported (the findings are
those of one rule after the other). The target is what production runs (the gunicorn
argument of the systemd `ExecStart`, the Dockerfile `CMD`, the compose `command` or the
Procfile), else `flaskprod.toml`'s `[app] target`, else what `flaskprod init` would
detect. The environment, in order: `--env-file`; the systemd unit running the app
(`Environment=` and `EnvironmentFile=`, followed into the project through
`WorkingDirectory` or by file name); the compose service running it (`env_file`,
`environment`, `${{VAR}}` from the compose `.env`, plus the Dockerfile's `ENV`). When
the real values live only on the server, the project's `.env.example` stands in, with
its secrets replaced by random values and its `FLASK_DEBUG`/`DEBUG` dropped, and rules
do not judge those values (a missing `SECRET_KEY` is then only info). An app that exits
or raises under a known environment gives APP000, and the rules that need the app say
nothing more. Only liveness paths are requested from the app (never anything that
touches a database).

The import is offline: production's hosts (a compose service such as `cache:6379`, a
database named by a placeholder URL) are not this machine's, and a placeholder must
never reach whatever listens here. The subprocess runs in a network namespace of its
own where `unshare` allows it, and refuses every TCP connection, name lookup and C
database driver connection itself everywhere; an app that connects while it is imported
is reported (APP000, info) and not judged. Launchers are read as a shell reads them
(line continuations, `&&`/`;`/newlines, `exec`, `VAR=x` prefixes, `sh -c '...'`, a
shell-form `CMD`), the Dockerfile's `ENV` with its `ARG` defaults expanded; gunicorn's
`-c python:package.module` config and granian's `--factory` are followed; supervisord
`[program:x]` configs count as launchers. Beside a whole production compose file
(`docker-compose.prod.yml`, every service with an image or a build), the other compose
files of its folder are development ones and are not judged as production. When the
server runs in a subfolder (a compose build context such as `services/web`), the app is
imported from there, with the project's virtualenv.

The import and the kit's fresh render (below) are kept between runs in the project's
state folder, `.flaskprod/check-cache/` (git-ignored, mode 0600: the app's config is in
it), keyed by the content of every project file (virtualenvs, `.git` and the state folder
left out), flaskprod's own files, the environment and the interpreter's packages: a
change to any of them imports and renders again. flaskprod's own compiled templates are
kept in `~/.cache/flaskprod/templates` (`$XDG_CACHE_HOME`), as Python keeps `.pyc` files.

How long it takes (`bench/check_bench.py --only-compare`: medians of 9 runs, each
revision cold and warm, interleaved, on this repository's 2-core machine while other
work kept its load average between 3.7 and 6.6): a cold `check` of the shop (its check
cache removed) took 2.20 s wall and 1.69 s of CPU (the check and the app's import
together), where the revision before the import ran beside the file rules took 3.46 s
and 2.25 s; warm, 0.94 s and 0.64 s (1.14 s and 0.62 s before). With no compiled
templates either (the first check after installing flaskprod), 2.01 s of CPU. The cold
floor is the app's own import: the shop (Flask, SQLAlchemy, psycopg, Redis) costs
0.85 s of CPU in its process, which starts once the files naming its target and
environment are read (the first 0.3 s of CPU), while everything else flaskprod does
(0.75 s) runs beside it.

The `kit` layer compares the rendered deployment files with a fresh render of
`flaskprod.toml` (the same comparison as `flaskprod render --check`); the `k8s` layer
reads Kubernetes manifests (any YAML file of the project with `apiVersion` and `kind`)
and the `ci` layer the GitHub Actions workflows in `.github/workflows/`. A setting that
is not written is judged on the value the software then uses (nginx 1.22's, gunicorn's,
systemd 252's, Kubernetes', Flask's defaults). Where a level depends on the size of the
problem, or is not the obvious one, the rule says why beside its level.

The `live` and `host` layers (a running URL, the server itself) are separate runs that
add their rules to the same registry and reports.
"""


def render_markdown() -> str:
    load_rules()
    penalties = ", ".join(f"{points} per {level}" for level, points in PENALTY.items())
    grades = ", ".join(f"{letter} >= {floor}" for floor, letter in GRADES if floor)
    out = [_INTRO.format(penalties=penalties, grades=grades)]
    out.append(live_host_section())  # --url and --host: probes, Observatory score, 502 walk
    out.append("## Index\n")
    out.append("| id | level | layer | title |\n|---|---|---|---|")
    for rule in REGISTRY:
        out.append(
            f"| [{rule.id}](#{rule.id.lower()}) | {rule.level} | {rule.layer} | {rule.title} |"
        )
    for check in INTERNAL.values():
        out.append(
            f"| [{check.id}](#{check.id.lower()}) | {check.level} | flaskprod | {check.title} |"
        )
    out.append("")
    for layer, rules in groupby(REGISTRY, key=lambda r: r.layer):
        out.append(f"## Layer: {layer}\n")
        for rule in rules:
            out.append(f'<a id="{rule.id.lower()}"></a>\n')
            out.append(f"### {rule.id}: {rule.title}\n")
            needs = f" Needs: {', '.join(sorted(rule.requires))}." if rule.requires else ""
            why = f" Why this level: {rule.level_reason}" if rule.level_reason else ""
            roles = (
                f" On the hosts of several that hold: {', '.join(sorted(rule.roles))}."
                if rule.roles
                else ""
            )
            out.append(f"Level **{rule.level}**, layer `{rule.layer}`.{needs}{roles}{why}\n")
            out.append(f"{rule.help}\n")
            if rule.example:
                out.append(f"Example:\n\n```\n{rule.example.strip()}\n```\n")
    out.append("## Internal\n")
    for check in INTERNAL.values():
        out.append(f'<a id="{check.id.lower()}"></a>\n')
        out.append(f"### {check.id}: {check.title}\n")
        out.append(f"Level **{check.level}**.\n")
        out.append(f"{check.help}\n")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
