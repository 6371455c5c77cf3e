"""A backup taken while the app writes is one instant: the manifest's row counts and
checksums describe exactly what the dump holds (pg_dump shares the stats' snapshot)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ops_helpers import ShopData

from flaskprod.ops import postgres
from flaskprod.ops.backup import make_backup
from flaskprod.ops.database import parse_url
from flaskprod.ops.restore import verify_restore


def test_backup_under_writes_matches_its_manifest(shop_postgres: ShopData, tmp_path: Path) -> None:
    db = parse_url(shop_postgres.url)
    with postgres.connect(db) as conn:
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body text NOT NULL)")
        conn.execute(
            "INSERT INTO events (body) SELECT md5(i::text) FROM generate_series(1, 20000) i"
        )
    stop = threading.Event()
    written = [0]

    def write() -> None:
        with postgres.connect(db) as conn:
            deadline = time.monotonic() + 30  # bounded whatever happens
            while not stop.is_set() and time.monotonic() < deadline:
                conn.execute("INSERT INTO events (body) VALUES ('during the backup')")
                written[0] += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        while written[0] < 20:
            time.sleep(0.01)
        at_start = written[0]
        backup = make_backup(db, app="shop", folder=tmp_path)
        during = written[0] - at_start
    finally:
        stop.set()
        writer.join(timeout=10)
    assert during > 0, "no write overlapped the backup: the test proved nothing"
    events = backup.manifest.tables["events"].rows
    assert 20000 < events < 20000 + written[0]
    # Restored into a scratch database: the same rows and the same checksums.
    result = verify_restore(backup, db)
    assert result.tables == backup.manifest.tables
