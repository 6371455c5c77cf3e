"""The suite-wide service fixtures hand out working, isolated servers."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import sqlalchemy

from flaskprod.stack.postgres import PostgresCluster
from flaskprod.stack.redis import RedisServer


def test_postgres_url_is_a_fresh_database_on_the_test_cluster(
    postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    assert postgres_url.startswith(
        f"postgresql+psycopg://postgres@127.0.0.1:{postgres_cluster.port}/"
    )
    assert postgres_cluster.port != 5432  # never the machine's own server
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as conn:
        tables = conn.execute(
            sqlalchemy.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        ).scalar_one()
        directory = conn.execute(sqlalchemy.text("SHOW data_directory")).scalar_one()
    engine.dispose()
    assert tables == 0
    assert directory == str(postgres_cluster.data_dir)


def test_redis_url_is_flushed_and_on_the_test_server(
    redis_url: str, redis_server: RedisServer
) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.port != 6379
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("left-behind", "1")  # the next test must not see it
    assert client.info("server")["process_id"] == redis_server.pid
    client.close()


def test_redis_url_flushes_what_a_previous_test_left(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.get("left-behind") is None
    client.close()


def test_a_missing_binary_fails_the_fixture_never_skips(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's own conftest, in a run where redis-server is not on PATH.
    pytester.makeconftest((Path(__file__).parents[1] / "conftest.py").read_text())
    pytester.makepyfile("def test_needs_redis(redis_url):\n    assert redis_url\n")
    monkeypatch.setenv("PATH", str(pytester.mkdir("empty-bin")))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*Redis for the tests: redis-server not found in PATH (apt-get install redis-server)*"]
    )
    assert "skipped" not in result.stdout.str()
