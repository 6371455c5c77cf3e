"""Rules of the ``deps`` layer: what production installs.

Known vulnerabilities come from a small offline table of well-known advisories of the
Flask stack (:data:`ADVISORIES`), checked against exact versions (lock files first,
then ``==`` pins). It is NOT a vulnerability database: flaskprod never reports
"no known vulnerabilities". Whatever the table does not cover is reported as
unchecked (DEP002, info) — pip-audit's data cannot be read on machines without
network access, and pip-audit then says "No known vulnerabilities found" while
skipping every package, so flaskprod does not run it and never treats "not found"
as clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from flaskprod.check.context import Context
from flaskprod.check.model import Finding, Level, rule
from flaskprod.check.requirements import dependencies, installed_versions, production_count


@dataclass(frozen=True)
class Advisory:
    package: str  # canonical name
    affected: str  # a PEP 440 specifier set
    id: str
    summary: str
    fixed: str
    level: Level = Level.ERROR


#: Reviewed by hand (last: 2026-11). Only advisories whose affected ranges were checked
#: against the projects' own release notes; add, never guess.
ADVISORIES = (
    Advisory(
        "werkzeug",
        "<3.0.3",
        "CVE-2024-34069",
        "debugger allows remote code execution when a user interacts with an attacker's domain",
        "3.0.3",
        Level.CRITICAL,
    ),
    Advisory(
        "werkzeug",
        "<2.3.8",
        "CVE-2023-46136",
        "multipart parsing of crafted uploads uses unbounded CPU (denial of service)",
        "2.3.8",
    ),
    Advisory(
        "werkzeug",
        "==3.0.0",
        "CVE-2023-46136",
        "multipart parsing of crafted uploads uses unbounded CPU (denial of service)",
        "3.0.1",
    ),
    Advisory(
        "werkzeug",
        "<2.2.3",
        "CVE-2023-25577",
        "no limit on multipart parts (denial of service)",
        "2.2.3",
    ),
    Advisory(
        "werkzeug",
        "<3.0.6",
        "CVE-2024-49767",
        "multipart form parsing can exhaust memory (denial of service)",
        "3.0.6",
    ),
    Advisory(
        "flask",
        "<2.2.5",
        "CVE-2023-30861",
        "a caching proxy can serve one user's session cookie to another (missing Vary: Cookie)",
        "2.2.5",
    ),
    Advisory(
        "flask",
        ">=2.3.0,<2.3.2",
        "CVE-2023-30861",
        "a caching proxy can serve one user's session cookie to another (missing Vary: Cookie)",
        "2.3.2",
    ),
    Advisory(
        "flask",
        "<1.0",
        "CVE-2019-1010083",
        "crafted JSON can exhaust memory (denial of service)",
        "1.0",
    ),
    Advisory(
        "flask",
        "==3.1.0",
        "CVE-2025-47278",
        "sessions are signed with the last SECRET_KEY_FALLBACKS key instead of SECRET_KEY",
        "3.1.1",
        Level.WARNING,
    ),
    Advisory(
        "jinja2", "<2.10.1", "CVE-2019-10906", "sandbox escape through str.format_map", "2.10.1"
    ),
    Advisory(
        "jinja2", "<2.11.3", "CVE-2020-28493", "ReDoS in the urlize filter", "2.11.3", Level.WARNING
    ),
    Advisory(
        "jinja2",
        "<3.1.3",
        "CVE-2024-22195",
        "xmlattr filter allows attribute injection (XSS)",
        "3.1.3",
    ),
    Advisory(
        "jinja2",
        "<3.1.4",
        "CVE-2024-34064",
        "xmlattr filter accepts keys with non-attribute characters (XSS)",
        "3.1.4",
    ),
    Advisory(
        "jinja2",
        "<3.1.5",
        "CVE-2024-56326",
        "sandbox breakout through indirect calls to str.format",
        "3.1.5",
    ),
    Advisory(
        "jinja2", "<3.1.6", "CVE-2025-27516", "sandbox breakout through the attr filter", "3.1.6"
    ),
    Advisory(
        "gunicorn",
        "<22.0.0",
        "CVE-2024-1135",
        "HTTP request smuggling through conflicting Transfer-Encoding headers",
        "22.0.0",
    ),
    Advisory(
        "requests",
        "<2.31.0",
        "CVE-2023-32681",
        "Proxy-Authorization header leaked to the destination on redirects",
        "2.31.0",
    ),
    Advisory(
        "requests",
        "<2.32.0",
        "CVE-2024-35195",
        "verify=False on a session keeps skipping certificate checks for that host",
        "2.32.0",
        Level.WARNING,
    ),
    Advisory(
        "flask-cors",
        "<4.0.1",
        "CVE-2024-1681",
        "log injection through the request path",
        "4.0.1",
        Level.WARNING,
    ),
    Advisory(
        "pyyaml",
        "<5.4",
        "CVE-2020-14343",
        "full_load / FullLoader runs arbitrary code from YAML",
        "5.4",
        Level.CRITICAL,
    ),
    Advisory(
        "pillow",
        "<10.2.0",
        "CVE-2023-50447",
        "ImageMath.eval allows arbitrary code execution",
        "10.2.0",
        Level.CRITICAL,
    ),
)


def _affected(advisory: Advisory, version: str) -> bool:
    try:
        return Version(version) in SpecifierSet(advisory.affected)
    except InvalidVersion:
        return False


@rule(
    "DEP001",
    layer="deps",
    level=Level.ERROR,
    title="A dependency version with a known vulnerability",
    help="Upgrade the package to the fixed version (or later), re-lock, test and "
    "deploy; the message names the advisory.",
    example="werkzeug==2.2.2 (CVE-2024-34069: debugger RCE, fixed in 3.0.3)",
)
def known_vulnerable(ctx: Context) -> Iterator[Finding]:
    for name, (version, dep) in sorted(installed_versions(ctx).items()):
        hits = [a for a in ADVISORIES if a.package == name and _affected(a, version)]
        if not hits:
            continue
        worst = max(a.level for a in hits)
        fixed = max((a.fixed for a in hits), key=Version)
        ids = ", ".join(dict.fromkeys(a.id for a in hits))
        yield known_vulnerable.finding(
            f"{name}=={version} has known vulnerabilities ({ids}: {hits[0].summary}); "
            f"fixed in {fixed}",
            level=worst,
            hint=f"Upgrade {name} to {fixed} or later, re-lock, test and deploy.",
            file=dep.file,
            line=dep.line,
        )


@rule(
    "DEP002",
    layer="deps",
    level=Level.INFO,
    title="Dependencies not checked against a vulnerability database",
    help="Run 'pip-audit --strict -r requirements.txt' where it can reach PyPI's "
    "advisory data (CI), and treat 'skipped' or 'not found' as unchecked, not clean. "
    "flaskprod only knows a short offline table of Flask-stack advisories.",
    example="any project: flaskprod does not query the advisory database",
)
def unchecked(ctx: Context) -> Iterator[Finding]:
    production = {d.name for d in dependencies(ctx) if d.production}
    if not production:
        return
    pinned = installed_versions(ctx)
    covered = {a.package for a in ADVISORIES}
    unknown = len(production - set(pinned))
    outside = len(set(pinned) - covered)
    parts = []
    if unknown:
        parts.append(f"{unknown} without an exact version")
    if outside:
        parts.append(f"{outside} outside flaskprod's offline table")
    yield unchecked.finding(
        f"vulnerabilities unknown for {production_count(len(production))}"
        + (f" ({', '.join(parts)})" if parts else "")
        + f": only {len(ADVISORIES)} offline advisories were checked, no advisory database"
    )


#: Packages that only belong on a developer's machine.
DEBUG_TOOLS = {
    "flask-debugtoolbar": "the Flask debug toolbar (shows config, SQL, and lets anyone "
    "who reaches it inspect requests)",
    "debugpy": "a remote debugger",
    "pydevd": "a remote debugger",
    "pydevd-pycharm": "a remote debugger",
    "flask-debug": "a debug panel",
    "ipdb": "an interactive debugger",
    "pudb": "an interactive debugger",
    "werkzeug-debugger-ui": "a debugger UI",
}


@rule(
    "DEP003",
    layer="deps",
    level=Level.WARNING,
    title="Debug tools or the dev server's reloader in production requirements",
    help="Move debug tools to the development requirements (requirements-dev.txt or a "
    "dev extra / dependency group): in production they are dead weight at best and a "
    "remote shell at worst.",
    example="requirements.txt: flask-debugtoolbar, werkzeug[watchdog], debugpy",
)
def debug_tools(ctx: Context) -> Iterator[Finding]:
    for dep in dependencies(ctx):
        if not dep.production or dep.locked:
            continue
        what = DEBUG_TOOLS.get(dep.name)
        if dep.name == "werkzeug" and "watchdog" in dep.extras:
            what = "the development server's file-watching reloader"
        if what:
            yield debug_tools.finding(
                f"{dep.name} ({what}) is in production requirements ({dep.file})",
                file=dep.file,
                line=dep.line,
            )
