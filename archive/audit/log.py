"""Tamper-evident audit log: every action is one event in an RFC 6962 Merkle log.

Event ``seq`` (0, 1, 2, ... gap-free) is leaf ``seq`` of the tree. Its leaf data is the
JCS (RFC 8785) encoding of ``{"v": 1, "at", "actor", "action", "subjects", "details",
"prev"}``, where ``prev`` is the leaf hash of event ``seq - 1`` (``GENESIS`` for the
first), and its leaf hash is ``BLAKE3(0x00 || leaf data)`` (:mod:`integrity.merkle`, the
same tree code as rendition manifests). The sequence number is not repeated inside the
leaf: the leaf's position in the tree (carried by every inclusion proof) and the hash
chain bind it, so a reordering shows as a broken chain rather than as edited events.

An event is appended inside the caller's transaction (:meth:`AuditLog.append`), so an
action and its event commit together or not at all. Writers serialise on the log head:
SQLite write transactions are BEGIN IMMEDIATE (:func:`ingest.catalog.db.writer`),
PostgreSQL ones take a transaction-scoped advisory lock before reading the head.

Signed tree heads sign the JCS bytes of ``{size, root, time, station_id, key_id}`` with
the station key: the size is inside the signature because an RFC 6962 root alone does not
say how many leaves it covers. Each stored head keeps its Merkle frontier, so the next
head costs only the events appended since (the frontier is checked against the signed
root before it is trusted). Verification lives in :mod:`ingest.audit_verify`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any, Protocol

from sqlalchemy import BigInteger, Column, Integer, insert, select, text
from sqlalchemy.engine import Connection
from sqlmodel import Field, Session, SQLModel

from archive.audit.format import (
    GENESIS,
    HeadSigner,
    SignedHead,
    encode,
    encode_fast,
    event_body,
    head_of,
    iso,
    leaf_hex,
    parse_iso,
)
from archive.audit.proofs import prove_consistency, prove_inclusion
from archive.audit.rows import Appended, EventSpec, chain
from archive.catalog import Catalog
from archive.catalog.db import PG_WRITE_LOCK, WRITE_OPTION
from archive.catalog.types import APPEND_ONLY, JSONText, UTCDateTime, table_of
from archive.timestamp_rows import TREE_HEAD, enqueue
from integrity.canonical import canonical_bytes
from integrity.errors import AuditError, ProofInvalid, Refused
from integrity.merkle import MerkleAccumulator

__all__ = ["GENESIS", "Appended", "AuditEvent", "AuditLog", "EventSpec", "HeadSigner",
           "Recorder", "SignedHead", "TreeHead", "encode", "encode_fast", "event_body",
           "head_of", "iso", "leaf_hex", "parse_iso", "refuse"]

# Transaction-scoped advisory lock key serialising appends on PostgreSQL: the one every
# write transaction already took at its start (archive.catalog.db); taken again here for
# appends on any other connection (re-entrant within a transaction).
_PG_LOCK_KEY = PG_WRITE_LOCK


def _seq_type() -> Any:
    # INTEGER PRIMARY KEY on SQLite is the rowid: the head lookup is one B-tree step.
    return BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(SQLModel, table=True):
    """One logged action. Rows are append-only (guarded by triggers like evidence)."""

    __table_args__ = APPEND_ONLY
    seq: int = Field(sa_column=Column(_seq_type(), primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str
    action: str
    subjects: list[str] = Field(default_factory=list,
                                sa_column=Column(JSONText(), nullable=False))
    details: dict[str, Any] = Field(default_factory=dict,
                                    sa_column=Column(JSONText(), nullable=False))
    prev_hash: str
    leaf_hash: str

    def body(self) -> dict[str, Any]:
        return event_body(at=self.at, actor=self.actor, action=self.action,
                          subjects=self.subjects, details=self.details, prev=self.prev_hash)


class TreeHead(SQLModel, table=True):
    """A signed tree head as issued; ``frontier`` (unsigned) makes the next one cheap."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    size: int = Field(sa_column=Column(BigInteger(), nullable=False))
    root: str
    time: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    station_id: str
    key_id: str
    signature: str
    frontier: list[str] = Field(default_factory=list,
                                sa_column=Column(JSONText(), nullable=False))


