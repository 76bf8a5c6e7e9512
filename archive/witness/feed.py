"""A station's events arriving at the center: checked, blob-checked, kept once, audited.

:meth:`Feed.receive` takes one pushed batch. The checks that need no lock (order, chain,
leaf hashes, the blobs in the object store: network calls) run first, against the
mirror's tail as read; the events that passed are then inserted in one write
transaction with their ``feed.received`` audit event, after the tail is read again (a
concurrent push of the same events is skipped, not doubled). An event already mirrored
with another leaf is a fork: kept as a ``witnessconflict`` with both leaves, audited as
``witness.fork`` and refused with E_LOG_FORK.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from archive.audit.log import AuditLog
from archive.catalog.types import table_of
from archive.witness.book import WitnessConflict
from archive.witness.index import project
from archive.witness.mirror import (
    Accepted,
    BlobCheck,
    Incoming,
    Mirror,
    NamedBlob,
    check_event,
    named_blobs,
)
from integrity.errors import LogFork, WitnessRefused

_X = table_of(WitnessConflict)


class Feed:
    def __init__(self, *, audit: AuditLog,
                 reached: Callable[[str], None] = lambda _point: None) -> None:
        self.audit = audit
        self.mirror = Mirror(catalog=audit.catalog)
        #: Test-only pause points (ingest/hooks.py): ``feed_checked`` after the checks,
        #: ``feed_inserting`` inside the write transaction before it commits.
        self.reached = reached

    def receive(self, station_id: str, events: Sequence[Incoming], *, check_blob: BlobCheck,
                actor: str, at: datetime) -> Accepted:
        ordered = sorted(events, key=lambda e: e.seq)
        with self.audit.catalog.engine.connect() as conn:
            next_seq, prev = self.mirror.tail(conn, station_id)
            old = [e for e in ordered if e.seq < next_seq]
            self._same(conn, station_id, old, actor, at)
        fresh = [e for e in ordered if e.seq >= next_seq]
        if fresh and fresh[0].seq == next_seq and fresh[0].prev != prev \
                and check_event(fresh[0]) is None:
            # A well-formed event that chains to another predecessor than the one
            # mirrored: the station's log changed below what it pushed before.
            self._fork(station_id, fresh[0], prev, actor, at, chained=True)
        new, waiting = _admissible(fresh, next_seq, prev, check_blob)
        self.reached("feed_checked")
        kept = self._keep(station_id, new, actor, at)
        return Accepted(kept=kept, skipped=len(old), next_seq=self.mirror.next_seq(station_id),
                        waiting=waiting)

    def _same(self, conn: Connection, station_id: str, events: Sequence[Incoming],
              actor: str, at: datetime) -> None:
        """Events sent again must be the ones kept; one that differs is a fork."""
        held = self.mirror.held(conn, station_id, [e.seq for e in events])
        for e in events:
            if held.get(e.seq) != e.leaf:
                self._fork(station_id, e, held.get(e.seq), actor, at)

    def _fork(self, station_id: str, event: Incoming, held: str | None, actor: str,
              at: datetime, *, chained: bool = False) -> None:
        what = (f"event {event.seq} chains to another event {event.seq - 1} than the one "
                "mirrored" if chained else f"event {event.seq} differs from the one mirrored")
        reason = f"{what}: the station's log was rewritten after it was pushed"
        with self.audit.catalog.transaction() as s:
            made = s.connection().execute(insert(_X), {
                "station_id": station_id, "kind": "fork", "reason": reason,
                "head": {"seq": event.seq, "leaf_hash": event.leaf, "prev_hash": event.prev},
                "witnessed": {"seq": event.seq - 1 if chained else event.seq,
                              "leaf_hash": held}, "proof": None,
                "detected_at": at})
            key = made.inserted_primary_key
            conflict = int(key[0]) if key is not None else None
            seq = self.audit.append(s, actor=actor, action="witness.fork",
                                    subjects=[f"station:{station_id}"],
                                    details={"kind": "fork", "reason": reason,
                                             "conflict": conflict, "seq": event.seq,
                                             "leaf": event.leaf, "mirrored_leaf": held},
                                    at=at).seq
        raise LogFork(f"station {station_id!r}: {reason}", station_id=station_id,
                      kind="fork", conflict=conflict, audit_seq=seq, seq=event.seq)

    def _keep(self, station_id: str, new: list[Incoming], actor: str, at: datetime) -> int:
        if not new:
            return 0
        with self.audit.catalog.transaction() as s:
            conn = s.connection()
            tail, prev = self.mirror.tail(conn, station_id)
            if tail > new[0].seq:  # a concurrent push kept some: they must be the same
                held = self.mirror.held(conn, station_id, [e.seq for e in new if e.seq < tail])
                if any(held[e.seq] != e.leaf for e in new if e.seq < tail):
                    raise WitnessRefused("a concurrent push kept other events; push again",
                                         station_id=station_id)
                new = [e for e in new if e.seq >= tail]
            if not new:
                return 0
            if new[0].seq != tail or new[0].prev != prev:
                raise WitnessRefused("the mirror moved while checking; push again",
                                     station_id=station_id)
            self.mirror.insert(conn, station_id, new, at)
            self.mirror.advance(conn, station_id, new)
            project(conn, station_id, new)  # the index moves with the mirror
            self.reached("feed_inserting")
            self.audit.append(s, actor=actor, action="feed.received",
                              subjects=[f"station:{station_id}"],
                              details={"first": new[0].seq, "last": new[-1].seq,
                                       "events": len(new)}, at=at)
        return len(new)


#: Object-store checks of one batch in flight at once (each is a HEAD, sometimes a GET:
#: one after another they cap a push at ~170 recordings/s, bench.center).
CHECKS_AT_ONCE = 8


def _admissible(events: list[Incoming], next_seq: int, prev: str, check_blob: BlobCheck,
                ) -> tuple[list[Incoming], dict[str, Any] | None]:
    """The longest run from ``next_seq`` that chains, hashes right and whose blobs are all
    in the object store; and why it stopped, if it stopped before the end. The batch's
    blobs are checked concurrently; the run is still cut at the first event in order
    whose blob is not there, and an event after that point is not judged."""
    sound, refused = _chained(events, next_seq, prev)
    verdicts = _check_all([b for e in sound for b in named_blobs(e)], check_blob)
    out: list[Incoming] = []
    for e in sound:
        missing = next(((b, verdicts[b]) for b in named_blobs(e) if verdicts[b]), None)
        if missing is not None:
            return out, {"seq": e.seq, "blake3": missing[0].blake3, "reason": missing[1]}
        out.append(e)
    if refused is not None:
        raise refused
    return out, None


def _chained(events: list[Incoming], next_seq: int, prev: str,
             ) -> tuple[list[Incoming], WitnessRefused | None]:
    """The events up to the first out of order, not chained or not hashing to its leaf,
    and that refusal (raised only if no earlier event waits for a blob)."""
    for i, e in enumerate(events):
        if e.seq != next_seq + i:
            return events[:i], WitnessRefused(
                f"events must come in order: expected {next_seq + i}, got {e.seq}",
                expected=next_seq + i, got=e.seq)
        why = check_event(e) if e.prev == prev else \
            f"event {e.seq} does not chain to the event before it"
        if why is not None:
            return events[:i], WitnessRefused(why, seq=e.seq)
        prev = e.leaf
    return events, None


def _check_all(blobs: list[NamedBlob], check_blob: BlobCheck) -> dict[NamedBlob, str | None]:
    unique = list(dict.fromkeys(blobs))
    if len(unique) <= 1:
        return {b: check_blob(b) for b in unique}
    with ThreadPoolExecutor(max_workers=min(CHECKS_AT_ONCE, len(unique)),
                            thread_name_prefix="object-check") as pool:
        return dict(zip(unique, pool.map(check_blob, unique), strict=True))


__all__ = ["Feed"]
