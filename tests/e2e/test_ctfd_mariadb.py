"""CTFd (a real project shipping pymysql, as published, no edit) under ``flaskprod up``
on the MariaDB up runs itself: init detects MariaDB, up starts it in the state folder
(never the machine's own), CTFd's migrations create its tables (utf8mb4), the app
serves through nginx; then backup -> drop -> restore gives identical rows."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flaskprod_cli import run_flaskprod
from real_projects import copy_project

from flaskprod.stack.mariadb import MariaDBServer
from flaskprod.stack.ports import free_ports

# Written through CTFd's own models, in the app's environment under up (few users:
# CTFd hashes passwords with bcrypt).
SEED = """
from CTFd import create_app
from CTFd.models import Challenges, Users, db

app = create_app()
with app.app_context():
    for i in range(5):
        db.session.add(Users(name=f"player {i} \\U0001f6a9", email=f"p{i}@example.com",
                             password="pw-12345678"))
    for i in range(12):
        db.session.add(Challenges(name=f"challenge {i} é", description="x" * 300,
                                  value=100 + i, category="web"))
    db.session.commit()
"""


@dataclass
class Ctfd:
    root: Path
    https_port: int
    init_output: str
    up_output: str

    def env(self) -> dict[str, str]:
        state = json.loads((self.root / ".flaskprod/state.json").read_text())
        return {**os.environ, **state["env"], "PYTHONPATH": str(self.root)}

    def admin_sql(self, sql: str) -> list[list[str]]:
        server = MariaDBServer.__new__(MariaDBServer)  # the stack's, by its socket only
        server.socket_path = self.root / ".flaskprod/mariadb/mariadb.sock"
        server.client_binary = Path(shutil.which("mariadb") or "/usr/bin/mariadb")
        return server.sql(sql)


@pytest.fixture(scope="module")
def ctfd() -> Iterator[Ctfd]:
    base = Path(tempfile.mkdtemp(prefix="flaskprod-ctfd-"))
    base.chmod(0o755)  # nginx's workers and the mysql user traverse it
    root = copy_project("CTFd", base)
    init = run_flaskprod("init", str(root))
    assert init.returncode == 0, init.stderr
    https_port, http_port = free_ports(2)
    up = run_flaskprod(
        "up", str(root), "-d", "--https-port", str(https_port), "--http-port", str(http_port),
        "--timeout", "240", timeout=400,
    )  # fmt: skip
    try:
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        yield Ctfd(root, https_port, init.stdout, up.stdout)
    finally:
        down = run_flaskprod("down", str(root), "--volumes", "--yes")
        assert down.returncode == 0, down.stderr
        assert "mariadb: stopped (pid " in down.stdout + down.stderr
        assert not (root / ".flaskprod/mariadb").exists()  # --volumes: its data went too
        shutil.rmtree(base)


def get(ctfd: Ctfd, path: str) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(ctfd.root / ".flaskprod/tls/ca.pem"))
    url = f"https://localhost:{ctfd.https_port}{path}"
    with urllib.request.urlopen(url, context=context, timeout=30) as response:
        return response.status, response.read()


def test_init_detects_mariadb_and_up_runs_its_own(ctfd: Ctfd) -> None:
    assert "database: MariaDB through pymysql (database.driver)" in ctfd.init_output
    toml = (ctfd.root / "flaskprod.toml").read_text()
    assert 'engine = "mariadb"' in toml and 'driver = "pymysql"' in toml
    lines = ctfd.up_output.splitlines()
    assert any(line.startswith("mariadb: creating a new server in ") for line in lines)
    assert "mariadb: database ctfd, user ctfd (granted on it only" in ctfd.up_output
    state = json.loads((ctfd.root / ".flaskprod/state.json").read_text())
    url = state["env"]["DATABASE_URL"]
    assert url.startswith("mysql+pymysql://ctfd:") and url.endswith("/ctfd?charset=utf8mb4")
    assert ":3306/" not in url  # never the machine's MariaDB
    record = next(s for s in state["services"] if s["name"] == "mariadb")
    assert record["data"] == str(ctfd.root / ".flaskprod/mariadb")


def test_ctfd_migrated_its_tables_on_mariadb_and_serves(ctfd: Ctfd) -> None:
    tables = ctfd.admin_sql(
        "SELECT table_name, table_collation FROM information_schema.tables "
        "WHERE table_schema = 'ctfd';"
    )
    names = {row[0] for row in tables}
    assert {"users", "challenges", "alembic_version", "config"} <= names
    assert {row[1] for row in tables} == {"utf8mb4_unicode_ci"}
    assert get(ctfd, "/healthcheck") == (200, b"OK")
    status, body = get(ctfd, "/setup")
    assert status == 200 and b"CTFd" in body


def test_backup_drop_restore_gives_identical_rows(ctfd: Ctfd) -> None:
    seeded = subprocess.run(
        [str(ctfd.root / ".venv/bin/python"), "-c", SEED],
        cwd=ctfd.root,
        env=ctfd.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    query = (
        "SELECT COUNT(*), HEX(GROUP_CONCAT(name ORDER BY id)) FROM ctfd.users; "
        "CHECKSUM TABLE ctfd.users, ctfd.challenges, ctfd.config;"
    )
    before = ctfd.admin_sql(query)
    assert before[0][0] == "5" and "F09F9AA9" in before[0][1]  # the flag emoji, as stored

    made = run_flaskprod("backup", str(ctfd.root), "--verify-restore", "--json", timeout=300)
    assert made.returncode == 0, made.stderr
    assert "restore drill passed" in made.stderr
    dump = json.loads(made.stdout)["backup"]["path"]
    assert dump.endswith(".sql.gz")

    ctfd.admin_sql("DROP DATABASE ctfd;")
    restored = run_flaskprod(
        "restore", dump, "--project", str(ctfd.root), "--into", "ctfd", "--json", timeout=300
    )
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["differences"] == []
    assert ctfd.admin_sql(query) == before
    # the app's pooled connections saw the database vanish: it serves again within a
    # few requests (bounded: 20 tries, 0.5 s apart)
    statuses = []
    for _ in range(20):
        statuses.append(get_status(ctfd, "/healthcheck"))
        if statuses[-1] == 200:
            break
        time.sleep(0.5)
    assert statuses[-1] == 200, statuses


def get_status(ctfd: Ctfd, path: str) -> int:
    try:
        return get(ctfd, path)[0]
    except urllib.error.HTTPError as error:
        return error.code
