"""Searching every station's cases and recordings at the center, through the one gate.

The rows come from the center's index of the mirrored logs (:mod:`archive.witness.index`);
the rules are the station's: ``case.view`` and the case's unit and label for a case,
``recording.view`` and the unit and label of every case a recording is actively linked to
for a recording (one hidden case hides it). What a person cannot see is not listed, not
counted and not named in the audit event of the read. One recording
(:meth:`CentralDesk.recording`, the desk's page at the center) is refused, audited, by the
same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.engine import Row

from archive.catalog import Catalog
from archive.catalog.types import table_of
from archive.witness.index import (
    CentralCase,
    CentralLink,
    CentralRecording,
    CentralRendition,
)
from integrity.errors import NotFound
from records.permissions import Actor, Gate, P

_C, _L, _R = table_of(CentralCase), table_of(CentralLink), table_of(CentralRecording)
_N = table_of(CentralRendition)
MAX_ROWS = 1000


def _case(row: Row[Any]) -> dict[str, Any]:
    return {"station_id": row.station_id, "case_id": row.case_id, "number": row.number,
            "type": row.case_type, "unit": row.unit, "sensitivity": row.sensitivity,
            "created_at": row.created_at.isoformat()}


class CentralDesk:
    def __init__(self, *, gate: Gate, catalog: Catalog,
                 clock: Callable[[], datetime]) -> None:
        self.gate, self.catalog, self.clock = gate, catalog, clock

    def cases(self, actor: Actor, *, number: str | None = None, station: str | None = None,
              limit: int = 100) -> dict[str, Any]:
        """Cases of every station the actor may see, newest first."""
        self.gate.require(actor, P.CASE_VIEW, subjects=["center:cases"])
        query = select(_C).order_by(_C.c.created_at.desc(), _C.c.case_id)
        if number is not None:
            query = query.where(_C.c.number == number)
        if station is not None:
            query = query.where(_C.c.station_id == station)
        with self.catalog.engine.connect() as conn:
            seen = [_case(r) for r in conn.execute(query)
                    if actor.sees(unit=r.unit, sensitivity=r.sensitivity)][:min(limit,
                                                                               MAX_ROWS)]
        self.gate.read(actor, "center.cases", [f"case:{c['case_id']}" for c in seen],
                       {"count": len(seen), "number": number, "station": station})
        return {"cases": seen}

    def recordings(self, actor: Actor, *, officer: str | None = None,
                   station: str | None = None, case_number: str | None = None,
                   limit: int = 100) -> dict[str, Any]:
        """Recordings of every station the actor may see, newest first."""
        self.gate.require(actor, P.RECORDING_VIEW, subjects=["center:recordings"])
        query = select(_R).order_by(_R.c.ingested_at.desc(), _R.c.recording_id)
        if officer is not None:
            query = query.where(_R.c.officer == officer)
        if station is not None:
            query = query.where(_R.c.station_id == station)
        if case_number is not None:  # linked at the recording's own station
            query = query.where(exists().where(
                _L.c.station_id == _R.c.station_id, _L.c.recording_id == _R.c.recording_id,
                _L.c.active, _C.c.station_id == _L.c.station_id,
                _C.c.case_id == _L.c.case_id, _C.c.number == case_number))
        want = min(limit, MAX_ROWS)
        seen: list[dict[str, Any]] = []
        with self.catalog.engine.connect() as conn:
            # Pages about twice what is asked for, until enough are visible: reading 4000
            # rows and their cases to show 100 was most of a search (bench.center).
            for rows in self._pages(conn, query, size=max(2 * want, 50)):
                governing = self._governing(conn, rows)
                seen += [self._recording(r, governing[(r.station_id, r.recording_id)])
                         for r in rows if all(actor.sees(unit=c.unit,
                                                         sensitivity=c.sensitivity)
                                              for c in governing[(r.station_id,
                                                                  r.recording_id)])]
                if len(seen) >= want:
                    break
        seen = seen[:want]
        self.gate.read(actor, "center.recordings",
                       [f"recording:{r['recording_id']}" for r in seen],
                       {"count": len(seen), "officer": officer, "station": station,
                        "case": case_number})
        return {"recordings": seen}

    def recording(self, actor: Actor, station: str, recording_id: str) -> dict[str, Any]:
        """One station's recording as the index has it, with the cases it is actively
        linked to and its renditions; refused (audited) as a station refuses it:
        ``recording.view`` and the unit and label of every linked case."""
        with self.catalog.engine.connect() as conn:
            row = conn.execute(select(_R).where(_R.c.station_id == station,
                                                _R.c.recording_id == recording_id)).first()
            linked = list(conn.execute(select(_L.c.stage, _C).join(_C, and_(
                _C.c.station_id == _L.c.station_id, _C.c.case_id == _L.c.case_id)).where(
                _L.c.station_id == station, _L.c.recording_id == recording_id, _L.c.active)
                .order_by(_L.c.link_id)))
            renditions = list(conn.execute(select(_N).where(
                _N.c.station_id == station, _N.c.recording_id == recording_id)
                .order_by(_N.c.made_at, _N.c.rendition_id)))
        if row is None:
            raise NotFound(f"no recording {recording_id} of station {station} at the center",
                           station=station, recording=recording_id)
        subjects = [f"station:{station}", f"recording:{recording_id}"]
        self.gate.require(actor, P.RECORDING_VIEW, subjects=subjects)
        for case in linked:  # as at a station: one hidden case hides the recording
            self.gate.require(actor, P.RECORDING_VIEW,
                              subjects=[*subjects, f"case:{case.case_id}"],
                              unit=case.unit, sensitivity=case.sensitivity)
        self.gate.read(actor, "center.recording",
                       [*subjects, *(f"case:{c.case_id}" for c in linked)],
                       {"renditions": len(renditions)})
        return {**self._recording(row, linked),
                "linked": [{**_case(c), "stage": c.stage} for c in linked],
                "renditions": [{"rendition_id": n.rendition_id, "status": n.status,
                                "manifest": n.manifest, "merkle_root": n.merkle_root,
                                "made_at": n.made_at.isoformat()} for n in renditions]}

    @staticmethod
    def _pages(conn: Any, query: Any, *, size: int) -> Iterator[list[Row[Any]]]:
        """The query's rows a page at a time, at most ``MAX_ROWS * 4`` in all."""
        for offset in range(0, MAX_ROWS * 4, size):
            rows = list(conn.execute(query.offset(offset).limit(size)))
            if rows:
                yield rows
            if len(rows) < size:
                return

    @staticmethod
    def _governing(conn: Any, rows: list[Row[Any]]) -> dict[tuple[str, str], list[Any]]:
        """For each recording, the cases it is actively linked to (at its station)."""
        out: dict[tuple[str, str], list[Any]] = {(r.station_id, r.recording_id): []
                                                 for r in rows}
        ids = list({r.recording_id for r in rows})
        for i in range(0, len(ids), 500):
            links = conn.execute(select(_L.c.station_id, _L.c.recording_id, _C).join(
                _C, and_(_C.c.station_id == _L.c.station_id, _C.c.case_id == _L.c.case_id))
                .where(_L.c.recording_id.in_(ids[i:i + 500]), _L.c.active))
            for link in links:
                key = (link.station_id, link.recording_id)
                if key in out:
                    out[key].append(link)
        return out

    @staticmethod
    def _recording(r: Row[Any], cases: list[Any]) -> dict[str, Any]:
        return {"station_id": r.station_id, "recording_id": r.recording_id,
                "session_id": r.session_id, "device": r.device, "officer": r.officer,
                "path": r.path, "size": r.size, "blake3": r.blake3, "sha256": r.sha256,
                "status": r.status, "flags": r.flags,
                "ingested_at": r.ingested_at.isoformat(),
                "cases": sorted({c.number for c in cases})}
