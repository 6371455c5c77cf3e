"""The shell-aware reading of launcher command lines (flaskprod/launch/shell.py), and the
false positives it removes from real projects' launchers (issue #12, item 13)."""

from __future__ import annotations

from pathlib import Path

from deploy_helpers import check, context, ids, write

from flaskprod.check.app_loader import target_from_command
from flaskprod.check.parsers.granian import granian_setups
from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.launch.shell import (
    commands,
    expand_known,
    logical_lines,
    script_variables,
    unwrap,
)


def argvs(text: str) -> list[list[str]]:
    return [list(c.argv) for c in commands(text)]


def test_line_continuations_join_and_are_never_arguments() -> None:
    text = "exec gunicorn 'CTFd:create_app()' \\\n    --bind '0.0.0.0:8000' \\\n    -k gevent\n"
    assert logical_lines(text) == [
        (1, "exec gunicorn 'CTFd:create_app()'      --bind '0.0.0.0:8000'      -k gevent")
    ]
    assert argvs(text) == [
        ["gunicorn", "CTFd:create_app()", "--bind", "0.0.0.0:8000", "-k", "gevent"]
    ]


def test_separators_newlines_prefixes_and_redirections() -> None:
    text = (
        "#!/bin/sh\nset -e  # strict\n"
        "FLASK_APP=wsgi.py flask db upgrade && echo 'done; ok' >> /tmp/log 2>&1\n"
        "while true; do sleep 1; done\n"
        "env -i PATH=/bin WEB_CONCURRENCY=3 nohup gunicorn wsgi:app | tee out\n"
    )
    found = commands(text)
    assert [list(c.argv) for c in found] == [
        ["set", "-e"],
        ["flask", "db", "upgrade"],
        ["echo", "done; ok"],
        ["true"],
        ["sleep", "1"],
        ["gunicorn", "wsgi:app"],
        ["tee", "out"],
    ]
    assert found[1].env == {"FLASK_APP": "wsgi.py"} and found[1].line == 3
    assert found[5].env == {"PATH": "/bin", "WEB_CONCURRENCY": "3"} and found[5].line == 5


def test_sh_c_is_read_as_its_script() -> None:
    inner = unwrap(["/bin/sh", "-ec", "flask db upgrade; exec gunicorn -w 3 wsgi:app"])
    assert [list(c.argv) for c in inner] == [
        ["flask", "db", "upgrade"],
        ["gunicorn", "-w", "3", "wsgi:app"],
    ]


def test_a_quote_left_open_spans_lines() -> None:
    assert argvs("sh -c 'flask db upgrade\nexec gunicorn wsgi:app'\necho after\n") == [
        ["flask", "db", "upgrade"],
        ["gunicorn", "wsgi:app"],
        ["echo", "after"],
    ]


def test_targets_from_commands() -> None:
    assert target_from_command("gunicorn -b :5000 --access-logfile - microblog:app") == (
        "microblog:app"
    )
    # granian calls a --factory: the target is the factory's result
    granian = (
        "python -m flaskprod.serve --interface wsgi --uds /run/a.sock --factory app:create_app"
    )
    assert target_from_command(granian) == "app:create_app()"
    assert target_from_command("granian --interface wsgi app:app") == "app:app"
    assert target_from_command("waitress-serve --port 8000 --call 'hello:create_app'") == (
        "hello:create_app()"
    )
    # a variable set by the Dockerfile's ENV (itself from an ARG)
    assert target_from_command('gunicorn "${APP}:app"', {"APP": "hello.app"}) == "hello.app:app"
    assert target_from_command("echo a:b; gunicorn 'w:create_app()' \\\n -w 2") == (
        "w:create_app()"
    )


