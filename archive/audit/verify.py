"""Recompute the whole audit log and report every inconsistency, cheapest checks first.

1. every tree head (stored, or saved elsewhere and handed in): key known
   (``E_KEY_UNKNOWN``), signature valid (``E_SIGNATURE_INVALID``);
2. a head covering more events than the log holds: ``E_AUDIT_TRUNCATED``;
3. one streaming pass in sequence order: a missing sequence number (``E_AUDIT_GAP``), an
   event whose fields no longer hash to its leaf hash (``E_AUDIT_EVENT_CHANGED``), an
   event whose ``prev`` is not the leaf hash of the event before it (a broken link);
4. broken links are classified by where the chain really leads: to an event stored
   elsewhere in the log while that neighbour has its own successor (``E_AUDIT_ORDER``:
   events were moved), or to nothing / past an event nothing chains to
   (``E_AUDIT_CHAIN_BROKEN``: an event was inserted, or its predecessor removed/forged);
5. the Merkle root of the events as they are now, at each head's size, against the
   head's signed root (``E_AUDIT_ROOT_MISMATCH``).

Memory is O(log n) plus the findings; rows are read raw (no ORM) so that a row an
attacker filled with garbage is reported, not fatal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import blake3
from sqlalchemy.engine import Connection, Engine

from archive.audit.log import (
    GENESIS,
    SignedHead,
    TreeHead,
    encode,
    encode_fast,
    head_of,
    iso,
    leaf_hex,
)
from archive.catalog.types import table_of
from integrity.codes import Code
from integrity.errors import AuditError, EvidockError
from integrity.findings import Finding
from integrity.keys import Keyring
from integrity.merkle import InclusionProof, MerkleAccumulator, verify_inclusion

E_AUDIT_EVENT_CHANGED = Code.E_AUDIT_EVENT_CHANGED
E_AUDIT_GAP = Code.E_AUDIT_GAP
E_AUDIT_CHAIN_BROKEN = Code.E_AUDIT_CHAIN_BROKEN
E_AUDIT_ORDER = Code.E_AUDIT_ORDER
E_AUDIT_TRUNCATED = Code.E_AUDIT_TRUNCATED
E_AUDIT_ROOT_MISMATCH = Code.E_AUDIT_ROOT_MISMATCH
_FLUSH = 8192
_ROWS = ("SELECT seq, at, actor, action, subjects, details, prev_hash, leaf_hash "
         "FROM auditevent ORDER BY seq")


@dataclass(frozen=True)
class AuditReport:
    events: int
    heads: int
    findings: tuple[Finding, ...]
    #: catalog rows compared with their signed records (archive/sealcheck.py), if done
    recordings: int | None = None
    sessions: int | None = None
    #: authority-bearing rows compared with their audit events (archive/bindings.py)
    authority: int | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        rows = {} if self.recordings is None else {"recordings": self.recordings,
                                                   "sessions": self.sessions,
                                                   "authority_rows": self.authority}
        return {"ok": self.ok, "events": self.events, "heads": self.heads, **rows,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass(frozen=True)
class _Break:
    seq: int          # the event whose prev does not match
    prev: str         # what it chains to
    before_seq: int   # the event stored just before it
    before_leaf: str  # that event's stored leaf hash


@dataclass
class _Scan:
    snapshot_at: set[int]
    length: int = 0
    findings: list[Finding] = field(default_factory=list)
    breaks: list[_Break] = field(default_factory=list)
    roots: dict[int, str] = field(default_factory=dict)


def verify_log(engine: Engine, *, keyring: Keyring | None,
               saved: Sequence[SignedHead] = (),
               sealed: Sequence[tuple[str, SignedHead]] = ()) -> AuditReport:
    """``sealed``: heads kept outside the catalog (in session records in the store),
    with the subject to report them under."""
    with engine.connect() as conn:  # one read transaction: one consistent snapshot
        heads = _stored_heads(conn) + [(f"saved:{i}", h) for i, h in enumerate(saved)] \
            + list(sealed)
        findings = [f for subject, h in heads for f in h.check(keyring, subject)]
        last = conn.exec_driver_sql("SELECT max(seq) FROM auditevent").scalar()
        length = 0 if last is None else int(last) + 1
        findings += [
            Finding(E_AUDIT_TRUNCATED, f"head covers {h.size} events, the log ends at "
                    f"{length}: events were removed from the end", subject,
                    {"head_size": h.size, "log_size": length})
            for subject, h in heads if h.size > length]
        scan = _scan(conn, {h.size for _, h in heads})
        findings += scan.findings
        findings += _classify(conn, scan.breaks)
    for subject, h in heads:
        root = scan.roots.get(h.size)  # None: gaps left fewer than h.size events
        if h.size <= length and root != h.root:
            findings.append(Finding(
                E_AUDIT_ROOT_MISMATCH, f"the first {h.size} events no longer hash to the "
                "root this head signed", subject,
                {"size": h.size, "signed_root": h.root, "computed_root": root}))
    return AuditReport(scan.length, len(heads), tuple(findings))


def _stored_heads(conn: Connection) -> list[tuple[str, SignedHead]]:
    table = table_of(TreeHead)
    rows = conn.execute(table.select().order_by(table.c.id)).all()
    return [(f"head:{r.id}", head_of(r)) for r in rows]


def _when(raw: object) -> datetime:
    at = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _recompute(row: Sequence[Any]) -> bytes | None:
    """The leaf hash the row's fields give, by the book: parse, re-encode (JCS), hash.
    None if the fields are not an event at all."""
    _seq, at, actor, action, subjects, details, prev, _leaf = row
    try:
        body = {"v": 1, "at": iso(_when(at)), "actor": actor, "action": action,
                "subjects": json.loads(subjects), "details": json.loads(details),
                "prev": prev}
        return bytes.fromhex(leaf_hex(encode_fast(body)))
    except (ValueError, TypeError, EvidockError):
        return None


# SQLAlchemy's SQLite DATETIME text; the microseconds are left out when they are 0.
_SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{6})?")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_str_json = json.JSONEncoder(ensure_ascii=False).encode


def _fast_leaf(row: Sequence[Any]) -> bytes | None:
    """The leaf hash of the row's stored JSON text as it is, without re-encoding it.

    ``subjects`` and ``details`` are stored as the sorted, compact dump the event was
    hashed from, so the leaf data is their concatenation with the other fields in JCS
    key order. Only a cheap check that each part is well-formed (prev is hex, the time
    has the stored format, the JSON columns parse) so that the parts are exactly the
    fields the bytes mean; anything else (and any mismatch) goes to :func:`_recompute`.
    """
    _seq, at, actor, action, subjects, details, prev, _leaf = row
    if type(at) is str and _SQLITE_TIME.fullmatch(at):
        when = f"{at[:10]}T{at[11:]}Z" if len(at) == 26 else f"{at[:10]}T{at[11:]}.000000Z"
    elif isinstance(at, datetime):
        when = iso(_when(at))
    else:
        return None
    if type(prev) is not str or not _HEX64.fullmatch(prev):
        return None
    try:
        json.loads(subjects)
        json.loads(details)
        data = (f'{{"action":{_str_json(action)},"actor":{_str_json(actor)},"at":"{when}",'
                f'"details":{details},"prev":"{prev}","subjects":{subjects},"v":1}}'
                ).encode()
    except (ValueError, TypeError):
        return None
    return blake3.blake3(b"\x00" + data).digest()


def _rows(conn: Connection) -> Iterator[Sequence[Any]]:
    """Every event row, in sequence order, streamed; raw DB-API values."""
    raw = conn.connection.dbapi_connection
    if conn.dialect.driver == "pysqlite" and raw is not None:
        cursor = raw.cursor()
        cursor.arraysize = 10_000
        try:
            cursor.execute(_ROWS)
            while batch := cursor.fetchmany():
                yield from batch
        finally:
            cursor.close()
        return
    yield from conn.execution_options(stream_results=True, max_row_buffer=10_000) \
        .exec_driver_sql(_ROWS)


def _scan(conn: Connection, sizes: set[int]) -> _Scan:
    scan = _Scan(snapshot_at={s for s in sizes if s >= 0})
    acc, pending = MerkleAccumulator(), []
    if 0 in scan.snapshot_at:
        scan.roots[0] = acc.root().hex()
    before_seq, before_leaf = -1, GENESIS
    for row in _rows(conn):
        seq, prev, leaf = int(row[0]), row[6], row[7]
        if seq != before_seq + 1:
            scan.findings.append(Finding(
                E_AUDIT_GAP, f"events {before_seq + 1}..{seq - 1} are missing",
                f"seq:{before_seq + 1}", {"first_missing": before_seq + 1,
                                          "last_missing": seq - 1}))
        elif prev != before_leaf:
            scan.breaks.append(_Break(seq, str(prev), before_seq, before_leaf))
        computed = _fast_leaf(row)
        if computed is None or computed.hex() != leaf:
            computed = _recompute(row)
            if computed is None or computed.hex() != leaf:
                scan.findings.append(Finding(
                    E_AUDIT_EVENT_CHANGED, "the event's fields do not hash to its leaf "
                    "hash: it was changed after it was logged", f"seq:{seq}",
                    {"stored_leaf": leaf, "computed_leaf": computed.hex() if computed
                     else None}))
        pending.append(computed or bytes(32))
        before_seq, before_leaf = seq, str(leaf)
        if len(pending) >= _FLUSH or acc.size + len(pending) in scan.snapshot_at:
            acc, pending = acc.extend(pending), []
            if acc.size in scan.snapshot_at:
                scan.roots[acc.size] = acc.root().hex()
    scan.length = acc.extend(pending).size
    return scan


def _classify(conn: Connection, breaks: list[_Break]) -> list[Finding]:
    """Second pass, only over a broken chain: where does each broken link lead?"""
    if not breaks:
        return []
    want_leaf = {b.prev for b in breaks}
    want_succ = {b.before_leaf for b in breaks}
    leaf_at: dict[str, int] = {}
    successors: dict[str, list[int]] = {}
    rows = conn.execution_options(stream_results=True, max_row_buffer=10_000)
    for seq, prev, leaf in rows.exec_driver_sql(
            "SELECT seq, prev_hash, leaf_hash FROM auditevent"):
        if leaf in want_leaf:
            leaf_at[leaf] = int(seq)
        if prev in want_succ:
            successors.setdefault(prev, []).append(int(seq))
    return [_judge(b, leaf_at.get(b.prev), successors.get(b.before_leaf, []))
            for b in breaks]


def _judge(b: _Break, points_to: int | None, successors_of_before: list[int]) -> Finding:
    details = {"prev": b.prev, "expected_prev": b.before_leaf, "chains_to": points_to}
    if points_to is None:
        return Finding(E_AUDIT_CHAIN_BROKEN, f"event {b.seq} chains to no event in the log: "
                       "its predecessor was removed or altered, or it was inserted",
                       f"seq:{b.seq}", details)
    if any(k != b.seq for k in successors_of_before):
        return Finding(E_AUDIT_ORDER, f"event {b.seq} chains to event {points_to}, not to "
                       f"event {b.before_seq} stored before it: events were reordered",
                       f"seq:{b.seq}", details)
    return Finding(E_AUDIT_CHAIN_BROKEN, f"event {b.seq} chains past event {b.before_seq}, "
                   f"which nothing chains to: event {b.before_seq} was inserted",
                   f"seq:{b.before_seq}", details)


def check_proof(doc: dict[str, Any], keyring: Keyring | None) -> list[Finding]:
    """Check an ``evidock audit proof`` document offline: the event hashes to the leaf,
    the path leads to the root, and (if present) a valid signed head vouches for it."""
    subject = f"seq:{doc.get('seq')}"
    try:
        leaf = bytes.fromhex(leaf_hex(encode(doc["event"])))
        proof = InclusionProof.from_dict(doc["proof"])
        verify_inclusion(leaf, proof, bytes.fromhex(doc["root"]))
    except EvidockError as exc:
        return [Finding.from_error(exc, subject)]
    except (KeyError, TypeError, ValueError) as exc:
        return [Finding(Code.E_PROOF_INVALID, f"malformed proof document: {exc}", subject)]
    if doc.get("head") is None:
        return []
    head = SignedHead.from_dict(doc["head"])
    findings = head.check(keyring, "head")
    if (head.size, head.root) != (proof.tree_size, doc["root"]):
        findings.append(Finding(E_AUDIT_ROOT_MISMATCH, "the head is for another tree",
                                "head", {"size": head.size, "tree_size": proof.tree_size}))
    return findings


def load_heads(texts: Iterable[bytes]) -> list[SignedHead]:
    """Parse saved head files (the JSON `evidock audit head` printed)."""
    out = []
    for data in texts:
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise AuditError(f"saved tree head is not JSON: {exc}") from exc
        out.append(SignedHead.from_dict(obj))
    return out
