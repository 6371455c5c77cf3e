"""gunicorn rules and the static reading of gunicorn.conf.py and command lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import assert_fixture, check, context, fixture_cases, ids, write

from flaskprod.check.model import Level
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.check.runner import CheckOptions, run_checks
from flaskprod.launch.gunicorn import (
    UNKNOWN,
    CpuBased,
    find_gunicorn,
    parse_config_text,
    parse_flags,
)
from flaskprod.launch.shell import split_command


@pytest.mark.parametrize(("rule_id", "side"), fixture_cases("GUN"))
def test_fixture(tmp_path: Path, rule_id: str, side: str) -> None:
    assert_fixture(rule_id, side, tmp_path)


def test_config_is_read_without_running_it(tmp_path: Path) -> None:
    text = """
import multiprocessing, os
raise SystemExit("never executed")
bind = os.environ.get("BIND") or (
    "0.0.0.0:" + os.environ["PORT"] if os.environ.get("PORT") else "unix:/run/a.sock"
)
workers = multiprocessing.cpu_count() * 2 + 1
threads = int(os.getenv("THREADS", "4"))
timeout = 60 * 2
preload_app = True
something = compute()

def post_fork(server, worker):
    pass
"""
    config = parse_config_text(tmp_path / "g.py", text, {"PORT": "9000"})
    values = {k: v.value for k, v in config.settings.items()}
    assert values["bind"] == "0.0.0.0:9000"
    assert isinstance(values["workers"], CpuBased)
    assert values["threads"] == 4
    assert values["timeout"] == 120
    assert values["something"] is UNKNOWN
    assert config.hooks == {"post_fork": 13}
    assert (
        parse_config_text(tmp_path / "g.py", text, {}).settings["bind"].value == "unix:/run/a.sock"
    )


def test_syntax_error_is_reported_not_raised(tmp_path: Path) -> None:
    config = parse_config_text(tmp_path / "g.py", "workers = (\n", {})
    assert config.error is not None and config.settings == {}


def test_command_lines() -> None:
    words = split_command(
        "/bin/sh -c 'exec /venv/bin/gunicorn -b 0.0.0.0:80 --bind=unix:/s "
        "-w 4 -k gevent --reload --preload app:create_app()'"
    )
    args = find_gunicorn(words)
    assert args is not None
    settings, target = parse_flags(args, Path("x"), 1)
    assert settings["bind"].value == ["0.0.0.0:80", "unix:/s"]
    assert settings["workers"].value == 4
    assert settings["worker_class"].value == "gevent"
    assert settings["reload"].value is True and settings["preload_app"].value is True
    assert target == "app:create_app()"
    assert find_gunicorn(split_command("python -m gunicorn wsgi:app")) == ["wsgi:app"]
    assert find_gunicorn(split_command("flask run")) is None


def test_setups_from_every_launcher(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.service": (
                "[Service]\n"
                "User=a\n"
                "ExecStart=/v/bin/gunicorn -c /srv/a/conf/g.py wsgi:app\n"
                "WorkingDirectory=/srv/a\n"
            ),
            "conf/g.py": "workers = 5\n",
            "Procfile": "web: gunicorn wsgi:app --workers 2\nworker: celery -A x worker\n",
            "Dockerfile": (
                "FROM python:3.11-slim\n"
                'ENV GUNICORN_CMD_ARGS=""\n'
                'CMD ["gunicorn", "-b", "0.0.0.0:8000", "wsgi:app"]\n'
            ),
            "compose.yaml": (
                "services:\n"
                "  web:\n"
                "    build: .\n"
                "    command: gunicorn -b 0.0.0.0:8000 -w 3 wsgi:app\n"
            ),
        },
    )
    setups = {s.origin: s for s in gunicorn_setups(context(tmp_path))}
    assert set(setups) == {"systemd", "procfile", "dockerfile", "compose"}
    assert setups["systemd"].workers == 5  # from the -c file, mapped via WorkingDirectory
    assert not setups["systemd"].in_container
    assert setups["compose"].service == "web" and setups["compose"].workers == 3
    assert setups["dockerfile"].in_container and setups["procfile"].in_container


def test_gthread_with_few_workers_is_not_flagged(tmp_path: Path) -> None:
    write(tmp_path, {"gunicorn.conf.py": 'worker_class = "gthread"\nworkers = 1\nthreads = 8\n'})
    assert "GUN006" not in ids(check(tmp_path))
    write(tmp_path, {"gunicorn.conf.py": "workers = 1\n"})
    assert "GUN006" in ids(check(tmp_path))


def test_timeout_against_an_explicit_proxy_timeout(tmp_path: Path) -> None:
    conf = "server { listen 80; location / { proxy_pass http://127.0.0.1:8000; %s } }\n"
    write(tmp_path, {"gunicorn.conf.py": "timeout = 30\n", "site.conf": conf % ""})
    assert [f.level for f in check(tmp_path) if f.id == "GUN008"] == [Level.INFO]
    write(tmp_path, {"site.conf": conf % "proxy_read_timeout 300s;"})
    found = [f for f in check(tmp_path) if f.id == "GUN008"]
    assert [f.level for f in found] == [Level.WARNING] and "300 s" in found[0].message


def test_a_proxy_a_few_seconds_above_gunicorn_is_aligned(tmp_path: Path) -> None:
    """The kit renders proxy_read_timeout = timeout + 5 s on purpose (gunicorn ends the
    request first, with a 502 nginx can retry): not a mismatch."""
    conf = "server { listen 80; location / { proxy_pass http://127.0.0.1:8000; %s } }\n"
    write(tmp_path, {"gunicorn.conf.py": "timeout = 30\n", "site.conf": conf % ""})
    write(tmp_path, {"site.conf": conf % "proxy_read_timeout 35s;"})
    assert "GUN008" not in ids(check(tmp_path))
    write(tmp_path, {"site.conf": conf % "proxy_read_timeout 41s;"})
    assert "GUN008" in ids(check(tmp_path))


def test_forwarded_allow_ips_star_is_fine_on_a_socket(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "gunicorn.conf.py": 'bind = "unix:/run/a.sock"\nforwarded_allow_ips = "*"\n',
            "app.service": "[Service]\nUser=a\nExecStart=/v/bin/gunicorn wsgi:app\n",
        },
    )
    assert "GUN004" not in ids(check(tmp_path))


def test_preload_without_reset_depends_on_connections(tmp_path: Path) -> None:
    write(tmp_path, {"gunicorn.conf.py": "preload_app = True\n"})
    assert [f.level for f in check(tmp_path) if f.id == "GUN010"] == [Level.INFO]
    spec = '[app]\ntarget = "wsgi:app"\nname = "app"\n\n[server]\nkind = "gunicorn"\n'
    write(tmp_path, {"flaskprod.toml": spec})
    assert [f.level for f in check(tmp_path) if f.id == "GUN010"] == [Level.WARNING]


def test_wrong_target_is_one_finding_when_the_app_is_imported(tmp_path: Path) -> None:
    # Without importing, GUN002 names the line; importing the same target fails too,
    # and then APP000 alone reports it (one root cause, one finding).
    write(
        tmp_path,
        {
            "Procfile": "web: gunicorn wsgi:application -k gthread\n",
            "wsgi.py": "from flask import Flask\n\napp = Flask(__name__)\n",
        },
    )
    assert "GUN002" in ids(check(tmp_path))
    result = run_checks(CheckOptions(root=tmp_path))
    found = {f.id for f in result.findings}
    assert "GUN002" not in found
    assert "APP000" in found


def test_gunicorn_cmd_args_sit_between_config_file_and_command_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "gunicorn.conf.py": "workers = 2\ntimeout = 20\n",
            "Dockerfile": "FROM python:3.11-slim\n"
            'ENV GUNICORN_CMD_ARGS="--workers 5 --timeout 40 --reload"\n'
            'CMD ["gunicorn", "--timeout", "60", "wsgi:app"]\n',
        },
    )
    (setup,) = gunicorn_setups(context(tmp_path))
    assert (setup.workers, setup.get("timeout"), setup.get("reload")) == (5, 60, True)


def test_a_config_no_launcher_uses_is_not_production(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "gunicorn_local.py": "reload = True\nworkers = 1\n",
            "Procfile": "web: gunicorn -k gthread --max-requests 9 --max-requests-jitter 3 w:app\n",
        },
    )
    found = ids(check(tmp_path))
    assert not {"GUN005", "GUN006"} & found
    write(tmp_path, {"gunicorn_local.py": "reload = (\n"})
    assert "GUN001" in ids(check(tmp_path))  # still read, and a broken one still reported


def test_gunicorn_started_by_an_entrypoint_script(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "FROM python:3.11-slim\nCOPY docker/start.sh /start.sh\n"
            'CMD ["/start.sh"]\n',
            "docker/start.sh": "#!/bin/sh\nset -e\nflask db upgrade\n"
            "# gunicorn comes last\nexec gunicorn --bind 0.0.0.0:8000 --reload wsgi:app\n",
        },
    )
    (setup,) = gunicorn_setups(context(tmp_path))
    assert (setup.file.name, setup.line, setup.binds) == ("start.sh", 5, ["0.0.0.0:8000"])
    found = [f for f in check(tmp_path) if f.id == "GUN005"]
    assert [(f.file, f.line) for f in found] == [("docker/start.sh", 5)]


def test_an_address_from_a_variable_is_unknown(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app.service": "[Service]\nUser=a\nWorkingDirectory=/srv/a\n"
            "ExecStart=/srv/a/v/bin/gunicorn --bind ${BIND} wsgi:app\n",
            "site.conf": "server { listen 80; location / { proxy_pass http://127.0.0.1:9999; } }",
        },
    )
    assert not {"NGX002", "GUN003"} & ids(check(tmp_path))