def test_a_boot_script_with_continuations_is_not_misread(tmp_path: Path) -> None:
    """CTFd's docker-entrypoint.sh: gunicorn's flags on continued lines. Read a line
    at a time, the target was '\\' (GUN002 'no module') and the bind was lost (NGX002)."""
    write(
        tmp_path,
        {
            "Dockerfile": "FROM python:3.11-slim\nCOPY . /opt/app\n"
            'ENTRYPOINT ["/opt/app/start.sh"]\n',
            "start.sh": "#!/bin/sh\nset -eo pipefail\nflask db upgrade\n"
            "exec gunicorn 'wsgi:create_app()' \\\n"
            "    --bind '0.0.0.0:8000' \\\n"
            "    --workers 3 \\\n"
            "    --access-logfile -\n",
            "wsgi.py": "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n",
            "nginx/site.conf": "server { listen 80; "
            "location / { proxy_pass http://127.0.0.1:8000; } }",
        },
    )
    (setup,) = gunicorn_setups(context(tmp_path))
    assert (setup.target, setup.binds, setup.workers, setup.line) == (
        "wsgi:create_app()",
        ["0.0.0.0:8000"],
        3,
        4,
    )
    assert not {"GUN002", "NGX002", "GUN006"} & ids(check(tmp_path))


def test_a_python_module_config_and_gevent_workers(tmp_path: Path) -> None:
    """-c python:config.gunicorn is a module of the project: its workers and worker
    class count (no GUN006 'single sync worker')."""
    write(
        tmp_path,
        {
            "Procfile": "web: gunicorn -c python:config.gunicorn 'wsgi:create_app()'\n",
            "config/__init__.py": "",
            "config/gunicorn.py": "import multiprocessing\n"
            "workers = multiprocessing.cpu_count() * 2 + 1\nworker_class = 'gevent'\n",
            "wsgi.py": "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n",
        },
    )
    (setup,) = gunicorn_setups(context(tmp_path))
    assert setup.config is not None and setup.config.path.name == "gunicorn.py"
    assert setup.worker_class == "gevent"
    assert "GUN006" not in ids(check(tmp_path))
    # -k gevent on the command line, one worker: one cooperative worker is not "sync"
    write(tmp_path, {"Procfile": "web: gunicorn --worker-class gevent -w 1 wsgi:create_app()\n"})
    (setup,) = gunicorn_setups(context(tmp_path))
    assert setup.worker_class == "gevent"
    assert "GUN006" not in ids(check(tmp_path))


def test_granian_factory_after_init(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "deploy/app.service": "[Service]\nExecStart=/srv/a/.venv/bin/python -m "
            "flaskprod.serve --interface wsgi --uds /run/a/granian.sock \\\n"
            "  --respawn-failed-workers --factory app:create_app\n",
        },
    )
    (setup,) = granian_setups(context(tmp_path))
    assert (setup.target, setup.app_target) == ("app:create_app", "app:create_app()")


def test_a_shell_form_cmd_is_read_as_sh_c(tmp_path: Path) -> None:
    """CMD in shell form runs under /bin/sh -c: its server command is the one judged,
    not every word of the line (the target was 'done')."""
    write(
        tmp_path,
        {
            "Dockerfile": "FROM python:3.12-slim\n"
            "CMD flask db upgrade && \\\n    exec gunicorn -w 3 -b :8000 'wsgi:create_app()' "
            "&& echo done\n",
            "wsgi.py": "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n",
        },
    )
    (setup,) = gunicorn_setups(context(tmp_path))
    assert (setup.target, setup.workers, setup.binds) == ("wsgi:create_app()", 3, [":8000"])
    assert "GUN002" not in ids(check(tmp_path))


def test_comments_start_a_word_and_quotes_protect_them() -> None:
    text = (
        "# don't read this line's quote\n"
        "curl http://cache/#frag a#b  # a trailing comment with 'a quote\n"
        'echo "it\'s #1" \\\n  # a comment line ends the continuation\n'
        "gunicorn wsgi:app\n"
    )
    assert argvs(text) == [
        ["curl", "http://cache/#frag", "a#b"],
        ["echo", "it's #1"],
        ["gunicorn", "wsgi:app"],
    ]


