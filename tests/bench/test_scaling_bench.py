"""bench/scaling.py end to end with one-second runs: real nginx (direct, proxying,
terminating TLS), a real PostgreSQL and a real PgBouncer. Asserts what the figures mean
(PgBouncer really holds the server side to its pool), never speed."""

from __future__ import annotations

from pathlib import Path

from bench.scaling import balancer_hop, postgres_tier


def test_the_balancer_hop_is_measured_through_every_path(tmp_path: Path) -> None:
    rows = balancer_hop(tmp_path, seconds=1)

    assert [row.path.split(" (")[0] for row in rows] == [
        "direct to the answering nginx",
        "through a proxying nginx",
        "through a proxying nginx terminating TLS",
        "through a proxying nginx terminating TLS",
    ]
    assert all(row.rps > 0 and row.cpu_us_per_request for row in rows)


def test_pgbouncer_holds_400_clients_to_its_pool_of_server_connections() -> None:
    backend_pss, rows = postgres_tier(seconds=1)

    assert backend_pss > 0
    direct = {row.clients: row for row in rows if row.setup == "direct"}
    assert sorted(direct) == [10, 100, 400]
    # Direct: one backend per client (the sampling sees them all once pgbench connected).
    assert direct[400].server_connections == 400
    (pooled,) = (row for row in rows if row.setup.startswith("PgBouncer"))
    assert pooled.clients == 400
    assert 1 <= pooled.server_connections <= 20
    assert pooled.tps > 0
