"""The witness book: countersigned heads and the conflicts a witness found, append-only.

One table serves both ends. At the center, ``cosignedhead`` holds every head it
countersigned, per station; at a station, the countersignatures it received for its own
heads (checked with the center's keyring before they are kept), which prove that its log
was witnessed at a time. ``witnessconflict`` (center) keeps each head that did not extend
the witnessed log, with the head it was judged against and the proof it came with:
evidence of a rewritten, truncated or forked log. Neither is ever changed or deleted.

:meth:`WitnessBook.judge_and_keep` judges a new head inside the catalog's write
transaction, so two submissions for one station are judged one after the other against
whatever the first left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, insert, select
from sqlalchemy.engine import Connection
from sqlmodel import Field, Session, SQLModel

from archive.audit.format import SignedHead
from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.catalog.types import APPEND_ONLY, JSONText, UTCDateTime, table_of
from archive.witness.cosign import Cosigned
from archive.witness.judge import Verdict

#: (last countersigned head or None) → verdict; called inside the write transaction.
Judge = Callable[[Cosigned | None], Verdict]


class CosignedHead(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(index=True)
    size: int = Field(sa_column=Column(BigInteger(), nullable=False))
    root: str
    time: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    key_id: str
    signature: str
    witness_id: str
    witnessed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    witness_key_id: str
    cosignature: str


class WitnessConflict(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(index=True)
    kind: str
    reason: str
    head: dict[str, Any] = Field(sa_column=Column(JSONText(), nullable=False))
    witnessed: dict[str, Any] = Field(sa_column=Column(JSONText(), nullable=False))
    proof: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONText()))
    detected_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


_C = table_of(CosignedHead)
_X = table_of(WitnessConflict)


def _cosigned(row: Any) -> Cosigned:
    head = SignedHead(int(row.size), row.root, row.time, row.station_id, row.key_id,
                      row.signature)
    return Cosigned(head, row.witness_id, row.witnessed_at, row.witness_key_id,
                    row.cosignature)


def _row(c: Cosigned) -> dict[str, Any]:
    h = c.head
    return {"station_id": h.station_id, "size": h.size, "root": h.root, "time": h.time,
            "key_id": h.key_id, "signature": h.signature, "witness_id": c.witness_id,
            "witnessed_at": c.witnessed_at, "witness_key_id": c.key_id,
            "cosignature": c.signature}


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    #: The countersigned head (new, or the one already kept for the same head).
    cosigned: Cosigned | None = None
    conflict_id: int | None = None
    audit_seq: int | None = None


class WitnessBook:
    def __init__(self, *, catalog: Catalog, audit: AuditLog) -> None:
        self.catalog = catalog
        self.audit = audit

    def latest(self, station_id: str) -> Cosigned | None:
        with self.catalog.engine.connect() as conn:
            return self._latest(conn, station_id)

    @staticmethod
    def _latest(conn: Connection, station_id: str) -> Cosigned | None:
        row = conn.execute(select(_C).where(_C.c.station_id == station_id)
                           .order_by(_C.c.id.desc()).limit(1)).first()
        return None if row is None else _cosigned(row)

    def history(self, station_id: str, *, limit: int = 100) -> list[Cosigned]:
        """The newest ``limit`` countersigned heads of a station, newest first."""
        with self.catalog.engine.connect() as conn:
            rows = conn.execute(select(_C).where(_C.c.station_id == station_id)
                                .order_by(_C.c.id.desc()).limit(limit))
            return [_cosigned(r) for r in rows]

    def witnessed(self, station_id: str) -> list[Cosigned]:
        """Every countersigned head of ``station_id``, oldest first."""
        with self.catalog.engine.connect() as conn:
            rows = conn.execute(select(_C).where(_C.c.station_id == station_id)
                                .order_by(_C.c.id))
            return [_cosigned(r) for r in rows]

    def conflicts(self, station_id: str | None = None) -> list[dict[str, Any]]:
        query = select(_X).order_by(_X.c.id)
        if station_id is not None:
            query = query.where(_X.c.station_id == station_id)
        with self.catalog.engine.connect() as conn:
            return [{"id": r.id, "station_id": r.station_id, "kind": r.kind,
                     "reason": r.reason, "head": r.head, "witnessed": r.witnessed,
                     "proof": r.proof, "detected_at": r.detected_at}
                    for r in conn.execute(query)]

    def judge_and_keep(self, *, head: SignedHead, proof: dict[str, Any] | None,
                       judge: Judge, cosign: Callable[[SignedHead], Cosigned],
                       actor: str, at: datetime) -> Outcome:
        """Judge ``head`` against the station's last countersigned head and keep the
        outcome with its audit event, in one write transaction: a new countersignature,
        a conflict, or nothing (refused; the caller raises)."""
        with self.catalog.transaction() as s:
            conn = s.connection()
            last = self._latest(conn, head.station_id)
            verdict = judge(last)
            if verdict.conflict:
                return self._conflict(s, head=head, proof=proof, last=last,
                                      verdict=verdict, actor=actor, at=at)
            if not verdict.accepted:
                return Outcome(verdict)
            if last is not None and last.head == head:
                return Outcome(verdict, last)  # the same head again: its countersignature
            cosigned = cosign(head)
            conn.execute(insert(_C), _row(cosigned))
            event = self.audit.append(s, actor=actor, action="witness.cosigned",
                                      subjects=[f"station:{head.station_id}"],
                                      details={"size": head.size, "root": head.root,
                                               "verdict": str(verdict.kind)}, at=at)
            return Outcome(verdict, cosigned, audit_seq=event.seq)

    def _conflict(self, s: Session, *, head: SignedHead, proof: dict[str, Any] | None,
                  last: Cosigned | None, verdict: Verdict, actor: str, at: datetime,
                  ) -> Outcome:
        made = s.connection().execute(insert(_X), {
            "station_id": head.station_id, "kind": str(verdict.kind),
            "reason": verdict.reason, "head": head.to_dict(),
            "witnessed": {} if last is None else last.to_dict(),
            "proof": proof, "detected_at": at})
        key = made.inserted_primary_key
        assert key is not None
        conflict_id = int(key[0])
        event = self.audit.append(s, actor=actor, action="witness.fork",
                                  subjects=[f"station:{head.station_id}"],
                                  details={"kind": str(verdict.kind), "reason": verdict.reason,
                                           "conflict": conflict_id, "size": head.size,
                                           "root": head.root,
                                           "witnessed_size": None if last is None
                                           else last.head.size, **verdict.details},
                                  at=at)
        return Outcome(verdict, conflict_id=conflict_id, audit_seq=event.seq)

    def keep_received(self, cosigned: Cosigned, *, actor: str, at: datetime) -> int:
        """Station side: keep a countersignature received (already checked), audited.
        Returns the audit event's number."""
        with self.catalog.transaction() as s:
            conn = s.connection()
            known = conn.execute(select(_C.c.id).where(
                _C.c.station_id == cosigned.head.station_id,
                _C.c.size == cosigned.head.size, _C.c.root == cosigned.head.root,
                _C.c.signature == cosigned.head.signature,
                _C.c.cosignature == cosigned.signature)).first()
            if known is None:
                conn.execute(insert(_C), _row(cosigned))
            event = self.audit.append(s, actor=actor, action="witness.received",
                                      subjects=["audit-log"],
                                      details={"size": cosigned.head.size,
                                               "root": cosigned.head.root,
                                               "witness": cosigned.witness_id,
                                               "witnessed_at": cosigned.to_dict()[
                                                   "witnessed_at"]}, at=at)
            return event.seq