def test_an_image_run_by_compose_through_its_entrypoint_is_one_gunicorn(tmp_path: Path) -> None:
    """CTFd: compose builds the image, whose ENTRYPOINT script starts gunicorn on
    continued lines. One gunicorn (the compose service's), not one more for the image."""
    write(
        tmp_path,
        {
            "Dockerfile": "FROM python:3.11-slim\nCOPY . /opt/CTFd\n"
            'ENTRYPOINT ["/opt/CTFd/docker-entrypoint.sh"]\n',
            "docker-entrypoint.sh": "#!/bin/bash\nset -euo pipefail\nflask db upgrade\n"
            "exec gunicorn 'CTFd:create_app()' \\\n    --bind '0.0.0.0:8000' \\\n"
            '    --workers $WORKERS \\\n    --worker-class "$WORKER_CLASS"\n',
            "docker-compose.yml": "services:\n  ctfd:\n    build: .\n    restart: always\n"
            "    environment:\n      - WORKERS=1\n      - WORKER_CLASS=gevent\n",
        },
    )
    (setup,) = gunicorn_setups(context(tmp_path))
    assert (setup.origin, setup.service, setup.target, setup.binds) == (
        "compose",
        "ctfd",
        "CTFd:create_app()",
        ["0.0.0.0:8000"],
    )
    # $WORKERS and "$WORKER_CLASS" from the service's environment
    assert (setup.workers, setup.worker_class) == (1, "gevent")


def test_dockerfile_env_follows_args_and_parent_stages() -> None:
    from flaskprod.launch.dockerfile import parse_dockerfile_text

    dockerfile = parse_dockerfile_text(
        Path("Dockerfile"),
        "ARG APP=hello.app\n"
        "FROM python:3.12-slim AS base\nARG APP\nENV FLASK_APP=${APP} BASE_ONLY=1\n"
        "FROM node:20 AS assets\nENV NODE_ENV=production\n"
        'FROM base AS web\nARG DEBUG="false"\n'
        "ENV FLASK_DEBUG=${DEBUG} PORT=${PORT:-8000} \\\n    LEGACY_APP=${FLASK_APP}\n"
        "ENV OLD value with spaces\n",
    )
    assert dockerfile.env() == {
        "FLASK_APP": "hello.app",
        "BASE_ONLY": "1",
        "FLASK_DEBUG": "false",
        "PORT": "8000",
        "LEGACY_APP": "hello.app",
        "OLD": "value with spaces",
    }


def test_a_final_stage_inherits_its_parents_command(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Dockerfile": "FROM python:3.12-slim AS base\n"
            'CMD ["gunicorn", "-w", "3", "wsgi:app"]\n'
            "FROM base AS prod\nRUN pip install gunicorn\n",
        },
    )
    (setup,) = gunicorn_setups(context(tmp_path))
    assert (setup.target, setup.workers) == ("wsgi:app", 3)
    # ...and its USER: not root
    write(
        tmp_path,
        {
            "Dockerfile": "FROM python:3.12-slim AS base\nRUN useradd app\nUSER app\n"
            'CMD ["gunicorn", "-w", "3", "wsgi:app"]\nFROM base AS prod\nCOPY . .\n'
        },
    )
    assert "DOC002" not in ids(check(tmp_path))


def test_a_scripts_own_variables_with_their_defaults() -> None:
    script = (
        "WORKERS=${WORKERS:-1}\nWORKER_CLASS=${WORKER_CLASS:-gevent}\n"
        "export LOG=${LOG:--} TMP=${TMP-/dev/shm}\nEMPTY=${EMPTY:-x}\nfoo=bar gunicorn app:app\n"
    )
    # the launcher's environment wins where it sets a value (":-" ignores an empty one)
    assert script_variables(script, {"WORKERS": "4", "EMPTY": ""}) == {
        "WORKERS": "4",
        "WORKER_CLASS": "gevent",
        "LOG": "-",
        "TMP": "/dev/shm",
        "EMPTY": "x",
    }  # "foo=bar gunicorn" is a command's prefix, not the script's variable
    # without defaults=True an unknown ${X:-d} stays as written (only the server knows)
    assert expand_known("${X:-d} $Y", {"Y": "y"}) == "${X:-d} y"
    assert expand_known("${X:-d} $Y", {"Y": "y"}, defaults=True) == "d y"
