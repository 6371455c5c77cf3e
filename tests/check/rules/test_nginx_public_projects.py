"""Three projects shaped like the public tutorials people deploy from (a systemd +
nginx site, a compose stack with nginx in front, a single module with a hand-written
full nginx.conf): no crash, their real problems found, and none of the false positives
we once had (a relative unix socket, a module inside the Docker build context, the
nginx image starting as root, mime.types hiding a missing HSTS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import check, write

from flaskprod.check.model import Level

DO = {
    "myproject.conf": (
        "server {\n"
        "    listen 80;\n"
        "    server_name your_domain www.your_domain;\n"
        "\n"
        "    location / {\n"
        "        include proxy_params;\n"
        "        proxy_pass http://unix:/home/sammy/myproject/myproject.sock;\n"
        "    }\n"
        "}\n"
    ),
    "myproject.py": (
        "from flask import Flask\n"
        "app = Flask(__name__)\n"
        "\n"
        '@app.route("/")\n'
        "def hello():\n"
        "    return \"<h1 style='color:blue'>Hello There!</h1>\"\n"
        "\n"
        'if __name__ == "__main__":\n'
        "    app.run(host='0.0.0.0')\n"
    ),
    "myproject.service": (
        "[Unit]\n"
        "Description=Gunicorn instance to serve myproject\n"
        "After=network.target\n"
        "\n"
        "[Service]\n"
        "User=sammy\n"
        "Group=www-data\n"
        "WorkingDirectory=/home/sammy/myproject\n"
        'Environment="PATH=/home/sammy/myproject/myprojectenv/bin"\n'
        "ExecStart=/home/sammy/myproject/myprojectenv/bin/gunicorn"
        " --workers 3 --bind unix:myproject.sock -m 007 wsgi:app\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    ),
    "requirements.txt": ("flask\ngunicorn\n"),
    "wsgi.py": ('from myproject import app\n\nif __name__ == "__main__":\n    app.run()\n'),
}

TDD = {
    ".env.prod": (
        "FLASK_APP=project/__init__.py\n"
        "FLASK_DEBUG=0\n"
        "DATABASE_URL=postgresql://hello_flask:hello_flask@db:5432/hello_flask_prod\n"
        "SQL_HOST=db\n"
        "SQL_PORT=5432\n"
        "DATABASE=postgres\n"
    ),
    ".env.prod.db": (
        "POSTGRES_USER=hello_flask\nPOSTGRES_PASSWORD=hello_flask\nPOSTGRES_DB=hello_flask_prod\n"
    ),
    "docker-compose.prod.yml": (
        "version: '3.8'\n"
        "\n"
        "services:\n"
        "  web:\n"
        "    build:\n"
        "      context: ./services/web\n"
        "      dockerfile: Dockerfile.prod\n"
        "    command: gunicorn --bind 0.0.0.0:5000 manage:app\n"
        "    volumes:\n"
        "      - static_volume:/home/app/web/project/static\n"
        "      - media_volume:/home/app/web/project/media\n"
        "    expose:\n"
        "      - 5000\n"
        "    env_file:\n"
        "      - ./.env.prod\n"
        "    depends_on:\n"
        "      - db\n"
        "  db:\n"
        "    image: postgres:13\n"
        "    volumes:\n"
        "      - postgres_data_prod:/var/lib/postgresql/data/\n"
        "    env_file:\n"
        "      - ./.env.prod.db\n"
        "  nginx:\n"
        "    build: ./services/nginx\n"
        "    volumes:\n"
        "      - static_volume:/home/app/web/project/static\n"
        "      - media_volume:/home/app/web/project/media\n"
        "    ports:\n"
        "      - 1337:80\n"
        "    depends_on:\n"
        "      - web\n"
        "\n"
        "volumes:\n"
        "  postgres_data_prod:\n"
        "  static_volume:\n"
        "  media_volume:\n"
    ),
    "services/nginx/Dockerfile": (
        "FROM nginx:1.25\n"
        "\n"
        "RUN rm /etc/nginx/conf.d/default.conf\n"
        "COPY nginx.conf /etc/nginx/conf.d\n"
    ),
    "services/nginx/nginx.conf": (
        "upstream hello_flask {\n"
        "    server web:5000;\n"
        "}\n"
        "\n"
        "server {\n"
        "\n"
        "    listen 80;\n"
        "\n"
        "    location / {\n"
        "        proxy_pass http://hello_flask;\n"
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "        proxy_set_header Host $host;\n"
        "        proxy_redirect off;\n"
        "    }\n"
        "\n"
        "    location /static/ {\n"
        "        alias /home/app/web/project/static/;\n"
        "    }\n"
        "\n"
        "    location /media/ {\n"
        "        alias /home/app/web/project/media/;\n"
        "    }\n"
        "\n"
        "}\n"
    ),
    "services/web/Dockerfile.prod": (
        "###########\n"
        "# BUILDER #\n"
        "###########\n"
        "\n"
        "# pull official base image\n"
        "FROM python:3.11.3-slim-buster as builder\n"
        "\n"
        "# set work directory\n"
        "WORKDIR /usr/src/app\n"
        "\n"
        "# set environment variables\n"
        "ENV PYTHONDONTWRITEBYTECODE 1\n"
        "ENV PYTHONUNBUFFERED 1\n"
        "\n"
        "# install system dependencies\n"
        "RUN apt-get update && \\\n"
        "    apt-get install -y --no-install-recommends gcc\n"
        "\n"
        "# lint\n"
        "RUN pip install --upgrade pip\n"
        "RUN pip install flake8==6.0.0\n"
        "COPY . /usr/src/app/\n"
        "RUN flake8 --ignore=E501,F401 .\n"
        "\n"
        "# install python dependencies\n"
        "COPY ./requirements.txt .\n"
        "RUN pip wheel --no-cache-dir --no-deps"
        " --wheel-dir /usr/src/app/wheels -r requirements.txt\n"
        "\n"
        "\n"
        "#########\n"
        "# FINAL #\n"
        "#########\n"
        "\n"
        "# pull official base image\n"
        "FROM python:3.11.3-slim-buster\n"
        "\n"
        "# create directory for the app user\n"
        "RUN mkdir -p /home/app\n"
        "\n"
        "# create the app user\n"
        "RUN addgroup --system app && adduser --system --group app\n"
        "\n"
        "# create the appropriate directories\n"
        "ENV HOME=/home/app\n"
        "ENV APP_HOME=/home/app/web\n"
        "RUN mkdir $APP_HOME\n"
        "WORKDIR $APP_HOME\n"
        "\n"
        "# install dependencies\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends netcat\n"
        "COPY --from=builder /usr/src/app/wheels /wheels\n"
        "COPY --from=builder /usr/src/app/requirements.txt .\n"
        "RUN pip install --upgrade pip\n"
        "RUN pip install --no-cache /wheels/*\n"
        "\n"
        "# copy entrypoint-prod.sh\n"
        "COPY ./entrypoint.prod.sh $APP_HOME\n"
        "\n"
        "# copy project\n"
        "COPY . $APP_HOME\n"
        "\n"
        "# chown all the files to the app user\n"
        "RUN chown -R app:app $APP_HOME\n"
        "\n"
        "# change to the app user\n"
        "USER app\n"
        "\n"
        "# run entrypoint.prod.sh\n"
        'ENTRYPOINT ["/home/app/web/entrypoint.prod.sh"]\n'
    ),
    "services/web/manage.py": (
        "from flask.cli import FlaskGroup\n"
        "\n"
        "from project import app, db\n"
        "\n"
        "cli = FlaskGroup(app)\n"
        "\n"
        'if __name__ == "__main__":\n'
        "    cli()\n"
    ),
    "services/web/project/__init__.py": (
        "from flask import Flask, jsonify\n"
        "from flask_sqlalchemy import SQLAlchemy\n"
        "\n"
        "app = Flask(__name__)\n"
        'app.config.from_object("project.config.Config")\n'
        "db = SQLAlchemy(app)\n"
        "\n"
        '@app.route("/")\n'
        "def hello_world():\n"
        '    return jsonify(hello="world")\n'
    ),
    "services/web/requirements.txt": (
        "Flask==2.3.2\nFlask-SQLAlchemy==3.0.3\ngunicorn==20.1.0\npsycopg2-binary==2.9.6\n"
    ),
}

SINGLE = {
    "app.py": (
        "from flask import Flask, render_template\n"
        "app = Flask(__name__)\n"
        'app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024\n'
        "\n"
        '@app.route("/")\n'
        "def index():\n"
        '    return "hi"\n'
        "\n"
        '@app.route("/healthz")\n'
        "def healthz():\n"
        '    return "ok"\n'
    ),
    "gunicorn_config.py": (
        "import multiprocessing\n"
        'bind = "127.0.0.1:8000"\n'
        "workers = multiprocessing.cpu_count() * 2 + 1\n"
        "timeout = 120\n"
        'accesslog = "-"\n'
    ),
    "myapp.service": (
        "[Unit]\n"
        "Description=myapp\n"
        "After=network.target\n"
        "\n"
        "[Service]\n"
        "User=www-data\n"
        "WorkingDirectory=/var/www/myapp\n"
        "ExecStart=/var/www/myapp/venv/bin/gunicorn -c gunicorn_config.py app:app\n"
        "Restart=always\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    ),
    "nginx.conf": (
        "user www-data;\n"
        "worker_processes auto;\n"
        "pid /run/nginx.pid;\n"
        "events { worker_connections 768; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n"
        "    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;\n"
        "    ssl_prefer_server_ciphers on;\n"
        "    gzip on;\n"
        "\n"
        "    server {\n"
        "        listen 80;\n"
        "        server_name myapp.example.com;\n"
        "        return 301 https://$server_name$request_uri;\n"
        "    }\n"
        "\n"
        "    server {\n"
        "        listen 443 ssl;\n"
        "        server_name myapp.example.com;\n"
        "        ssl_certificate /etc/letsencrypt/live/myapp.example.com/fullchain.pem;\n"
        "        ssl_certificate_key /etc/letsencrypt/live/myapp.example.com/privkey.pem;\n"
        "\n"
        "        location /static {\n"
        "            alias /var/www/myapp/static/;\n"
        "            expires 30d;\n"
        "        }\n"
        "\n"
        "        location / {\n"
        "            proxy_pass http://127.0.0.1:8000;\n"
        "            proxy_set_header Host $http_host;\n"
        "            proxy_set_header X-Real-IP $remote_addr;\n"
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "            proxy_set_header X-Forwarded-Proto $scheme;\n"
        "            proxy_read_timeout 300;\n"
        "        }\n"
        "    }\n"
        "}\n"
    ),
    "static/site.css": ("body{}\n"),
}


EXPECTED = {
    # DigitalOcean-style: gunicorn on a relative socket in WorkingDirectory, nginx site.
    "do": {"NGX005", "SYS004", "SYS009", "SYS010"},  # SYS009: no ExecReload (a warning)
    # testdriven.io-style compose: nginx service -> web:5000, postgres, .env files.
    "tdd": {"GUN006", "NGX005", "NGX010", "CMP003", "CMP005"},
    # One module, full nginx.conf with TLS, gunicorn_config.py under systemd.
    "single": {
        *("GUN008", "NGX003", "NGX006", "NGX007", "NGX009", "NGX012", "NGX013"),
        *("SYS009", "SYS010"),
    },
}
PROJECTS = {"do": DO, "tdd": TDD, "single": SINGLE}


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_public_style_project(tmp_path: Path, name: str) -> None:
    write(tmp_path, PROJECTS[name])
    found = check(tmp_path)
    assert not [f for f in found if f.id == "FP000"]
    loud = {f.id for f in found if f.level >= Level.WARNING}
    assert loud == EXPECTED[name], sorted(f"{f.id} {f.file}:{f.line} {f.message}" for f in found)
