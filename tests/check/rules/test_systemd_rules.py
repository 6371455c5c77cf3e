"""systemd rules, the unit parser, and the exposure score against systemd's own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import FIXTURES, assert_fixture, check, fixture_cases, ids, write

from flaskprod.check.model import Level
from flaskprod.check.rules._exposure import exposure
from flaskprod.check.rules.systemd import timespan
from flaskprod.launch.systemd import parse_unit_text


@pytest.mark.parametrize(("rule_id", "side"), fixture_cases("SYS"))
def test_fixture(tmp_path: Path, rule_id: str, side: str) -> None:
    assert_fixture(rule_id, side, tmp_path)


def test_parser_repeated_keys_continuations_and_resets(tmp_path: Path) -> None:
    unit = parse_unit_text(
        tmp_path / "a.service",
        "# comment\n[Unit]\nAfter=a.service\nAfter=b.service\n\n[Service]\n"
        "ExecStart=/v/bin/gunicorn \\\n    --bind unix:/s \\\n    wsgi:app\n"
        "Environment=A=1\nEnvironment=\nEnvironment=B=2\n; other comment\n",
    )
    assert unit.error is None
    assert [a.value for a in unit.all("Unit", "After")] == ["a.service", "b.service"]
    start = unit.get("Service", "ExecStart")
    assert start is not None
    assert start.value == "/v/bin/gunicorn --bind unix:/s wsgi:app" and start.line == 7
    assert [a.value for a in unit.all("Service", "Environment")] == ["B=2"]


def test_garbage_and_binary_units_do_not_crash(tmp_path: Path) -> None:
    (tmp_path / "a.service").write_bytes(b"\x00\xff\xfe[Service\n" * 20)
    write(tmp_path, {"b.service": "", "c.service": "[Service]\nExecStart=/bin/true \\"})
    found = check(tmp_path)
    assert "FP000" not in ids(found)
    assert {f.file for f in found if f.id == "SYS001"} == {"a.service", "b.service"}


def test_world_readable_env_file_in_the_project(tmp_path: Path) -> None:
    unit = (
        "[Service]\n"
        "User=a\n"
        "WorkingDirectory=/srv/a\n"
        "EnvironmentFile=/srv/a/prod.env\n"
        "ExecStart=/srv/a/v/bin/gunicorn wsgi:app\n"
    )
    write(tmp_path, {"a.service": unit, "prod.env": "SECRET_KEY=x\n"})
    os.chmod(tmp_path / "prod.env", 0o644)
    assert "SYS006" in ids(check(tmp_path))
    os.chmod(tmp_path / "prod.env", 0o600)
    assert "SYS006" not in ids(check(tmp_path))


def test_env_file_outside_the_project_is_not_checked(tmp_path: Path) -> None:
    unit = (
        "[Service]\n"
        "User=a\n"
        "WorkingDirectory=/srv/a\n"
        "EnvironmentFile=/etc/a/a.env\n"
        "ExecStart=/srv/a/v/bin/gunicorn wsgi:app\n"
    )
    write(tmp_path, {"a.service": unit})
    assert not {"SYS005", "SYS006"} & ids(check(tmp_path))


def test_no_working_directory_for_gunicorn(tmp_path: Path) -> None:
    write(tmp_path, {"a.service": "[Service]\nUser=a\nExecStart=/v/bin/gunicorn wsgi:app\n"})
    assert "SYS005" in ids(check(tmp_path))
    write(
        tmp_path,
        {"a.service": "[Service]\nUser=a\nExecStart=/v/bin/gunicorn --chdir /srv/a wsgi:app\n"},
    )
    assert "SYS005" not in ids(check(tmp_path))


@pytest.mark.parametrize(
    ("name", "level"),
    [("bare", Level.ERROR), ("some", Level.WARNING), ("caps", Level.INFO), ("hard", None)],
)
def test_hardening_level_rises_with_exposure(tmp_path: Path, name: str, level: Level) -> None:
    """systemd-analyze 252 says UNSAFE (9.6), EXPOSED (8.5), MEDIUM (6.5) and OK for these
    units: an unhardened unit is an error, a weakly hardened one a warning."""
    write(tmp_path, {"a.service": UNITS[name]})
    found = [f for f in check(tmp_path) if f.id == "SYS010"]
    assert [f.level for f in found] == ([level] if level else []), found
    assert all("/10" in f.message for f in found)


UNITS = {
    "bare": "[Service]\nExecStart=/usr/bin/true\n",
    "user": "[Service]\nUser=app\nExecStart=/usr/bin/true\nNoNewPrivileges=yes\n",
    "some": "[Service]\nUser=app\nExecStart=/usr/bin/true\nNoNewPrivileges=yes\n"
    "PrivateTmp=yes\nProtectSystem=full\nProtectHome=yes\n",
    "caps": "[Service]\nUser=app\nExecStart=/usr/bin/true\n"
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n",
    "dynamic": "[Service]\nDynamicUser=yes\nExecStart=/usr/bin/true\nPrivateTmp=yes\n"
    "ProtectSystem=strict\nSystemCallFilter=~@mount @swap @reboot\n",
    "hard": (FIXTURES / "SYS010" / "pass" / "deploy" / "app.service").read_text(),
}
_KIT_UNIT = Path(__file__).resolve().parents[3] / "examples/shop/deploy/systemd/shop.service"
if _KIT_UNIT.is_file():
    UNITS["kit"] = _KIT_UNIT.read_text()


@pytest.mark.parametrize("name", sorted(UNITS))
def test_exposure_tracks_systemd_analyze(tmp_path: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: install the 'systemd' package")
    path = tmp_path / f"{name}.service"
    path.write_text(UNITS[name])
    output = subprocess.run(
        [analyze, "security", "--offline=true", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    line = next(line for line in output.splitlines() if "Overall exposure level" in line)
    theirs = float(line.split(":")[-1].split()[0])
    ours, _ = exposure(parse_unit_text(path, UNITS[name]))
    assert abs(ours - theirs) <= 1.0, (ours, theirs)


def test_socket_folder_made_by_a_socket_unit_or_runtime_directory(tmp_path: Path) -> None:
    unit = (
        "[Service]\nUser=app\nWorkingDirectory=/srv/app\n"
        "ExecStart=/srv/app/v/bin/gunicorn --bind unix:/run/app/g.sock wsgi:app\n"
    )
    write(tmp_path, {"app.service": unit})
    found = [f for f in check(tmp_path) if f.id == "SYS011"]
    assert len(found) == 1 and "RuntimeDirectory=app" in found[0].message
    write(tmp_path, {"app.socket": "[Socket]\nListenStream=/run/app/g.sock\n"})
    assert "SYS011" not in ids(check(tmp_path))
    (tmp_path / "app.socket").unlink()
    write(tmp_path, {"app.service": unit.replace("User=app\n", "User=app\nRuntimeDirectory=app\n")})
    assert "SYS011" not in ids(check(tmp_path))
    # A relative socket lives in the working directory, which survives reboots.
    write(tmp_path, {"app.service": unit.replace("unix:/run/app/g.sock", "unix:app.sock")})
    assert "SYS011" not in ids(check(tmp_path))


def test_local_database_from_the_spec(tmp_path: Path) -> None:
    unit = (
        "[Unit]\nAfter=network.target\n[Service]\nUser=app\nWorkingDirectory=/srv/app\n"
        "ExecStart=/srv/app/v/bin/gunicorn wsgi:app\n"
    )
    spec = '[app]\ntarget = "wsgi:app"\nname = "app"\n'
    write(tmp_path, {"app.service": unit, "flaskprod.toml": spec})
    found = [f for f in check(tmp_path) if f.id == "SYS008"]
    assert len(found) == 1 and "postgresql" in found[0].message and "redis" in found[0].message
    remote = spec + "[database]\nlocal = false\n[redis]\nlocal = false\n"
    write(tmp_path, {"flaskprod.toml": remote})
    assert "SYS008" not in ids(check(tmp_path))


def test_dotenv_kept_out_of_the_repository_is_not_missing(tmp_path: Path) -> None:
    """The seeds' unit: EnvironmentFile=/srv/flaskapp/.env under WorkingDirectory=/srv/
    flaskapp. A .env holds secrets and is never committed: its absence in the checkout
    is not a unit that 'will not start' (the environment summary already says 'on the
    server only'). A committed env file of another name that is missing still is."""
    unit = (
        "[Service]\nUser=a\nWorkingDirectory=/srv/a\nEnvironmentFile={env}\n"
        "ExecStart=/srv/a/v/bin/gunicorn wsgi:app\n"
    )
    for env in ("/srv/a/.env", "/srv/a/.env.production"):
        write(tmp_path, {"a.service": unit.format(env=env)})
        assert "SYS005" not in ids(check(tmp_path)), env
    write(tmp_path, {"a.service": unit.format(env="/srv/a/deploy/production.env")})
    assert "SYS005" in ids(check(tmp_path))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1min 30s", 90.0), ("2m", 120.0), ("500ms", 0.5),
     ("infinity", float("inf")), ("soon", None), ("5 fortnights", None)],
)  # fmt: skip
def test_systemd_time_spans(text: str, seconds: float | None) -> None:
    assert timespan(text) == seconds


