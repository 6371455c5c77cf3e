"""The MariaDB/MySQL rules beyond their fixtures: the limit is the spec's
wait_timeout when flaskprod.toml names one, a published MariaDB port is CMP002, the
kit's own compose for a MariaDB app passes them all, and the command's option forms
(``--opt=value``, ``--opt value``, a string command) are read alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploy_helpers import FIXTURES, check, ids, write

from flaskprod.check.runner import CheckOptions, run_checks
from flaskprod.kit.render import render_kit
from flaskprod.spec.model import Spec


def all_ids(root: Path) -> set[str]:
    """Every finding's id (deploy_helpers.check keeps the deployment layers' only)."""
    return {f.id for f in run_checks(CheckOptions(root=root, no_import=True)).findings}


SPEC = """[app]
target = "app:app"
name = "app"
[database]
engine = "mariadb"
wait_timeout = 600
pool_recycle = 300
"""


def test_pool_recycle_is_judged_against_the_specs_wait_timeout(tmp_path: Path) -> None:
    # MDB001's passing fixture recycles every 1800 s: below MariaDB's default 8 hours,
    # not below a server run with wait_timeout = 600 (flaskprod.toml)
    root = Path(shutil.copytree(FIXTURES / "MDB001" / "pass", tmp_path / "app"))
    (root / "flaskprod.toml").write_text(SPEC)
    found = run_checks(CheckOptions(root=root, select=("MDB001",))).findings
    assert [f.message for f in found] == [
        "pool_recycle is 1800 s, not below flaskprod.toml's database.wait_timeout (600 s): "
        "the server closes idle pooled connections first ('MySQL server has gone away')"
    ]


@pytest.mark.parametrize(
    ("ports", "fires"),
    [('["3306:3306"]', True), ('["127.0.0.1:3306:3306"]', False)],
)
def test_a_published_mariadb_port_is_cmp002(tmp_path: Path, ports: str, fires: bool) -> None:
    compose = (FIXTURES / "MDB004" / "pass" / "compose.yaml").read_text()
    compose = compose.replace("    command:", f"    ports: {ports}\n    command:")
    write(tmp_path, {"compose.yaml": compose})
    found = [f for f in check(tmp_path) if f.id == "CMP002"]
    assert bool(found) is fires
    if fires:
        assert "service 'db' (mariadb) publishes 3306:3306" in found[0].message


@pytest.mark.parametrize(
    "command",
    [
        '"--sql-mode", "NO_ENGINE_SUBSTITUTION"',
        "\"--sql-mode=''\"",
    ],
)
def test_option_forms(tmp_path: Path, command: str) -> None:
    compose = (FIXTURES / "MDB004" / "pass" / "compose.yaml").read_text()
    compose = compose.replace('"--sql-mode=STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"', command)
    write(tmp_path, {"compose.yaml": compose})
    assert "MDB004" in all_ids(tmp_path)


def test_the_kits_compose_for_mariadb_passes(tmp_path: Path) -> None:
    spec = Spec.model_validate(
        {"app": {"target": "app:app", "name": "app"}, "database": {"engine": "mariadb"}}
    )
    write(tmp_path, {"deploy/compose.yaml": render_kit(spec)["deploy/compose.yaml"]})
    found = all_ids(tmp_path)
    assert not found & {"MDB004", "MDB005", "CMP002", "CMP003", "CMP004"}
    # and the same file with the traps put in fires both
    text = (tmp_path / "deploy/compose.yaml").read_text()
    bad = text.replace("--sql-mode=STRICT_TRANS_TABLES,STRICT_ALL_TABLES,", "--sql-mode=")
    bad = bad.replace("--character-set-server=utf8mb4", "--character-set-server=latin1")
    (tmp_path / "deploy/compose.yaml").write_text(bad)
    assert {"MDB004", "MDB005"} <= all_ids(tmp_path)


UNIT = """[Unit]
Description=app
{after}
[Service]
User=app
Environment=DATABASE_URL=mysql+pymysql://app:pw@127.0.0.1:3306/app?charset=utf8mb4
ExecStart=/srv/app/.venv/bin/gunicorn -w 3 -b 127.0.0.1:8000 app:app
"""


@pytest.mark.parametrize(
    ("after", "fires"),
    [
        ("After=network-online.target mariadb.service", False),
        ("After=mysql.service", False),
        ("After=network-online.target", True),
    ],
)
def test_a_local_mariadb_needs_the_units_ordering(tmp_path: Path, after: str, fires: bool) -> None:
    write(tmp_path, {"deploy/app.service": UNIT.format(after=after)})
    found = [f for f in check(tmp_path) if f.id == "SYS008"]
    assert bool(found) is fires, found
    if fires:
        assert "the local mysql (DATABASE_URL)" in found[0].message


def test_the_kits_unit_for_mariadb_is_ordered_after_it(tmp_path: Path) -> None:
    # (SYS008 judges gunicorn's units: the kit's with server.kind = "gunicorn")
    spec = Spec.model_validate(
        {
            "app": {"target": "app:app", "name": "app"},
            "server": {"kind": "gunicorn"},
            "database": {"engine": "mariadb"},
        }
    )
    unit = render_kit(spec)["deploy/systemd/app.service"]
    toml = SPEC + '[server]\nkind = "gunicorn"\n'
    write(tmp_path, {"deploy/systemd/app.service": unit, "flaskprod.toml": toml})
    assert "SYS008" not in ids(check(tmp_path))
    write(tmp_path, {"deploy/systemd/app.service": unit.replace(" mariadb.service", "")})
    found = [f for f in check(tmp_path) if f.id == "SYS008"]
    assert found and "flaskprod.toml [database] local" in found[0].message
