"""The center's mirror of each station's audit log: every event, verified as it arrives.

A station pushes its events in order (``seq`` 0, 1, 2, ...), in batches, as often as it
likes: the center keeps each one once (``stationevent``, append-only, keyed by station
and seq) after checking that it hashes to its leaf (the same encoding the station used,
:func:`archive.audit.rows.build_row`) and chains to the event before it. An event that
names blobs (an offloaded original, the signed record of a recording or session, a
rendition's manifest) is kept only once each blob is in the object store with the right
checksum; the batch stops before the first that is not, and the next push resumes
there. An event sent again is compared with the one kept: the same leaf is skipped
(idempotent); another leaf is a fork.

Because the center holds every leaf, it can compute the root of a station's log at any
size it mirrors (:meth:`Mirror.root`), and so check a signed head directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, insert, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from archive.audit.format import GENESIS, parse_iso, text_fields
from archive.audit.rows import EventSpec, build_row
from archive.catalog import Catalog
from archive.catalog.types import APPEND_ONLY, JSONText, UTCDateTime, table_of
from integrity.errors import AuditError, EvidockError
from integrity.merkle import MerkleAccumulator


class StationEvent(SQLModel, table=True):
    """One audit event of a station, as the station logged it (its own seq)."""

    __table_args__ = APPEND_ONLY
    station_id: str = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger(), primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str
    action: str
    subjects: list[str] = Field(default_factory=list,
                                sa_column=Column(JSONText(), nullable=False))
    details: dict[str, Any] = Field(default_factory=dict,
                                    sa_column=Column(JSONText(), nullable=False))
    prev_hash: str
    leaf_hash: str
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class StationFrontier(SQLModel, table=True):
    """The Merkle frontier of a station's mirrored events: the root at the mirror's size
    in O(log n) instead of a pass over every leaf (a head is judged at each push).
    Derived from ``stationevent`` in the transaction that keeps events; only ``size``
    and ``frontier`` change (guarded, migration 0018)."""

    __table_args__ = {"info": {"derived": True, "fixed": ("station_id",)}}
    station_id: str = Field(primary_key=True)
    size: int = Field(sa_column=Column(BigInteger(), nullable=False))
    frontier: list[str] = Field(default_factory=list,
                                sa_column=Column(JSONText(), nullable=False))


_E = table_of(StationEvent)
_F = table_of(StationFrontier)


@dataclass(frozen=True)
class Incoming:
    """A pushed event, parsed; ``leaf`` is what the station says its leaf hash is."""

    seq: int
    spec: EventSpec
    prev: str
    leaf: str


@dataclass(frozen=True)
class NamedBlob:
    """A blob an event names, with what the event says about it."""

    blake3: str
    sha256: str | None = None
    size: int | None = None


def parse_event(doc: Mapping[str, Any]) -> Incoming:
    """A pushed event (the fields of an ``auditevent`` row); AuditError if malformed."""
    if not isinstance(doc, Mapping):
        raise AuditError("an event is a JSON object")
    seq = doc.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise AuditError("event seq must be a non-negative integer", field="seq")
    texts = text_fields(doc, ("actor", "action", "prev_hash", "leaf_hash"), f"event {seq}",
                        seq=seq)
    subjects, details = doc.get("subjects"), doc.get("details")
    if not isinstance(subjects, list) or not isinstance(details, dict):
        raise AuditError(f"event {seq}: subjects must be a list, details an object", seq=seq)
    spec = EventSpec(texts["actor"], texts["action"], subjects, details,
                     parse_iso(doc.get("at"), "at"))
    return Incoming(seq, spec, texts["prev_hash"], texts["leaf_hash"])


def check_event(event: Incoming) -> str | None:
    """Why ``event`` does not hash to the leaf it came with (None: it does)."""
    try:
        row = build_row(event.seq, event.prev, event.spec)
    except EvidockError as exc:
        return f"event {event.seq} is not a valid audit event: {exc.message}"
    if row.leaf != event.leaf:
        return f"event {event.seq} does not hash to the leaf the station gave"
    return None


def named_blobs(event: Incoming) -> list[NamedBlob]:
    """The blobs an event says exist: a new original (with its digests and size), the
    signed record it names, a rendition's manifest."""
    d, out = event.spec.details, []
    if event.spec.action == "ingest.file" and isinstance(d.get("blake3"), str) \
            and d.get("status") in ("ingested", "flagged", "duplicate"):
        sha, size = d.get("sha256"), d.get("size")
        out.append(NamedBlob(d["blake3"], sha if isinstance(sha, str) else None,
                             size if isinstance(size, int) else None))
    for key in ("record", "manifest"):
        if isinstance(d.get(key), str):
            out.append(NamedBlob(d[key]))
    return out


