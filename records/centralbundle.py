"""The audit bundle of a center package, built from the center's mirror of the station.

A station's package carries its own log's events about the recording, proven against a
head the station signed (:mod:`records.bundle`). The center holds the same events (the
mirror keeps each as the station logged it, :mod:`archive.witness.mirror`) and the
station's signed heads it countersigned (:mod:`archive.witness.book`), so it builds the
same bundle: the mirrored events naming the recording, each with an RFC 6962 inclusion
proof against the newest station-signed head the center witnessed and mirrors in full.
``evidock verify`` checks it as a station's, the head with the station's key; only the
index (which events the bundle holds) is the center's statement, signed with its key.

The bundle holds one log and one head: the center's own ``center.export.*`` events are in
another log with other heads and are not carried (the format has no second log).

Refused (``E_AUDIT``, no package) when the mirror lacks what the package rests on: the
``ingest.file`` event of the original and the ``rendition.make`` event naming the
exported manifest, each below the witnessed head; or when a mirrored row no longer
hashes to its leaf, or the leaves no longer to the head.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, or_, select, type_coerce
from sqlmodel import Session

from archive.audit.format import event_body
from archive.audit.proofs import prove_many
from archive.catalog import Catalog
from archive.catalog.types import table_of
from archive.keystore import StationKeys
from archive.witness.book import WitnessBook
from archive.witness.cosign import Cosigned
from archive.witness.index import CentralCase
from archive.witness.mirror import Mirror, StationEvent
from integrity import bundle
from integrity.errors import AuditError, EvidockError
from integrity.keys import sign
from records.centralexport_models import CentralExportRequest
from records.permissions import Actor

_E, _C = table_of(StationEvent), table_of(CentralCase)


@dataclass(frozen=True)
class Needed:
    """What the package rests on: the original's BLAKE3 and the manifest exported."""

    original: str
    manifest: str


