"""Witnessing through the one gate: the center's side and the station's side.

At a center (``[[witness.stations]]``), a station's account (role ``station``) hands in
the station's latest signed tree head with a consistency proof from the last head the
center countersigned for it. The head is judged (:mod:`archive.witness.judge`) inside
the catalog's write transaction: a head that extends the witnessed log is countersigned
with the center's key; one that does not is kept as a conflict, audited as
``witness.fork`` and refused with E_LOG_FORK; anything else is refused with
E_WITNESS_REFUSED and audited as ``witness.refused``.

At a station (``[center] url``), :meth:`WitnessDesk.push` signs a head over the whole
log if it grew, asks the center for the last head it witnessed, proves consistency from
that size, hands both in, checks the countersignature with the center's keyring, and
keeps it (``witness.received``): the station can then prove its log was witnessed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from archive.audit.format import SignedHead
from archive.audit.log import AuditLog
from archive.keystore import StationKeys
from archive.witness.book import Outcome, WitnessBook
from archive.witness.center import CenterClient
from archive.witness.cosign import Cosigned, Cosigner
from archive.witness.judge import Kind, Verdict, judge
from archive.witness.mirror import Mirror
from config.witness import CenterSettings, WitnessSettings
from integrity.errors import (
    AuditError,
    CenterUnavailable,
    ConfigError,
    EvidockError,
    LogFork,
    WitnessRefused,
)
from integrity.keys import Keyring
from integrity.merkle import ConsistencyProof
from records.permissions import Actor, Gate, P

_LOG = "audit-log"


class WitnessDesk:
    def __init__(self, *, gate: Gate, audit: AuditLog, keys: StationKeys, station_id: str,
                 witness: WitnessSettings, center: CenterSettings, home: Path,
                 clock: Callable[[], datetime]) -> None:
        self.gate, self.audit, self.clock = gate, audit, clock
        self.book = WitnessBook(catalog=audit.catalog, audit=audit)
        self.mirror = Mirror(catalog=audit.catalog)
        self.cosigner = Cosigner(keys=keys, witness_id=station_id)
        self.station_id = station_id
        self.witness, self.center, self.home = witness, center, home

    # ------------------------------------------------------------------ the center

    def _station_keyring(self, actor: Actor, station_id: str) -> Keyring:
        path = self.witness.keyring_path(self.home, station_id)
        if path is None:
            self._refused(actor, station_id, "not a station this service witnesses")
        try:
            return StationKeys.read_keyring(path)
        except EvidockError as exc:
            raise ConfigError(f"witness.stations: the keyring of {station_id!r} cannot be "
                              f"read: {exc.message}", key="witness.stations") from exc

    def _refused(self, actor: Actor, station_id: str, why: str, **details: Any) -> NoReturn:
        event = self.audit.record(actor=actor.audit_name, action="witness.refused",
                                  subjects=[f"station:{station_id}"],
                                  details={"why": why, **details}, at=self.clock())
        raise WitnessRefused(f"station {station_id!r}: {why}", station_id=station_id,
                             audit_seq=event.seq, **details)

    def submit(self, actor: Actor, station_id: str, head_doc: dict[str, Any],
               proof_doc: dict[str, Any] | None) -> dict[str, Any]:
        """Judge and, if it extends the witnessed log, countersign a station's head."""
        self.gate.require(actor, P.WITNESS_SUBMIT, subjects=[f"station:{station_id}"])
        keyring = self._station_keyring(actor, station_id)
        try:
            head = SignedHead.from_dict(head_doc)
        except AuditError as exc:
            self._refused(actor, station_id, f"malformed head: {exc.message}")
        proof = _proof(proof_doc)
        at = self.clock()
        # Before the write transaction: mirrored events never change, so the root of
        # the first head.size of them is fixed once held (and O(n) to compute).
        mirrored = self.mirror.root(station_id, head.size) \
            if head.station_id == station_id else None
        outcome = self.book.judge_and_keep(
            head=head, proof=proof_doc,
            judge=lambda last: _against_mirror(head, mirrored, judge(
                station_id=station_id, new=head, proof=proof, keyring=keyring,
                last=None if last is None else last.head)),
            cosign=lambda h: self.cosigner.cosign(h, at=at),
            actor=actor.audit_name, at=at)
        return self._answer(actor, station_id, head, outcome)

    def _answer(self, actor: Actor, station_id: str, head: SignedHead,
                outcome: Outcome) -> dict[str, Any]:
        v = outcome.verdict
        if outcome.conflict_id is not None:
            raise LogFork(f"station {station_id!r}: {v.reason}", station_id=station_id,
                          kind=str(v.kind), conflict=outcome.conflict_id,
                          audit_seq=outcome.audit_seq, size=head.size, **_plain(v))
        if outcome.cosigned is None:
            self._refused(actor, station_id, v.reason, verdict=str(v.kind), size=head.size)
        return {"verdict": str(v.kind), "reason": v.reason,
                "cosigned": outcome.cosigned.to_dict(), "audit_seq": outcome.audit_seq}

    def latest(self, actor: Actor, station_id: str) -> dict[str, Any]:
        """The last head countersigned for ``station_id`` (None if none yet)."""
        if not actor.may(P.WITNESS_SUBMIT):
            self.gate.require(actor, P.AUDIT_VIEW, subjects=[f"station:{station_id}"])
        last = self.book.latest(station_id)
        self.gate.read(actor, "witness.latest", [f"station:{station_id}"],
                       {"size": None if last is None else last.head.size})
        return {"station_id": station_id,
                "cosigned": None if last is None else last.to_dict()}

    def conflicts(self, actor: Actor, station_id: str | None = None) -> dict[str, Any]:
        """Every conflict found (forks, truncations), oldest first."""
        self.gate.require(actor, P.AUDIT_VIEW, subjects=[_LOG])
        found = self.book.conflicts(station_id)
        self.gate.read(actor, "witness.conflicts", [_LOG], {"count": len(found)})
        return {"conflicts": [{**c, "detected_at": c["detected_at"].isoformat()}
                              for c in found]}

    def status(self, actor: Actor) -> dict[str, Any]:
        """Per witnessed station: events mirrored, the last countersigned head, conflicts,
        and whether it is stale (no head countersigned within ``stale_after_hours``)."""
        self.gate.require(actor, P.AUDIT_VIEW, subjects=[_LOG])
        now, limit = self.clock(), timedelta(hours=self.witness.stale_after_hours)
        counts: dict[str, int] = {}
        for c in self.book.conflicts():
            counts[c["station_id"]] = counts.get(c["station_id"], 0) + 1
        rows = []
        for entry in self.witness.stations:
            last = self.book.latest(entry.id)
            rows.append({"station_id": entry.id,
                         "mirrored": self.mirror.next_seq(entry.id),
                         "size": None if last is None else last.head.size,
                         "signed_at": None if last is None else last.head.time.isoformat(),
                         "witnessed_at": None if last is None
                         else last.witnessed_at.isoformat(),
                         "conflicts": counts.get(entry.id, 0),
                         "stale": last is None or now - last.witnessed_at > limit})
        self.gate.read(actor, "witness.status", [_LOG], {"stations": len(rows)})
        return {"stations": rows, "stale_after_hours": self.witness.stale_after_hours}

    # ------------------------------------------------------------------ the station

    def _client(self) -> CenterClient:
        if not self.center.url:
            raise ConfigError("no center is configured: set [center] url and keyring",
                              key="center.url")
        return CenterClient(settings=self.center, home=self.home)

    def push(self, actor: Actor) -> dict[str, Any]:
        """Have this station's log witnessed by the center, and keep the proof of it."""
        self.gate.require(actor, P.WITNESS_PUSH, subjects=[_LOG])
        client = self._client()
        center_keys = client.keyring()
        head = self.audit.current_head(at=self.clock())
        last = client.latest(self.station_id)
        old = 0 if last is None else last.head.size
        proof = None if old > head.size else \
            self.audit.consistency(old, head.size)["proof"]
        try:
            cosigned = client.submit(head, proof)
        except LogFork as exc:
            self.audit.record(actor=actor.audit_name, action="witness.fork_reported",
                              subjects=[_LOG], details={"size": head.size, "root": head.root,
                                                        "center": exc.details},
                              at=self.clock())
            raise
        _check_answer(cosigned, head, center_keys)
        seq = self.book.keep_received(cosigned, actor=actor.audit_name, at=self.clock())
        return {"cosigned": cosigned.to_dict(), "witnessed_size": old, "audit_seq": seq}

    def received(self, actor: Actor, *, limit: int = 20) -> dict[str, Any]:
        """The countersignatures this station received, newest first."""
        self.gate.require(actor, P.AUDIT_VIEW, subjects=[_LOG])
        kept = self.book.history(self.station_id, limit=limit)
        self.gate.read(actor, "witness.received", [_LOG], {"count": len(kept)})
        return {"station_id": self.station_id, "cosigned": [c.to_dict() for c in kept]}


