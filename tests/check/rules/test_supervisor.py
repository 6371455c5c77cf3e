"""supervisord programs are launchers too (microblog's deployment/supervisor): the
gunicorn they start is judged with the others, against the nginx in front."""

from __future__ import annotations

from pathlib import Path

from deploy_helpers import check, context, ids, write

from flaskprod.check.parsers.gunicorn import gunicorn_setups
from flaskprod.launch.supervisor import parse_programs

PROGRAM = """\
[program:shop]
command=/srv/shop/venv/bin/gunicorn -b 127.0.0.1:{port} -w 3
    wsgi:app   ; continued on an indented line
directory=/srv/shop
environment=FLASK_ENV="production",WEB_CONCURRENCY=3 ; a comment
autostart=true

[program:shop-tasks]
command=/srv/shop/venv/bin/rq worker shop-tasks
"""
NGINX = "server { listen 80; location / { proxy_pass http://127.0.0.1:8000; } }\n"


def test_programs_are_read() -> None:
    shop, tasks = parse_programs(PROGRAM.format(port=8000), Path("shop.conf"))
    assert (shop.name, shop.line, shop.directory) == ("shop", 2, "/srv/shop")
    assert shop.command.split() == [
        "/srv/shop/venv/bin/gunicorn", "-b", "127.0.0.1:8000", "-w", "3", "wsgi:app",
    ]  # fmt: skip
    assert shop.env == {"FLASK_ENV": "production", "WEB_CONCURRENCY": "3"}
    assert tasks.name == "shop-tasks"
    assert parse_programs("[program:x\ncommand=", Path("broken.conf")) == []


def test_the_gunicorn_supervisor_starts_is_judged_against_nginx(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "deployment/supervisor/shop.conf": PROGRAM.format(port=8001),
            "deployment/nginx/conf.d/shop.conf": NGINX,  # conf.d: still nginx's
            "wsgi.py": "from flask import Flask\napp = Flask(__name__)\n",
        },
    )
    ctx = context(tmp_path)
    assert [p.name for p in ctx.of_kind("supervisor")] == ["shop.conf"]
    assert [p.parent.name for p in ctx.of_kind("nginx")] == ["conf.d"]
    (setup,) = gunicorn_setups(ctx)
    assert (setup.origin, setup.binds, setup.workers, setup.cwd) == (
        "supervisor",
        ["127.0.0.1:8001"],
        3,
        "/srv/shop",
    )
    assert "NGX002" in ids(check(tmp_path))  # nginx proxies to 8000, gunicorn is on 8001
    write(tmp_path, {"deployment/supervisor/shop.conf": PROGRAM.format(port=8000)})
    assert "NGX002" not in ids(check(tmp_path))
