"""The center's index of every station's cases and recordings, built from the mirror.

The audit events a station pushes carry what a search across stations needs: a case's
number, type, unit and label (``case.create``, ``case.sensitivity``), its links
(``case.link``, ``case.unlink``), each offloaded file (``ingest.file``: recording id,
digests, size, path, status), the session it came from (``dock.session.start``: camera,
officer) and its renditions (``rendition.make``: the signed manifest's BLAKE3).
:func:`project` folds each kept event into these tables in the same
transaction that keeps it, so the index never runs ahead of or behind the mirror.

These rows are derived from the mirror, not evidence of their own; still only what an
event changes may change (a case's label, a link's state: guarded like ``recordingstat``),
and sessions and recordings are never changed at all. Access decisions read them through
the same rules as at a station (:mod:`records.centraldesk`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, and_, insert, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, JSONText, UTCDateTime, table_of
from archive.witness.mirror import Incoming

#: What may change in a derived row (the guards, migration 0016, refuse the rest).
CASE_FIXED = ("station_id", "case_id", "number", "case_type", "unit", "created_at")
LINK_FIXED = ("station_id", "link_id", "case_id", "recording_id", "stage")


class CentralSession(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    station_id: str = Field(primary_key=True)
    session_id: str = Field(primary_key=True)
    device: str | None = None
    officer: str | None = None
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CentralRecording(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    station_id: str = Field(primary_key=True)
    recording_id: str = Field(primary_key=True)
    session_id: str
    device: str | None = None
    officer: str | None = Field(default=None, index=True)
    path: str
    size: int | None = None
    blake3: str = Field(index=True)
    sha256: str | None = None
    status: str
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSONText(), nullable=False))
    ingested_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CentralCase(SQLModel, table=True):
    __table_args__ = {"info": {"derived": True, "fixed": CASE_FIXED}}
    station_id: str = Field(primary_key=True)
    case_id: str = Field(primary_key=True)
    number: str = Field(index=True)
    case_type: str | None = None
    unit: str
    sensitivity: str
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class CentralLink(SQLModel, table=True):
    __table_args__ = {"info": {"derived": True, "fixed": LINK_FIXED}}
    station_id: str = Field(primary_key=True)
    link_id: int = Field(primary_key=True)
    case_id: str
    recording_id: str = Field(index=True)
    stage: str | None = None
    active: bool = True


class CentralRendition(SQLModel, table=True):
    """A rendition a station made (``rendition.make``): its signed manifest's BLAKE3,
    which names every segment, is what the center reads footage back by."""

    __table_args__ = APPEND_ONLY
    station_id: str = Field(primary_key=True)
    rendition_id: str = Field(primary_key=True)
    recording_id: str = Field(index=True)
    status: str
    manifest: str | None = None
    merkle_root: str | None = None
    made_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


_S, _R = table_of(CentralSession), table_of(CentralRecording)
_N = table_of(CentralRendition)
_C, _L = table_of(CentralCase), table_of(CentralLink)
#: Inserted in this order: a recording names its session, a link its case.
_ORDER = (_S, _C, _R, _L, _N)


def _id(subjects: Sequence[str], prefix: str) -> str | None:
    return next((s[len(prefix):] for s in subjects if s.startswith(prefix)), None)


@dataclass
class _Batch:
    """The index rows a batch of events makes: inserted a table at a time (one
    executemany each), then the few updates (a relabel, an unlink) in event order."""

    station: str
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {
        t.name: [] for t in _ORDER})
    updates: list[Any] = field(default_factory=list)


def project(conn: Connection, station_id: str, events: Sequence[Incoming]) -> None:
    """Fold ``events`` (just kept, in order) into the index, in the caller's transaction:
    a few statements per batch, not per event (most of a push's time went here)."""
    batch = _Batch(station_id)
    for event in events:
        handler = _HANDLERS.get(event.spec.action)
        if handler is not None:
            handler(batch, event)
    _complete_recordings(conn, batch)
    for table in _ORDER:
        if batch.rows[table.name]:
            conn.execute(insert(table), batch.rows[table.name])
    for stmt in batch.updates:
        conn.execute(stmt)


def _complete_recordings(conn: Connection, batch: _Batch) -> None:
    """Drop recordings already indexed (or twice in the batch); give the rest their
    session's camera and officer (from the batch, else one lookup)."""
    station, rows = batch.station, batch.rows[_R.name]
    if not rows:
        return
    ids = list(dict.fromkeys(r["recording_id"] for r in rows))
    held = set(conn.execute(select(_R.c.recording_id).where(
        _R.c.station_id == station, _R.c.recording_id.in_(ids))).scalars())
    fresh: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["recording_id"] not in held:
            fresh.setdefault(r["recording_id"], r)
    sessions = {r["session_id"]: (r["device"], r["officer"]) for r in batch.rows[_S.name]}
    missing = list({r["session_id"] for r in fresh.values()} - set(sessions))
    if missing:
        sessions |= {sid: (dev, off) for sid, dev, off in conn.execute(
            select(_S.c.session_id, _S.c.device, _S.c.officer).where(
                _S.c.station_id == station, _S.c.session_id.in_(missing)))}
    for r in fresh.values():
        r["device"], r["officer"] = sessions.get(r["session_id"], (None, None))
    batch.rows[_R.name] = list(fresh.values())


def _session(batch: _Batch, e: Incoming) -> None:
    d, subjects = e.spec.details, list(e.spec.subjects)
    if subjects:
        batch.rows[_S.name].append({"station_id": batch.station, "session_id": subjects[0],
                                    "device": _text(d.get("device")),
                                    "officer": _text(d.get("officer")),
                                    "started_at": e.spec.at})


def _recording(batch: _Batch, e: Incoming) -> None:
    d, subjects = e.spec.details, list(e.spec.subjects)
    if d.get("status") not in ("ingested", "flagged") or len(subjects) < 3 \
            or not isinstance(d.get("blake3"), str):
        return  # skipped, failed or duplicate files make no new recording
    batch.rows[_R.name].append({
        "station_id": batch.station, "recording_id": subjects[1], "session_id": subjects[0],
        "device": None, "officer": None, "path": str(d.get("path", "")),
        "size": _int(d.get("size")), "blake3": d["blake3"], "sha256": _text(d.get("sha256")),
        "status": str(d["status"]), "flags": [str(f) for f in d.get("flags") or []],
        "ingested_at": e.spec.at})


def _case(batch: _Batch, e: Incoming) -> None:
    d, case_id = e.spec.details, _id(e.spec.subjects, "case:")
    if case_id is not None:
        batch.rows[_C.name].append({"station_id": batch.station, "case_id": case_id,
                                    "number": str(d.get("number", "")),
                                    "case_type": _text(d.get("type")),
                                    "unit": str(d.get("unit", "")),
                                    "sensitivity": str(d.get("sensitivity", "none")),
                                    "created_at": e.spec.at})


def _relabel(batch: _Batch, e: Incoming) -> None:
    case_id, to = _id(e.spec.subjects, "case:"), e.spec.details.get("to")
    if case_id is not None and isinstance(to, str):
        batch.updates.append(update(_C).where(and_(
            _C.c.station_id == batch.station, _C.c.case_id == case_id)).values(sensitivity=to))


def _link(batch: _Batch, e: Incoming) -> None:
    d = e.spec.details
    case_id, rec = _id(e.spec.subjects, "case:"), _id(e.spec.subjects, "recording:")
    if case_id is not None and rec is not None and _int(d.get("link")) is not None:
        batch.rows[_L.name].append({"station_id": batch.station, "link_id": d["link"],
                                    "case_id": case_id, "recording_id": rec,
                                    "stage": _text(d.get("stage")), "active": True})


def _unlink(batch: _Batch, e: Incoming) -> None:
    link = _int(e.spec.details.get("link"))
    if link is not None:
        batch.updates.append(update(_L).where(and_(
            _L.c.station_id == batch.station, _L.c.link_id == link)).values(active=False))


def _rendition(batch: _Batch, e: Incoming) -> None:
    d = e.spec.details
    rec, rid = _id(e.spec.subjects, "recording:"), _id(e.spec.subjects, "rendition:")
    if rec is not None and rid is not None:
        batch.rows[_N.name].append({"station_id": batch.station, "rendition_id": rid,
                                    "recording_id": rec, "status": str(d.get("status", "")),
                                    "manifest": _text(d.get("manifest")),
                                    "merkle_root": _text(d.get("merkle_root")),
                                    "made_at": e.spec.at})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_HANDLERS = {"dock.session.start": _session, "ingest.file": _recording,
             "case.create": _case, "case.sensitivity": _relabel, "case.link": _link,
             "case.unlink": _unlink, "rendition.make": _rendition}
