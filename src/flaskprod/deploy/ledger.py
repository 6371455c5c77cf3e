"""The releases of a host: ``{root}/releases.json``, read and written by ``deploy``,
``releases`` and ``rollback``.

One entry per release: ``{id, revision, created, state, slot}``, newest last. States:
``live`` (nginx sends requests to it), ``previous`` (the one before; its folder is
kept, so a rollback needs no rebuild), ``failed`` (never served), ``retired``.
Everything here is pure: the SSH target reads and writes the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

STATES = ("live", "previous", "failed", "retired")


@dataclass(frozen=True)
class Entry:
    id: str
    revision: str
    created: str  # ISO 8601, UTC
    state: str
    slot: str | None


class LedgerDamaged(ValueError):
    """releases.json is not what deploy writes."""


def release_id(revision: str, when: datetime | None = None) -> str:
    """``YYYYmmddTHHMMSSZ-<shortrev>``: sorts by time, names the commit."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{revision[:12]}"


def parse(text: str) -> list[Entry]:
    """The entries of a releases.json ("" or missing: none)."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
        entries = [Entry(**item) for item in data]
    except (ValueError, TypeError) as error:
        raise LedgerDamaged(f"releases.json is not a list of releases ({error})") from None
    for entry in entries:
        if entry.state not in STATES:
            raise LedgerDamaged(f"releases.json: release {entry.id} has state {entry.state!r}")
    return entries


def dump(entries: list[Entry]) -> str:
    return json.dumps([asdict(entry) for entry in entries], indent=2) + "\n"


def live(entries: list[Entry]) -> Entry | None:
    return next((e for e in reversed(entries) if e.state == "live"), None)


def record(entries: list[Entry], entry: Entry) -> list[Entry]:
    """``entries`` with ``entry`` added or replaced (by id). A new live release makes
    the old live one ``previous`` and the old previous one ``retired``."""
    result = []
    for old in entries:
        if old.id == entry.id:
            continue
        if entry.state == "live":
            if old.state == "live":
                old = replace(old, state="previous")
            elif old.state == "previous":
                old = replace(old, state="retired", slot=None)
        result.append(old)
    result.append(entry)
    return sorted(result, key=lambda e: e.id)


def prune(entries: list[Entry], keep: int) -> tuple[list[Entry], list[str]]:
    """Keep the newest ``keep`` releases (never the live or previous one):
    (the kept entries, the ids whose folders go)."""
    protected = {e.id for e in entries if e.state in ("live", "previous")}
    newest_first = sorted(entries, key=lambda e: e.id, reverse=True)
    kept_ids: set[str] = set(protected)
    for entry in newest_first:
        if len(kept_ids) >= max(keep, len(protected)):
            break
        kept_ids.add(entry.id)
    kept = [e for e in entries if e.id in kept_ids]
    gone = [e.id for e in entries if e.id not in kept_ids]
    return kept, gone


def rollback_target(entries: list[Entry], to: str | None = None) -> Entry:
    """The release a rollback goes to: ``to``, else the previous successful one.
    Raises ``LookupError`` with the reason."""
    current = live(entries)
    if to is not None:
        found = next((e for e in entries if e.id == to or e.id.startswith(to)), None)
        if found is None:
            raise LookupError(f"no release {to!r} on the host (flaskprod releases lists them)")
        if found.state == "failed":
            raise LookupError(f"release {found.id} failed when it was deployed: it never served")
        if current is not None and found.id == current.id:
            raise LookupError(f"release {found.id} is already live")
        return found
    candidates = [e for e in entries if e.state == "previous"]
    if not candidates:
        candidates = [
            e for e in entries if e.state == "retired" and (current is None or e.id < current.id)
        ]
    if not candidates:
        raise LookupError("no earlier successful release on the host to roll back to")
    return candidates[-1]


def table(entries: list[Entry]) -> list[str]:
    """Lines for ``flaskprod releases``, newest first."""
    lines = [f"{'id':<30} {'revision':<12} {'created':<20} {'state':<9} slot"]
    for entry in reversed(entries):
        created = entry.created.replace("+00:00", "Z")[:20]
        lines.append(
            f"{entry.id:<30} {entry.revision[:12]:<12} {created:<20} {entry.state:<9} "
            f"{entry.slot or '-'}"
        )
    return lines
