"""The host's ledger (releases.json): states move as releases go live, pruning keeps
what a rollback needs, and the rollback target is the previous successful release."""

from __future__ import annotations

import pytest

from flaskprod.deploy import ledger
from flaskprod.deploy.ledger import Entry


def entry(n: int, state: str, slot: str | None = None) -> Entry:
    return Entry(
        f"2026120{n}T000000Z-abc{n}", f"abc{n}" * 8, f"2026-12-0{n}T00:00:00+00:00", state, slot
    )


def go_live(entries: list[Entry], n: int, slot: str) -> list[Entry]:
    return ledger.record(entries, entry(n, "live", slot))


def test_a_new_live_release_moves_the_others_down() -> None:
    entries = go_live([], 1, "a")
    entries = go_live(entries, 2, "b")
    assert [(e.id[-4:], e.state) for e in entries] == [("abc1", "previous"), ("abc2", "live")]
    entries = ledger.record(entries, entry(3, "failed"))
    entries = go_live(entries, 4, "a")
    states = {e.id[-4:]: e.state for e in entries}
    assert states == {"abc1": "retired", "abc2": "previous", "abc3": "failed", "abc4": "live"}
    assert ledger.live(entries) == entry(4, "live", "a")
    assert ledger.parse(ledger.dump(entries)) == entries


def test_prune_keeps_the_newest_and_never_live_or_previous() -> None:
    entries: list[Entry] = []
    for n in range(1, 8):
        entries = go_live(entries, n, "ab"[n % 2])
    kept, gone = ledger.prune(entries, 3)
    assert [e.id[-4:] for e in kept] == ["abc5", "abc6", "abc7"]
    assert [g[-4:] for g in gone] == ["abc1", "abc2", "abc3", "abc4"]
    # a rollback made an old release live: it and its previous stay whatever their age
    rolled = ledger.record(entries, entry(2, "live", "a"))
    kept, gone = ledger.prune(rolled, 2)
    assert {e.id[-4:] for e in kept} == {"abc2", "abc7"}


def test_rollback_target_is_the_previous_success() -> None:
    entries = go_live(go_live([], 1, "a"), 2, "b")
    entries = ledger.record(entries, entry(3, "failed"))
    assert ledger.rollback_target(entries).id.endswith("abc1")
    assert ledger.rollback_target(entries, "20261201").id.endswith("abc1")  # a prefix will do
    with pytest.raises(LookupError, match="failed when it was deployed"):
        ledger.rollback_target(entries, entry(3, "failed").id)
    with pytest.raises(LookupError, match="already live"):
        ledger.rollback_target(entries, entry(2, "live").id)
    with pytest.raises(LookupError, match="no earlier successful release"):
        ledger.rollback_target(go_live([], 1, "a"))


def test_a_damaged_ledger_is_named() -> None:
    with pytest.raises(ledger.LedgerDamaged, match="not a list of releases"):
        ledger.parse("{oops")
    with pytest.raises(ledger.LedgerDamaged, match="state 'weird'"):
        ledger.parse(
            '[{"id": "x", "revision": "r", "created": "c", "state": "weird", "slot": null}]'
        )
    assert ledger.parse("") == []