@dataclass(frozen=True)
class Accepted:
    """What one push did: events kept, the next seq wanted, and why it stopped early."""

    kept: int
    skipped: int
    next_seq: int
    waiting: dict[str, Any] | None = None


#: Checks a named blob in the object store: None if it is there and right, else why not.
BlobCheck = Callable[[NamedBlob], str | None]


class Mirror:
    def __init__(self, *, catalog: Catalog) -> None:
        self.catalog = catalog

    @staticmethod
    def tail(conn: Connection, station_id: str) -> tuple[int, str]:
        row = conn.execute(select(_E.c.seq, _E.c.leaf_hash).where(
            _E.c.station_id == station_id).order_by(_E.c.seq.desc()).limit(1)).first()
        return (0, GENESIS) if row is None else (int(row[0]) + 1, str(row[1]))

    def next_seq(self, station_id: str) -> int:
        with self.catalog.engine.connect() as conn:
            return self.tail(conn, station_id)[0]

    def held(self, conn: Connection, station_id: str, seqs: Sequence[int]) -> dict[int, str]:
        rows = conn.execute(select(_E.c.seq, _E.c.leaf_hash).where(
            _E.c.station_id == station_id, _E.c.seq.in_(list(seqs))))
        return {int(s): str(leaf) for s, leaf in rows}

    def leaves(self, station_id: str, size: int) -> Iterator[bytes]:
        with self.catalog.engine.connect() as conn:
            rows = conn.execution_options(stream_results=True, max_row_buffer=10_000).execute(
                select(_E.c.seq, _E.c.leaf_hash).where(
                    _E.c.station_id == station_id, _E.c.seq < size).order_by(_E.c.seq))
            for expected, (seq, leaf) in enumerate(rows):
                if int(seq) != expected:
                    raise AuditError("the mirror has a gap", station_id=station_id, seq=expected)
                yield bytes.fromhex(leaf)

    def root(self, station_id: str, size: int) -> str | None:
        """The Merkle root of the first ``size`` mirrored events (None: not all held):
        from the kept frontier when ``size`` is the mirror's size, else from the leaves."""
        if self.next_seq(station_id) < size:
            return None
        with self.catalog.engine.connect() as conn:
            kept = self._frontier(conn, station_id)
        if kept is not None and kept.size == size:
            return kept.root().hex()
        return self._accumulate(MerkleAccumulator(), self.leaves(station_id, size)).root().hex()

    @staticmethod
    def _accumulate(acc: MerkleAccumulator, leaves: Iterable[bytes]) -> MerkleAccumulator:
        batch: list[bytes] = []
        for leaf in leaves:
            batch.append(leaf)
            if len(batch) >= 4096:
                acc, batch = acc.extend(batch), []
        return acc.extend(batch)

    @staticmethod
    def _frontier(conn: Connection, station_id: str) -> MerkleAccumulator | None:
        row = conn.execute(select(_F.c.size, _F.c.frontier).where(
            _F.c.station_id == station_id)).first()
        if row is None:
            return None
        return MerkleAccumulator(int(row[0]), tuple(bytes.fromhex(h) for h in row[1]))

    def advance(self, conn: Connection, station_id: str, kept: Sequence[Incoming]) -> None:
        """In the transaction that kept ``kept`` (the next events after the mirror's old
        end): move the station's frontier over them (built from every leaf the first
        time, or if it lags)."""
        if not kept:
            return
        acc = self._frontier(conn, station_id)
        if acc is None or acc.size != kept[0].seq:
            rows = conn.execute(select(_E.c.leaf_hash).where(
                _E.c.station_id == station_id, _E.c.seq < kept[0].seq).order_by(_E.c.seq))
            acc = self._accumulate(MerkleAccumulator(), (bytes.fromhex(r[0]) for r in rows))
        acc = acc.extend(bytes.fromhex(e.leaf) for e in kept)
        values = {"size": acc.size, "frontier": [h.hex() for h in acc.frontier]}
        done = conn.execute(update(_F).where(_F.c.station_id == station_id).values(values))
        if done.rowcount == 0:
            conn.execute(insert(_F), {"station_id": station_id, **values})

    @staticmethod
    def insert(conn: Connection, station_id: str, events: Sequence[Incoming],
               at: datetime) -> None:
        conn.execute(insert(_E), [
            {"station_id": station_id, "seq": e.seq, "at": e.spec.at, "actor": e.spec.actor,
             "action": e.spec.action, "subjects": list(e.spec.subjects),
             "details": dict(e.spec.details), "prev_hash": e.prev, "leaf_hash": e.leaf,
             "received_at": at} for e in events])
