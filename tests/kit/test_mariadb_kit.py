"""The kit of a MariaDB app (database.engine = "mariadb"): compose's db service (the
official image pinned, healthcheck, volume, no published port, the same server
settings as up), the env file's URL and pool settings, systemd ordering, the host's
server config, and Kubernetes' notes; one list of settings feeds all of them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from test_validate_compose import MissingVariable, interpolate

from flaskprod.kit.render import render_kit
from flaskprod.spec.mariadb import SQL_MODE, server_flags
from flaskprod.spec.model import Spec

SECRETS = {
    "SECRET_KEY": "s" * 48,
    "MARIADB_PASSWORD": "app-pass",
    "MARIADB_ROOT_PASSWORD": "root-pass",
    "REDIS_PASSWORD": "r-pass",
}


def spec(**database: Any) -> Spec:
    return Spec.model_validate(
        {
            "app": {"target": "shop:create_app()", "name": "shop"},
            "server": {"kind": "gunicorn", "workers": 3},
            "database": {"engine": "mariadb", **database},
        }
    )


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return render_kit(spec(wait_timeout=900, pool_recycle=600))


def test_compose_runs_mariadb_pinned_healthy_and_private(files: dict[str, str]) -> None:
    data = yaml.safe_load(interpolate(files["deploy/compose.yaml"], SECRETS))
    db = data["services"]["db"]
    assert db["image"] == "mariadb:10.11.10-jammy"
    assert db["healthcheck"]["test"] == [
        "CMD",
        "healthcheck.sh",
        "--connect",
        "--innodb_initialized",
    ]
    assert db["volumes"] == ["mariadbdata:/var/lib/mysql"]
    assert "ports" not in db and db["networks"] == ["backend"]
    assert data["networks"]["backend"]["internal"] is True
    assert db["environment"]["MARIADB_USER"] == "shop"
    assert db["environment"]["MARIADB_PASSWORD"] == "app-pass"
    assert db["command"] == ["mariadbd", *server_flags(spec(wait_timeout=900, pool_recycle=600))]
    assert f"--sql-mode={SQL_MODE}" in db["command"] and "--wait-timeout=900" in db["command"]
    assert "--character-set-server=utf8mb4" in db["command"]
    web = data["services"]["web"]
    assert web["environment"]["DATABASE_URL"] == (
        "mysql+pymysql://shop:app-pass@db:3306/shop?charset=utf8mb4"
    )
    assert web["depends_on"]["db"] == {"condition": "service_healthy"}
    assert data["services"]["migrate"]["depends_on"]["db"] == {"condition": "service_healthy"}
    assert "mariadbdata" in data["volumes"] and "pgdata" not in data["volumes"]
    assert "postgres" not in files["deploy/compose.yaml"].lower()


@pytest.mark.parametrize("missing", ["MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"])
def test_compose_requires_both_passwords(files: dict[str, str], missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(MissingVariable, match=f"^{missing}: set {missing} in .env$"):
        interpolate(files["deploy/compose.yaml"], env)


def test_env_file_pool_settings_and_units(files: dict[str, str]) -> None:
    env = files["deploy/.env.example"]
    assert "DATABASE_URL=mysql+pymysql://shop:CHANGE-ME@localhost:3306/shop?charset=utf8mb4" in env
    assert "FLASKPROD_SQLALCHEMY_POOL_RECYCLE=600" in env
    assert "MARIADB_PASSWORD=" in env and "POSTGRES_PASSWORD" not in env
    unit = files["deploy/systemd/shop.service"]
    assert "mariadb.service" in unit and "postgresql.service" not in unit
    assert "After=mariadb.service" in files["deploy/systemd/shop-backup.service"]
    cnf = files["deploy/mariadb/shop.cnf"]
    assert "bind-address = 127.0.0.1" in cnf and f"sql_mode = {SQL_MODE}" in cnf
    assert "wait_timeout = 900" in cnf and "character_set_server = utf8mb4" in cnf
    k8s = files["deploy/k8s/deployment.yaml"]
    assert "MariaDB is not run here" in k8s and "never root" in k8s
    workflow = files[".github/workflows/shop.yml"]
    assert "mysql+pymysql://ci:ci@127.0.0.1:3306/ci?charset=utf8mb4" in workflow
    assert json.dumps("postgresql+pymysql") not in workflow and "postgresql+" not in workflow


def test_the_spec_refuses_a_pool_recycle_at_or_above_wait_timeout() -> None:
    with pytest.raises(ValidationError, match=r"pool_recycle \(3600\) must be below"):
        spec(pool_recycle=3600, wait_timeout=3600)
    with pytest.raises(ValidationError, match="'psycopg' is not a driver for mariadb"):
        spec(driver="psycopg")
    assert spec().database.driver == "pymysql"  # the default for a MySQL engine
    assert spec(engine="mysql", driver="mysqldb").database.scheme == "mysql+mysqldb"
