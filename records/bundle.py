"""The audit bundle written into every export package (checked by integrity/bundle.py).

For one item: every audit event naming its recording (by ``recording:ID`` or, as the
offload names it, its bare id), its export request and the request's case, up to a
tree head signed for the run; each with its inclusion proof against that head. An event
naming a case the requester may not see (unit, clearance) is a hidden leaf: sequence
number, leaf hash and proof, nothing of what it says. The station signs the index (every
entry's number and leaf hash, and the head), so a removed event is named offline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from archive.audit.format import SignedHead
from archive.audit.log import AuditEvent, AuditLog
from archive.audit.proofs import prove_many, stored_leaves
from archive.audit.query import EventQuery, find_events
from archive.keystore import StationKeys
from integrity import bundle
from integrity.errors import AuditError, EvidockError
from integrity.keys import sign
from records.casebook import Casebook
from records.models import ExportRequest
from records.permissions import Actor, Gate

_PAGE = 1000


class Bundler:
    def __init__(self, *, audit: AuditLog, keys: StationKeys, gate: Gate, book: Casebook,
                 clock: Callable[[], datetime]) -> None:
        self.audit, self.keys, self.gate, self.book = audit, keys, gate, book
        self.clock = clock
        self._heads: dict[str | None, SignedHead] = {}  # one signed head per run

    def __call__(self, recording_id: str, request_id: str | None) -> bytes:
        about, requester = self._about(recording_id, request_id)
        head = self._head(request_id)
        events = self._events(about, head.size)
        with self.audit.catalog.engine.connect() as conn:
            proofs, root = prove_many(stored_leaves(conn, head.size), [e.seq for e in events],
                                      head.size)
        if root.hex() != head.root:
            raise AuditError("the log no longer hashes to the head just signed; run "
                             "`evidock audit verify`", size=head.size)
        governing = self.book.governing_each([e.subjects for e in events])
        entries = [_entry(e, proofs[e.seq].to_dict(), requester is not None and
                          requester.sees_every(cases))
                   for e, cases in zip(events, governing, strict=True)]
        return _document(about, requester, head, entries, self.keys)

    def _about(self, recording_id: str, request_id: str | None,
               ) -> tuple[list[str], Actor | None]:
        about = [f"recording:{recording_id}", recording_id]
        if request_id is None:
            return about, None
        with Session(self.audit.catalog.engine) as s:
            request = s.get(ExportRequest, request_id)
        if request is None:
            return about, None
        about.append(f"export-request:{request_id}")
        if request.case_id is not None:
            about.append(f"case:{request.case_id}")
        try:
            return about, self.gate.by_name(request.requested_by)
        except EvidockError:  # no longer a user: they see nothing hidden
            return about, None

    def _head(self, request_id: str | None) -> SignedHead:
        if request_id not in self._heads:
            self._heads[request_id] = self.audit.sign_head(at=self.clock())
        return self._heads[request_id]

    def _events(self, about: list[str], size: int) -> list[AuditEvent]:
        seqs: set[int] = set()
        for subject in about:
            after: int | None = None
            while True:
                page = find_events(self.audit.catalog.engine,
                                   EventQuery(subject=subject, after=after, limit=_PAGE))
                seqs.update(int(e["seq"]) for e in page.events if int(e["seq"]) < size)
                if page.next_after is None or page.next_after >= size:
                    break
                after = page.next_after
        with Session(self.audit.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(col(AuditEvent.seq).in_(seqs))
                               .order_by(col(AuditEvent.seq))))


def _entry(event: AuditEvent, proof: dict[str, Any], shown: bool) -> dict[str, Any]:
    if not shown:
        return {"seq": event.seq, "hidden": True, "leaf_hash": event.leaf_hash,
                "proof": proof}
    return {"seq": event.seq, "leaf_hash": event.leaf_hash, "event": event.body(),
            "proof": proof}


def _document(about: list[str], requester: Actor | None, head: SignedHead,
              entries: list[dict[str, Any]], keys: StationKeys) -> bytes:
    key = keys.load()
    signed = head.to_dict()
    leaves = [[e["seq"], e["leaf_hash"]] for e in entries]
    signature = sign(key, bundle.index_bytes(about=about, head=signed, leaves=leaves))
    doc = {"format": bundle.FORMAT, "about": about,
           "requester": requester.name if requester else None, "head": signed,
           "index": {"head": {"size": head.size, "root": head.root}, "leaves": leaves,
                     "key_id": key.key_id, "signature": signature.hex()},
           "hidden": sum(1 for e in entries if e.get("hidden")), "events": entries}
    return json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True).encode() + b"\n"


__all__ = ["Bundler"]