class CenterBundler:
    """``(recording id, center request id) → data/audit-bundle.json`` for one station."""

    def __init__(self, *, catalog: Catalog, book: WitnessBook, keys: StationKeys,
                 station: str, needed: Needed, by_name: Callable[[str], Actor]) -> None:
        self.catalog, self.book, self.keys, self.station = catalog, book, keys, station
        self.needed, self.by_name = needed, by_name
        self.mirror = Mirror(catalog=catalog)

    def __call__(self, recording_id: str, request_id: str | None) -> bytes:
        witnessed = self._witnessed()
        head = witnessed.head
        about = [f"recording:{recording_id}", recording_id]
        rows = self._rows(about, head.size)
        self._require_needed(rows, recording_id, head.size)
        proofs, root = prove_many(self.mirror.leaves(self.station, head.size),
                                  [r.seq for r in rows], head.size)
        if root.hex() != head.root:
            raise AuditError(f"the center's mirror of {self.station} no longer hashes to "
                             "the head it countersigned", station=self.station, size=head.size)
        requester = self._requester(request_id)
        hidden = self._hidden_cases(rows, requester)
        entries = [_entry(r, proofs[r.seq].to_dict(), shown=not hidden & _cases(r))
                   for r in rows]
        return self._document(about, requester, witnessed, entries)

    def _witnessed(self) -> Cosigned:
        """The newest head the center countersigned over events it holds every one of."""
        held = self.mirror.next_seq(self.station)
        for cosigned in reversed(self.book.witnessed(self.station)):
            if cosigned.head.size <= held:
                return cosigned
        raise AuditError(f"the center has witnessed no head of {self.station} over the "
                         "events it mirrors; push the station's log (`evidock witness "
                         "push`) and run the export again", station=self.station)

    def _rows(self, about: Sequence[str], size: int) -> list[Any]:
        text = type_coerce(_E.c.subjects, Text)
        query = select(_E).where(_E.c.station_id == self.station, _E.c.seq < size, or_(
            *(text.contains(json.dumps(s, ensure_ascii=False), autoescape=True)
              for s in about))).order_by(_E.c.seq)
        with self.catalog.engine.connect() as conn:
            rows = [r for r in conn.execute(query) if set(about) & set(r.subjects)]
        for r in rows:  # a mirrored row changed behind evidock's back is not bundled
            if bundle.event_leaf(_body(r)) != r.leaf_hash:
                raise AuditError(f"mirrored event {r.seq} of {self.station} no longer "
                                 "hashes to its leaf; run `evidock audit verify`",
                                 station=self.station, seq=r.seq)
        return rows

    def _require_needed(self, rows: Sequence[Any], recording_id: str, size: int) -> None:
        have = {(r.action, r.details.get("blake3") if r.action == "ingest.file"
                 else r.details.get("manifest")) for r in rows}
        for action, b3 in (("ingest.file", self.needed.original),
                           ("rendition.make", self.needed.manifest)):
            if (action, b3) not in have:
                raise AuditError(
                    f"the center's mirror of {self.station} holds no {action} event for "
                    f"{b3} of recording {recording_id} below the head it witnessed "
                    f"(size {size}): the package's audit bundle would not prove it; push "
                    "the station's log and run the export again", station=self.station,
                    recording=recording_id, action=action, blake3=b3, size=size)

    def _requester(self, request_id: str | None) -> Actor | None:
        if request_id is None:
            return None
        with Session(self.catalog.engine) as s:
            request = s.get(CentralExportRequest, request_id)
        if request is None:
            return None
        try:
            return self.by_name(request.requested_by)
        except EvidockError:  # no longer a user: they see nothing hidden
            return None

    def _hidden_cases(self, rows: Sequence[Any], requester: Actor | None) -> set[str]:
        """The cases named by the events that the requester may not see (as the center's
        index labels them; a case it does not know is hidden)."""
        named = {c for r in rows for c in _cases(r)}
        if not named:
            return set()
        with self.catalog.engine.connect() as conn:
            known = {f"case:{c.case_id}": c for c in conn.execute(select(_C).where(
                _C.c.station_id == self.station,
                _C.c.case_id.in_([n.removeprefix("case:") for n in named])))}
        return {n for n in named if requester is None or n not in known
                or not requester.sees(unit=known[n].unit, sensitivity=known[n].sensitivity)}

    def _document(self, about: list[str], requester: Actor | None, witnessed: Cosigned,
                  entries: list[dict[str, Any]]) -> bytes:
        key = self.keys.load()
        head = witnessed.head.to_dict()
        leaves = [[e["seq"], e["leaf_hash"]] for e in entries]
        signature = sign(key, bundle.index_bytes(about=about, head=head, leaves=leaves))
        doc = {"format": bundle.FORMAT, "about": about,
               "requester": requester.name if requester else None, "head": head,
               "index": {"head": {"size": head["size"], "root": head["root"]},
                         "leaves": leaves, "key_id": key.key_id, "signature": signature.hex()},
               "witnessed": witnessed.to_dict(),  # the center's countersignature, for reference
               "hidden": sum(1 for e in entries if e.get("hidden")), "events": entries}
        return json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True).encode() + b"\n"


def _body(row: Any) -> dict[str, Any]:
    return event_body(at=row.at, actor=row.actor, action=row.action,
                      subjects=row.subjects, details=row.details, prev=row.prev_hash)


def _cases(row: Any) -> set[str]:
    return {s for s in row.subjects if isinstance(s, str) and s.startswith("case:")}


def _entry(row: Any, proof: dict[str, Any], *, shown: bool) -> dict[str, Any]:
    if not shown:
        return {"seq": row.seq, "hidden": True, "leaf_hash": row.leaf_hash, "proof": proof}
    return {"seq": row.seq, "leaf_hash": row.leaf_hash, "event": _body(row), "proof": proof}


__all__ = ["CenterBundler", "Needed"]
