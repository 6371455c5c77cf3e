"""The live and host sections of docs/checks.md (the Observatory table comes from
:data:`~flaskprod.check.live.observatory.MODIFIERS`, so it cannot drift)."""

from __future__ import annotations

from flaskprod.check.live.observatory import GRADES, MODIFIERS

_TEXT = """\
## Probing a running deployment: `--url`

`flaskprod check [PATH] --url https://example.com [--ca FILE] [--crawl N] [--timeout S]`
runs only the `live` layer (no app import; `PATH`'s `flaskprod.toml`, when there is one,
gives the health paths, the body limit and the static prefix). All probes run
concurrently under ONE total timeout (default 10 s): the home page, the plain-http
entry and its redirects (followed by hand, at most 5 hops), the certificate as served
(read with `cryptography`) and whether it verifies (against `--ca` when given, else the
system's trust store), one handshake pinned to each of TLS 1.0, 1.1 and 1.3 (raw `ssl`
sockets), the Werkzeug debugger's resource URL, a missing page (stack traces), the
liveness and readiness paths (1 s each), up to 6 static assets linked from the home page,
the body limit (a POST announcing `max_body + 1` bytes and sending none: a proxy that
enforces the limit answers 413 at once) and, with `--crawl N`, up to N same-origin pages.
A probe still running when the budget is spent is cancelled and its rules report
"could not check (...): the probe did not finish within the total timeout" as a
warning, never a pass.

The plain-http entry is `http://HOST` for an https URL on port 443, the local stack's
http port when `flaskprod up` runs the project on the URL's port, else unknown (the
redirect rules then say nothing).

### The HTTP Observatory score

Besides flaskprod's own score, a `--url` run scores the home page's headers, cookies and
redirect the way Mozilla's HTTP Observatory does, for the tests flaskprod runs: start at
100, add the penalties, add the bonuses only when the result is 90 or more, never below
0. The summary (JSON `summary.observatory`, the text report's last line, the HTML
header) gives the score, the grade and every modifier applied. Grades: {grades}.

| modifier | points | meaning |
|---|---|---|
{rows}

## Checking the server itself: `--host`

`flaskprod check [PATH] --host`, run on the server, reads and never changes anything.
From your machine, `flaskprod check [PATH] --host DEST [--ssh-config FILE]` runs the same
checks on the server DEST over SSH (an ssh_config alias or `[user@]host[:port]`; host
keys verified, `--accept-new-host-key` for a first contact): flaskprod's host tools are
installed once per flaskprod build in `/opt/flaskprod/venv` on the server, the spec and
the kit are uploaded to a temporary folder (removed afterwards), and the report and exit
status are the server's. `flaskprod deploy` runs it after every release.
When `flaskprod up` runs the project (its `.flaskprod/state.json` names live pids), the
local stack is checked: its nginx config, socket, processes, secret, certificate, logs
and `.flaskprod/backups`. Otherwise the server layout the kit installs, from the spec:
`/etc/nginx` (`sites-enabled/<name>` or `conf.d/<name>.conf`), the gunicorn bind, the
`EnvironmentFile`, the certificate, `/var/log`, the media and backup folders, and the
systemd units. A look that needs a missing or forbidden command (no systemd running,
no ufw/nft, an unreadable file) is an info finding "could not check: why".

The 502 walk (HST020) fetches the site; when it answers 502/504 or nothing, it walks
the chain and names the first broken link with its fix: nginx answering? -> the
upstream of its enabled site (`upstream` servers / `proxy_pass`) -> the socket exists
(and is what gunicorn binds)? -> gunicorn answers HTTP when spoken to directly on it?
-> else nginx's own proxy settings (its error log).
"""


def live_host_section() -> str:
    rows = "\n".join(
        f"| `{name}` | {points:+d} | {meaning} |" for name, (points, meaning) in MODIFIERS.items()
    )
    grades = ", ".join(f"{letter} >= {floor}" for floor, letter in GRADES if floor) + ", F below"
    return _TEXT.format(rows=rows, grades=grades)
