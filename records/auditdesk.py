"""The audit log and fixity as people ask for them, through the one gate.

Every read of the log (its signed head, an inclusion or consistency proof, a list of
events, a verification) needs ``audit.view`` and is itself an audit event with the
actor: the log says who looked at the log. A fixity run is an operator's act and needs
the same permission (its run and findings are audit events of their own). Restoring a
damaged blob from its verified WORM copy needs ``fixity.repair`` (the admin's); each
repair asked for is an audit event (archive/replica/repair.py). A refused
verb (delete/edit/rm of evidence) is recorded with the identified user before the error
is shown.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from archive.audit.format import SignedHead, parse_iso
from archive.audit.log import AuditLog, refuse
from archive.audit.query import EventQuery, find_events
from archive.audit.verify import load_heads
from archive.fixity import Fixity, FixityPlan, FixityReport
from archive.keystore import StationKeys
from archive.replica.objectstore import ObjectStore
from archive.replica.repair import REPAIRABLE, Repairer, RepairReport
from archive.sealcheck import verify_catalog
from archive.store import ContentStore
from archive.witness.book import WitnessBook
from integrity.errors import KeyError_, NotFound
from integrity.keys import Keyring
from records.casebook import Casebook
from records.permissions import Actor, Gate, P

#: What evidock never does to evidence; asking is refused and audited.
REFUSED_VERBS = ("delete", "edit", "rm")
_LOG = "audit-log"


class AuditDesk:
    def __init__(self, *, gate: Gate, audit: AuditLog, store: ContentStore,
                 keys: StationKeys, clock: Callable[[], datetime]) -> None:
        self.gate, self.audit, self.store, self.keys = gate, audit, store, keys
        self.clock = clock
        self.book = Casebook(catalog=audit.catalog)

    def _require(self, actor: Actor, subjects: Sequence[str] = (_LOG,)) -> None:
        self.gate.require(actor, P.AUDIT_VIEW, subjects=subjects)

    def head(self, actor: Actor) -> dict[str, Any]:
        """The signed head over the whole log, this read included (signed if need be)."""
        self._require(actor)
        self.gate.read(actor, "audit.head", [_LOG])
        return self.audit.current_head(at=self.clock()).to_dict()

    def proof(self, actor: Actor, seq: int, *, size: int | None = None) -> dict[str, Any]:
        """An inclusion proof of event ``seq`` (the event itself is in it)."""
        self._require(actor, [f"audit:{seq}"])
        event = self.audit.event(seq)
        if event is None:  # asked for, not broken: the log's own error is for damage
            raise NotFound(f"no audit event {seq}", seq=seq)
        if not actor.sees_every(self.book.governing(event.subjects)):
            self.gate.refuse(actor, P.AUDIT_VIEW, [f"audit:{seq}"],
                             f"{actor.name} may not see the records audit event {seq} "
                             "names (a case or recording beyond their units or clearance)")
        doc = self.audit.prove(seq, tree_size=size)
        self.gate.read(actor, "audit.proof", [f"audit:{seq}"],
                       {"tree_size": doc["proof"]["tree_size"]})
        return doc

    def consistency(self, actor: Actor, old: int, new: int | None = None,
                    ) -> dict[str, Any]:
        self._require(actor)
        doc = self.audit.consistency(old, new)
        self.gate.read(actor, "audit.consistency", [_LOG],
                       {"old_size": doc["old_size"], "new_size": doc["new_size"]})
        return doc

    def events(self, actor: Actor, /, **filters: Any) -> dict[str, Any]:
        """One page of events (:class:`EventQuery` filters and paging, evaluated by the
        database)."""
        self._require(actor)
        query = EventQuery(**filters)
        page = find_events(self.audit.catalog.engine, query)
        governing = self.book.governing_each([e["subjects"] for e in page.events])
        shown = [e if actor.sees_every(cases) else hidden_event(e)
                 for e, cases in zip(page.events, governing, strict=True)]
        hidden = sum(1 for e in shown if e.get("hidden"))
        self.gate.read(actor, "audit.events", [_LOG],
                       {**query.to_dict(), "returned": len(page.events), "hidden": hidden})
        return {**page.to_dict(), "events": shown, "hidden": hidden,
                "filters": query.to_dict()}

    def verify(self, actor: Actor, *, saved: Sequence[str] = ()) -> dict[str, Any]:
        """Recompute the log against its stored heads and ``saved`` ones (the JSON text
        `audit head` printed, kept elsewhere). The run is an audit event."""
        self._require(actor)
        heads = load_heads(text.encode("utf-8") for text in saved)
        # The log, and the catalog against the records the station signed; the heads
        # the center countersigned are kept heads too (a rewrite that also removed the
        # station's own heads still shows against them).
        witnessed = self._witnessed()
        report = verify_catalog(self.audit.catalog, self.store, keyring=self._keyring(),
                                saved=heads, kept=witnessed)
        event = self.audit.record(
            actor=actor.audit_name, action="audit.verify", subjects=[],
            details={"ok": report.ok, "events": report.events, "heads": report.heads,
                     "saved": len(heads), "witnessed": len(witnessed),
                     "codes": sorted({f.code for f in report.findings})},
            at=self.clock())
        return {**report.to_dict(), "audit_seq": event.seq}

    def _witnessed(self) -> list[tuple[str, SignedHead]]:
        signer = self.audit.signer
        if signer is None:
            return []
        book = WitnessBook(catalog=self.audit.catalog, audit=self.audit)
        return [(f"witnessed:{c.head.size}@{c.witness_id}", c.head)
                for c in book.witnessed(signer.station_id)]

    def _keyring(self) -> Keyring | None:
        try:
            return self.keys.keyring()
        except KeyError_:
            return None

    def fixity(self, actor: Actor, *, mode: str = "all", seed: int | None = None,
               sample: int | None = None, since: str | None = None, sha256: bool = False,
               ) -> FixityReport:
        """Re-hash stored blobs (``since``: an ISO time with a zone; no ``seed``: one is
        drawn and reported); the run and each finding are audit events."""
        self.gate.require(actor, P.AUDIT_VIEW, subjects=["store"])
        seed = seed if seed is not None else random.SystemRandom().randrange(2**32)
        when = parse_iso(since, "--since") if since is not None else None
        plan = FixityPlan(mode, seed, sample=sample, since=when, sha256=sha256)
        return Fixity(catalog=self.audit.catalog, store=self.store, audit=self.audit,
                      clock=self.clock).run(plan, actor=actor.audit_name)

    def repair(self, actor: Actor, blobs: Sequence[str], *,
               objects: Callable[[], ObjectStore]) -> RepairReport:
        """Restore each blob from its verified WORM copy (``objects``: the configured
        object store, E_CONFIG when there is none), then re-check those restored."""
        self.gate.require(actor, P.FIXITY_REPAIR, subjects=["store"])
        return self._repairer(objects()).repair(blobs, actor=actor.audit_name)

    def fixity_repair(self, actor: Actor, *, objects: Callable[[], ObjectStore],
                      **plan: Any) -> dict[str, Any]:
        """A fixity run (``plan`` as :meth:`fixity`), then a repair of every blob it
        found missing, altered or unreadable. ``resolved``: every finding was repaired
        and the re-check found nothing."""
        self.gate.require(actor, P.FIXITY_REPAIR, subjects=["store"])
        repairer = self._repairer(objects())  # no object store: refused before the run
        report = self.fixity(actor, **plan)
        damaged = [f.subject for f in report.findings if f.code in REPAIRABLE and f.subject]
        repaired = repairer.repair(damaged, actor=actor.audit_name)
        still = {f.subject for f in repaired.recheck.findings} if repaired.recheck else set()
        fixed = {i.blake3 for i in repaired.items if i.restored} - still
        unresolved = [f for f in report.findings if f.subject not in fixed]
        return {**report.to_dict(), "repair": repaired.to_dict(),
                "unresolved": len(unresolved), "resolved": not unresolved and repaired.ok}

    def _repairer(self, objects: ObjectStore) -> Repairer:
        return Repairer(catalog=self.audit.catalog, store=self.store, objects=objects,
                        audit=self.audit, clock=self.clock)

    def refuse(self, actor: Actor, *, verb: str, target: str) -> NoReturn:
        """Record the attempt, then refuse it."""
        raise refuse(self.audit, verb=verb, target=target, actor=actor.audit_name,
                     at=self.clock())


def hidden_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event the reader may not see, in its place: its number and hashes (the chain
    stays checkable), nothing of what it says."""
    return {"seq": event["seq"], "hidden": True, "prev_hash": event["prev_hash"],
            "leaf_hash": event["leaf_hash"]}


__all__ = ["REFUSED_VERBS", "AuditDesk", "hidden_event"]
