"""Suite-wide fixtures: real, throwaway PostgreSQL and Redis servers.

Each is started once per session on a free loopback port in its own temp folder and
stopped by its pid at the end (also if the run crashes: the classes register an atexit
stop, and the servers get SIGTERM from the kernel if pytest itself dies). A missing
binary FAILS the test, naming what to install: never a skip.

- ``postgres_cluster`` (session): a started :class:`PostgresCluster`.
- ``postgres_url`` (function): a fresh database per test, its SQLAlchemy URL
  (``postgresql+psycopg://postgres@127.0.0.1:PORT/NAME``); dropped afterwards.
- ``mariadb_server`` (session): a started :class:`MariaDBServer` (never the machine's
  own MariaDB: its own data folder, socket and port), with flaskprod's settings.
- ``redis_server`` (session): a started :class:`RedisServer`.
- ``redis_url`` (function): ``redis://127.0.0.1:PORT/0``, flushed before the test.
- ``s3_env`` (session): a started SeaweedFS (S3 gateway) with the bucket ``shop-media``;
  the variables the app and ``flaskprod backup`` read (AWS_*, MEDIA_BUCKET).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from flaskprod.errors import UserError
from flaskprod.stack.mariadb import MariaDBServer
from flaskprod.stack.postgres import PostgresCluster, temp_cluster_dir
from flaskprod.stack.redis import RedisServer

# pytester: tests/stack checks that these fixtures fail (not skip) without a binary.
pytest_plugins = ["pytester"]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``-n N`` (make pytest): each lab module, and each other folder of tests as one
    unit in its order, on whichever worker is free (tests/parallel.py). This replaces
    xdist's default ``--dist load``; another ``--dist`` given explicitly is xdist's own."""
    if config.getoption("dist") != "load":
        return None
    from parallel import LabScheduling

    return LabScheduling(config, log)


_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    data_dir = temp_cluster_dir(prefix="flaskprod-test-pg-")
    try:
        cluster = PostgresCluster(data_dir, fsync=False, max_connections=200, die_with_parent=True)
        cluster.start()
    except UserError as error:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        pytest.fail(f"PostgreSQL for the tests: {error}", pytrace=False)
    yield cluster
    cluster.stop()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    _revive(postgres_cluster)
    # pid + counter: unique even if two sessions ever shared a cluster.
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    url = postgres_cluster.create_database(name)
    yield url
    _revive(postgres_cluster)
    postgres_cluster.drop_database(name)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    from flaskprod.spec.mariadb import server_settings
    from flaskprod.spec.model import Spec

    spec = Spec.model_validate({"app": {"target": "app:app", "name": "t"}})
    data_dir = temp_cluster_dir(prefix="flaskprod-test-my-")
    try:
        server = MariaDBServer(
            data_dir, settings=server_settings(spec), fsync=False, die_with_parent=True
        )
        server.start()
    except UserError as error:
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        pytest.fail(f"MariaDB for the tests: {error}", pytrace=False)
    yield server
    server.stop()
    shutil.rmtree(data_dir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"), die_with_parent=True)
        server.start()
    except UserError as error:
        pytest.fail(f"Redis for the tests: {error}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    _revive(redis_server)
    redis_server.command("FLUSHALL")
    return redis_server.url()


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    import secrets

    from flaskprod.runtime.storage import ensure_bucket, s3_client
    from flaskprod.stack.seaweedfs import S3Credentials, SeaweedFS

    keys = S3Credentials("AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    folder = tmp_path_factory.mktemp("seaweedfs")
    server = SeaweedFS(
        folder, credentials=keys, bucket="shop-media", log_path=folder / "weed.log",
        die_with_parent=True,
    )  # fmt: skip
    try:
        server.start()
    except UserError as error:
        pytest.fail(f"SeaweedFS for the tests: {error}", pytrace=False)
    env = {
        "AWS_ENDPOINT_URL_S3": server.endpoint,
        "AWS_ACCESS_KEY_ID": keys.access_key,
        "AWS_SECRET_ACCESS_KEY": keys.secret_key,
        "MEDIA_BUCKET": "shop-media",
    }
    ensure_bucket(s3_client(env), "shop-media")
    yield env
    server.stop()


def _revive(server: PostgresCluster | RedisServer) -> None:
    # A test before this one may have stopped or paused the shared server (readiness
    # and fault tests do): hand the next test a running one.
    server.resume()
    if not server.running:
        server.start()