def _proof(doc: dict[str, Any] | None) -> ConsistencyProof | None:
    if doc is None:
        return None
    try:
        return ConsistencyProof.from_dict(doc)
    except (EvidockError, ValueError, TypeError):
        return None  # judged as a missing proof: BAD_PROOF where one is needed


def _against_mirror(head: SignedHead, mirrored: str | None, verdict: Verdict) -> Verdict:
    """A head over events the center mirrors must be their root (``mirrored``; None: not
    all held): the mirror was checked event by event, so a head that disagrees signs
    another log."""
    if verdict.kind not in (Kind.FIRST, Kind.EXTENDS) or mirrored in (None, head.root):
        return verdict
    return Verdict(Kind.FORK, "the signed head is not the root of the events the station "
                   "pushed", {"size": head.size, "root": head.root, "mirrored_root": mirrored})


def _plain(v: Verdict) -> dict[str, Any]:
    return {k: val for k, val in v.details.items() if k not in ("kind", "size")}


def _check_answer(cosigned: Cosigned, head: SignedHead, keyring: Keyring) -> None:
    """A countersignature is kept only if it is for this head and verifies."""
    if cosigned.head != head:
        raise CenterUnavailable("the center countersigned another head than the one sent",
                                sent_size=head.size, got_size=cosigned.head.size)
    bad = cosigned.check(keyring, "center")
    if bad:
        raise CenterUnavailable(f"the center's countersignature does not check out: "
                                f"{bad[0].message}", code_found=str(bad[0].code))