# --------------------------------------------------------------------------- the log

_T = table_of(AuditEvent)
_H = table_of(TreeHead)
_LAST = select(_T.c.seq, _T.c.leaf_hash).order_by(_T.c.seq.desc()).limit(1)
_INSERT = insert(_T)
_HEAD_KEY = "evidock.audit.head"


class Recorder(Protocol):
    """Appends one event durably in a transaction of its own (see :mod:`.group`)."""

    def record(self, event: EventSpec) -> Appended: ...


class AuditLog:
    def __init__(self, *, catalog: Catalog, signer: HeadSigner | None = None,
                 committer: Recorder | None = None) -> None:
        self.catalog = catalog
        self.signer = signer
        # With a committer (the station service), record() events that write nothing
        # else are committed together with other callers' events (group commit).
        self.committer = committer

    def append(self, session: Session, *, actor: str, action: str, subjects: Sequence[str],
               details: Mapping[str, Any], at: datetime) -> Appended:
        """Add one event inside the caller's (write) transaction; it commits with it."""
        (out,) = self.append_many(session, [EventSpec(actor, action, subjects, details, at)])
        if isinstance(out, AuditError):
            raise out
        return out

    def append_many(self, session: Session, events: Sequence[EventSpec],
                    ) -> list[Appended | AuditError]:
        """Append ``events`` in order inside the caller's (write) transaction, in one
        statement. An event that is not valid gets its AuditError in its place and no
        sequence number; the others chain on. A failed INSERT raises (nothing added)."""
        conn = session.connection()
        out = chain(conn, _T, events, *self._next(session, conn))
        added = [a for a in out if isinstance(a, Appended)]
        if added:
            # Later appends in this same transaction chain on without re-reading the
            # head: nobody else can append while we hold the write lock.
            session.info[_HEAD_KEY] = (_innermost(session), added[-1].seq,
                                       added[-1].leaf_hash)
        return out

    def append_batch(self, conn: Connection, events: Sequence[EventSpec],
                     ) -> list[Appended | AuditError]:
        """:meth:`append_many` on a Core connection in a write transaction (no ORM
        session: the group committer's transactions write nothing else)."""
        self._lock(conn)
        last = conn.execute(_LAST).first()
        seq, prev = (0, GENESIS) if last is None else (int(last[0]) + 1, str(last[1]))
        return chain(conn, _T, events, seq, prev)

    def _next(self, session: Session, conn: Connection) -> tuple[int, str]:
        """Sequence number and prev hash for the next event (takes the append lock)."""
        cached = session.info.get(_HEAD_KEY)
        if cached is not None and cached[0] is _innermost(session):
            return int(cached[1]) + 1, str(cached[2])
        self._lock(conn)
        last = conn.execute(_LAST).first()
        return (0, GENESIS) if last is None else (int(last[0]) + 1, str(last[1]))

    def lock(self, session: Session) -> None:
        """Take the append lock now, until ``session``'s write transaction ends. Every
        audited write holds it when it commits (its event is appended in its own
        transaction), so what this transaction reads afterwards no audited write can
        change before it commits (on SQLite the write transaction already ensures that)."""
        self._lock(session.connection())

    def _lock(self, conn: Connection) -> None:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        elif dialect == "sqlite" and not conn.get_execution_options().get(WRITE_OPTION):
            raise AuditError("audit events must be appended in a write transaction "
                             "(Catalog.transaction()), or concurrent writers could collide")

    def record(self, *, actor: str, action: str, subjects: Sequence[str],
               details: Mapping[str, Any], at: datetime) -> Appended:
        """Append in a transaction of its own (for actions that write nothing else);
        the event is committed when this returns."""
        event = EventSpec(actor, action, subjects, details, at)
        if self.committer is not None:
            return self.committer.record(event)
        with self.catalog.transaction() as s:
            return self.append(s, actor=actor, action=action, subjects=subjects,
                               details=details, at=at)

    # ------------------------------------------------------------------ reading

    def size(self) -> int:
        with self.catalog.engine.connect() as conn:
            last = conn.execute(_LAST).first()
        return 0 if last is None else int(last[0]) + 1

    def event(self, seq: int) -> AuditEvent | None:
        with Session(self.catalog.engine) as s:
            return s.get(AuditEvent, seq)

    def _leaves(self, conn: Connection, size: int) -> Iterator[bytes]:
        """Stored leaf hashes of events [0, size), streamed; refuses a log with gaps."""
        rows = conn.execution_options(stream_results=True, max_row_buffer=10_000).execute(
            select(_T.c.seq, _T.c.leaf_hash).where(_T.c.seq < size).order_by(_T.c.seq))
        for expected, (seq, leaf) in enumerate(rows):
            if seq != expected:
                raise AuditError("the audit log has gaps; run `evidock audit verify`",
                                 missing=expected)
            yield bytes.fromhex(leaf)

    def export(self, start: int, limit: int) -> list[dict[str, Any]]:
        """Events [start, start + limit) as stored (times as ISO text): what a station
        pushes to its center, which recomputes every leaf from them."""
        with self.catalog.engine.connect() as conn:
            rows = conn.execute(select(_T).where(_T.c.seq >= start).order_by(_T.c.seq)
                                .limit(limit))
            return [{"seq": r.seq, "at": iso(r.at), "actor": r.actor, "action": r.action,
                     "subjects": r.subjects, "details": r.details, "prev_hash": r.prev_hash,
                     "leaf_hash": r.leaf_hash} for r in rows]

    def heads(self) -> list[tuple[int, SignedHead]]:
        """Every stored head with its row id, oldest first."""
        with self.catalog.engine.connect() as conn:
            return [(int(r.id), head_of(r)) for r in conn.execute(
                select(_H).order_by(_H.c.id))]

    def latest_head(self) -> SignedHead | None:
        with self.catalog.engine.connect() as conn:
            row = conn.execute(select(_H).order_by(_H.c.id.desc()).limit(1)).first()
        return None if row is None else head_of(row)

    def prove(self, seq: int, *, tree_size: int | None = None) -> dict[str, Any]:
        """Inclusion proof of event ``seq`` (O(log n) hashes), against the latest signed
        head covering it unless ``tree_size`` is given. One streaming pass over the leaf
        hashes, O(log n) memory. Checked offline by ``audit_verify.check_proof``."""
        head = self.latest_head()
        size = tree_size if tree_size is not None else (
            head.size if head is not None and head.size > seq else self.size())
        event = self.event(seq)
        if event is None or not 0 <= seq < size:
            raise AuditError(f"no audit event {seq} in a log of {size}", seq=seq, size=size)
        with self.catalog.engine.connect() as conn:
            try:
                proof, root = prove_inclusion(self._leaves(conn, size), seq, size)
            except ProofInvalid as exc:
                raise AuditError(f"cannot prove event {seq}: {exc.message}") from exc
        signed = next((h for _, h in reversed(self.heads()) if h.size == size), None)
        return {"seq": seq, "event": event.body(), "leaf_hash": event.leaf_hash,
                "root": root.hex(), "proof": proof.to_dict(),
                "head": signed.to_dict() if signed is not None else None}

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """RFC 6962 consistency proof that the log at ``old_size`` is a prefix of it at
        ``new_size`` (default: now)."""
        size = self.size() if new_size is None else new_size
        if not 0 <= old_size <= size:
            raise AuditError("old size must be between 0 and the new size",
                             old_size=old_size, new_size=size)
        with self.catalog.engine.connect() as conn:
            try:
                proof, old_root, new_root = prove_consistency(self._leaves(conn, size),
                                                              old_size, size)
            except ProofInvalid as exc:
                raise AuditError(f"cannot prove consistency: {exc.message}") from exc
        return {"old_size": old_size, "new_size": size, "old_root": old_root.hex(),
                "new_root": new_root.hex(), "proof": proof.to_dict()}

    # ------------------------------------------------------------------ signing

    def sign_head(self, *, at: datetime) -> SignedHead:
        """Sign and store a head over every event now in the log."""
        if self.signer is None:
            raise AuditError("no signing key configured for tree heads")
        with self.catalog.transaction() as s:
            conn = s.connection()
            self._lock(conn)
            acc = self._frontier(conn)
            rows = conn.execute(select(_T.c.seq, _T.c.leaf_hash).where(_T.c.seq >= acc.size)
                                .order_by(_T.c.seq)).all()
            if rows and rows[-1][0] != acc.size + len(rows) - 1:
                raise AuditError("the audit log has gaps; run `evidock audit verify`",
                                 since=acc.size)
            acc = acc.extend(bytes.fromhex(r[1]) for r in rows)
            head = self.signer.sign(size=acc.size, root=acc.root(), at=at)
            made = conn.execute(insert(_H), {**head.to_dict(), "time": at,
                                             "frontier": [h.hex() for h in acc.frontier]})
            # Queued with the head: a trusted time for the signed head as published.
            row_id = made.inserted_primary_key[0] if made.inserted_primary_key else None
            enqueue(conn, kind=TREE_HEAD, subject=str(row_id),
                    claimed_at=at, at=at,
                    sha256=sha256(canonical_bytes(head.to_dict())).hexdigest())
        return head

    def _frontier(self, conn: Connection) -> MerkleAccumulator:
        """The latest head's frontier, trusted only if its signature and root agree."""
        row = conn.execute(select(_H).order_by(_H.c.id.desc()).limit(1)).first()
        if row is None:
            return MerkleAccumulator()
        head = head_of(row)
        assert self.signer is not None
        bad = head.check(self.signer.keyring(), f"head:{row.id}")
        try:
            acc = MerkleAccumulator(row.size, tuple(bytes.fromhex(h) for h in row.frontier))
        except (ValueError, ProofInvalid):
            acc = None
        if bad or acc is None or acc.root().hex() != head.root:
            raise AuditError("the latest tree head does not check out; run "
                             "`evidock audit verify`", head=row.id)
        return acc

    def current_head(self, *, at: datetime) -> SignedHead:
        """The latest signed head if it covers the whole log, else a new one signed."""
        latest = self.latest_head()
        if latest is not None and latest.size == self.size():
            return latest
        return self.sign_head(at=at)

    def checkpoint(self, *, at: datetime, every: timedelta | None = None,
                   ) -> SignedHead | None:
        """Sign a head if the log grew since the last one (and, given ``every``, the last
        is at least that old). Call periodically and on shutdown. None when nothing was
        signed, or no station key exists yet."""
        if self.signer is None or not self.signer.available():
            return None
        last = self.latest_head()
        if last is not None and (last.size >= self.size() or
                                 (every is not None and at - last.time < every)):
            return None
        return self.sign_head(at=at)


def _innermost(session: Session) -> object:
    # A savepoint rolled back after our append must not leave a stale cached head.
    return session.get_nested_transaction() or session.get_transaction()


def refuse(audit: AuditLog, *, verb: str, target: str, actor: str, at: datetime) -> Refused:
    """Record an attempt to do what evidock never does to evidence (delete, edit, ...)
    as a refused action, and return the error to show. The event is committed first."""
    event = audit.record(actor=actor, action=f"evidence.{verb}", subjects=[target],
                         details={"outcome": "refused", "code": Refused.code, "verb": verb},
                         at=at)
    return Refused(f"`{verb}` refused: evidock never deletes or edits evidence; the "
                   f"attempt was recorded as audit event {event.seq}",
                   verb=verb, target=target, audit_seq=event.seq)