def test_stop_timeout_set_below_gunicorns_default_graceful(tmp_path: Path) -> None:
    """TimeoutStopSec=20 and no graceful_timeout: gunicorn's own default (30 s) counts."""
    unit = (
        "[Service]\nUser=app\nWorkingDirectory=/srv/app\nTimeoutStopSec=20\n"
        "ExecStart=/srv/app/v/bin/gunicorn --bind 127.0.0.1:8000 wsgi:app\n"
    )
    write(tmp_path, {"app.service": unit, "wsgi.py": "app = None\n"})
    found = [f for f in check(tmp_path) if f.id == "SYS012"]
    assert [(f.line, f.level) for f in found] == [(4, Level.WARNING)], found
    assert "20 s (TimeoutStopSec=20)" in found[0].message and "30 s" in found[0].message


@pytest.mark.parametrize(
    ("flags", "unit_lines", "found"),
    [
        ("", "", []),  # gunicorn binds with umask 0: 0777
        ("--umask 077", "", ["0700 (gunicorn's umask 0077)"]),
        ("-m 007", "RuntimeDirectoryMode=0700\n", ["0770 (gunicorn's umask 0007), folder 0700"]),
        ("--umask 007", "RuntimeDirectoryMode=0750\n", []),  # through the app's group
    ],
)  # fmt: skip
def test_gunicorn_socket_modes(
    tmp_path: Path, flags: str, unit_lines: str, found: list[str]
) -> None:
    unit = (
        f"[Service]\nUser=app\nGroup=app\nWorkingDirectory=/srv/app\nRuntimeDirectory=app\n{unit_lines}"
        f"ExecStart=/srv/app/v/bin/gunicorn {flags} --bind unix:/run/app/g.sock wsgi:app\n"
    )
    write(tmp_path, {"app.service": unit, "wsgi.py": "app = None\n"})
    messages = [f.message for f in check(tmp_path) if f.id == "SYS013"]
    assert len(messages) == len(found), messages
    assert all(part in message for part, message in zip(found, messages, strict=True)), messages
