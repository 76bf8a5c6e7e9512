"""Fixity of the object store, swept from the center (``evidock center sweep``).

The center holds no footage, but it knows every blob the stations' events named: each
recording's original (BLAKE3, SHA-256, size) and each rendition's signed manifest. A
sweep draws a random sample of them (per station or across all) and checks each in the
object store as the mirror does before keeping an event (:class:`ObjectCheck`: present,
under a COMPLIANCE lock, the right SHA-256 or bytes as the newest version at its key).
Findings use the fixity codes (``E_FIXITY_MISSING``, ``E_FIXITY_ALTERED``,
``E_FIXITY_UNREADABLE``) with the subject ``remote:<station>/<blake3>``; the run is one
``fixity.remote`` audit event with the counts and the findings (the first 100). An
operator's act, like a station's fixity run: ``audit.view``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, null, select, union_all

from archive.audit.log import AuditLog
from archive.catalog.types import table_of
from archive.replica.objectstore import ObjectStore
from archive.witness.index import CentralRecording, CentralRendition
from archive.witness.mirror import NamedBlob
from archive.witness.objectcheck import ObjectCheck
from config.witness import WitnessSettings
from integrity.errors import InvalidRequest
from integrity.findings import Finding
from records.permissions import Actor, Gate, P

_R, _N = table_of(CentralRecording), table_of(CentralRendition)
MAX_SAMPLE = 100_000
_LISTED = 100


class RemoteFixity:
    def __init__(self, *, gate: Gate, audit: AuditLog, witness: WitnessSettings,
                 objects_for: Callable[[str], ObjectStore],
                 clock: Callable[[], datetime]) -> None:
        self.gate, self.audit, self.witness, self.clock = gate, audit, witness, clock
        self.objects_for = objects_for

    def sweep(self, actor: Actor, *, sample: int, station: str | None = None,
              ) -> dict[str, Any]:
        """Check ``sample`` blobs drawn at random (of ``station``, or of every witnessed
        station) in the object store; every finding reported, none stops the run."""
        self.gate.require(actor, P.AUDIT_VIEW, subjects=["object-store"])
        if not 1 <= sample <= MAX_SAMPLE:
            raise InvalidRequest(f"sample must be 1..{MAX_SAMPLE}", sample=sample)
        stations = [s.id for s in self.witness.stations if station in (None, s.id)]
        if station is not None and not stations:
            raise InvalidRequest(f"{station!r} is not a station this service witnesses",
                                 station=station)
        drawn = self._draw(stations, sample)
        findings = [f for st, blob in drawn for f in self._check(st, blob)]
        self.audit.record(actor=actor.audit_name, action="fixity.remote",
                          subjects=[f"station:{s}" for s in stations],
                          details={"checked": len(drawn), "findings": len(findings),
                                   "codes": sorted({f.code for f in findings}),
                                   "listed": [f.to_dict() for f in findings[:_LISTED]]},
                          at=self.clock())
        return {"checked": len(drawn), "stations": stations,
                "findings": [f.to_dict() for f in findings]}

    def _draw(self, stations: Sequence[str], sample: int) -> list[tuple[str, NamedBlob]]:
        """A random sample of the originals and manifests the stations' events named
        (the database draws it: no list of every blob in memory)."""
        originals = select(_R.c.station_id, _R.c.blake3, _R.c.sha256, _R.c.size).where(
            _R.c.station_id.in_(stations))
        manifests = select(_N.c.station_id, _N.c.manifest, null(), null()).where(
            _N.c.station_id.in_(stations), _N.c.manifest.is_not(None))
        both = union_all(originals, manifests).subquery()
        query = select(both).order_by(func.random()).limit(sample)
        with self.audit.catalog.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(str(r[0]), NamedBlob(str(r[1]), r[2], None if r[3] is None else int(r[3])))
                for r in rows]

    def _check(self, station: str, blob: NamedBlob) -> list[Finding]:
        miss = ObjectCheck(objects=self.objects_for(station)).check(blob)
        if miss is None:
            return []
        code, why = miss
        return [Finding(code, why, f"remote:{station}/{blob.blake3}",
                        {"station": station, "blake3": blob.blake3})]
