"""The MariaDB flaskprod starts: its own data folder, socket and port (never the
machine's 3306), unprivileged, utf8mb4 and strict SQL mode, an app user granted on its
own database only, a clean stop by pid, data kept across a restart."""

from __future__ import annotations

import os
import pwd

import pytest

from flaskprod.errors import UserError
from flaskprod.ops import mariadb as ops_mariadb
from flaskprod.ops.database import parse_url
from flaskprod.spec.mariadb import SQL_MODE
from flaskprod.spec.model import Spec
from flaskprod.stack import process
from flaskprod.stack.mariadb import MariaDBServer


def app_url(server: MariaDBServer, database: str, user: str, password: str) -> str:
    spec = Spec.model_validate(
        {"app": {"target": "app:app", "name": "t"}, "database": {"engine": "mariadb"}}
    )
    return spec.database.url(user, password, "127.0.0.1", server.port, database)


def test_its_own_unprivileged_server_with_flaskprods_settings(
    mariadb_server: MariaDBServer,
) -> None:
    assert mariadb_server.port != 3306
    assert str(mariadb_server.socket_path).startswith(str(mariadb_server.data_dir))
    pid = mariadb_server.pid
    assert pid is not None
    owner = os.stat(f"/proc/{pid}").st_uid
    assert owner != 0 and pwd.getpwuid(owner).pw_name in ("mysql", os.environ.get("USER", ""))
    charset, collation, mode = mariadb_server.sql(
        "SELECT @@character_set_server, @@collation_server, @@sql_mode;"
    )[0]
    assert (charset, collation) == ("utf8mb4", "utf8mb4_unicode_ci")
    assert set(mode.split(",")) == set(SQL_MODE.split(","))


def test_the_app_user_reaches_its_database_only(mariadb_server: MariaDBServer) -> None:
    mariadb_server.ensure_database("shop_a", "shop_a", "pw-A'1")
    mariadb_server.ensure_database("other_b", "other_b", "pw-B")
    own = parse_url(app_url(mariadb_server, "shop_a", "shop_a", "pw-A'1"))
    ops_mariadb.query(own, "CREATE TABLE t (name VARCHAR(3) PRIMARY KEY);", database="shop_a")
    # utf8mb4: a 4-byte character is stored as it is
    ops_mariadb.query(own, "INSERT INTO t VALUES ('\U0001f6a9');", database="shop_a")
    assert ops_mariadb.query(own, "SELECT HEX(name) FROM t;", database="shop_a") == [["F09F9AA9"]]
    # strict mode: too long is an error, not a silent truncation
    with pytest.raises(UserError, match="Data too long"):
        ops_mariadb.query(own, "INSERT INTO t VALUES ('abcd');", database="shop_a")
    with pytest.raises(UserError, match="Access denied"):
        ops_mariadb.query(own, "SELECT 1;", database="other_b")
    with pytest.raises(UserError, match="Access denied"):
        ops_mariadb.query(own, "CREATE DATABASE sneaky;")
    # the password given on the next start wins (up's generated one is the truth)
    mariadb_server.ensure_database("shop_a", "shop_a", "pw-new")
    with pytest.raises(UserError, match="Access denied"):
        ops_mariadb.query(own, "SELECT 1;")


def test_a_restart_keeps_the_data_and_the_stop_is_clean(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from flaskprod.stack.postgres import temp_cluster_dir

    data = temp_cluster_dir(prefix="flaskprod-test-my2-")
    server = MariaDBServer(data, fsync=False, die_with_parent=True)
    server.start()
    try:
        server.ensure_database("keep", "keep", "pw")
        server.sql("CREATE TABLE keep.t (id INT PRIMARY KEY); INSERT INTO keep.t VALUES (7);")
        pid = server.pid
        assert pid is not None
        server.stop()
        assert not process.is_alive(pid)
        assert "Shutdown complete" in server.log_path.read_text()
        server.start()
        assert server.sql("SELECT id FROM keep.t;") == [["7"]]
    finally:
        server.stop()
