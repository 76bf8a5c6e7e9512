"""Upload deadlines: cameras and officers not offloaded within the window (default 24 h).

Provincial rules require footage to be uploaded within 24 h of the shift. A camera (or
officer) counts as offloaded at the ``ended_at`` of its last dock session whose outcome
was ``completed`` or ``findings`` (every file was looked at); interrupted and failed
sessions do not count. ``now`` is passed in by the composition root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from archive.catalog import Catalog, Device, DockSession, Officer

FINISHED = ("completed", "findings")
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 3600}


def parse_window(text: str) -> timedelta:
    """'24h', '90m', '2d', '3600s'; a bare number means hours."""
    m = _WINDOW.match(text.lower())
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (e.g. 24h, 90m, 2d)")
    return timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])


@dataclass(frozen=True)
class Overdue:
    kind: str  # "camera" | "officer"
    id: str
    last_offload: datetime | None
    last_attempt: datetime | None
    last_outcome: str | None
    age_h: float | None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id,
                "last_offload": self.last_offload.isoformat() if self.last_offload else None,
                "last_attempt": self.last_attempt.isoformat() if self.last_attempt else None,
                "last_outcome": self.last_outcome,
                "age_h": None if self.age_h is None else round(self.age_h, 2)}


def _latest(rows: list[DockSession], key: str) -> dict[str, tuple[datetime | None,
                                                                    DockSession | None]]:
    out: dict[str, tuple[datetime | None, DockSession | None]] = {}
    for row in rows:  # oldest first
        ident = getattr(row, key)
        if not ident:
            continue
        done, _ = out.get(ident, (None, None))
        if row.outcome in FINISHED and row.ended_at is not None:
            done = row.ended_at
        out[ident] = (done, row)
    return out


def overdue(catalog: Catalog, *, now: datetime, window: timedelta) -> list[Overdue]:
    """Every known camera and officer whose last finished offload is older than window."""
    with Session(catalog.engine) as s:
        sessions = list(s.exec(select(DockSession).order_by(col(DockSession.started_at))))
        devices = [d.serial for d in s.exec(select(Device))]
        officers = [o.police_number for o in s.exec(select(Officer))]
    out: list[Overdue] = []
    for kind, key, ids in (("camera", "device_serial", devices),
                           ("officer", "officer_id", officers)):
        latest = _latest(sessions, key)
        for ident in sorted(ids):
            done, last = latest.get(ident, (None, None))
            if done is not None and now - done <= window:
                continue
            age = (now - done).total_seconds() / 3600 if done else None
            out.append(Overdue(kind, ident, done, last.started_at if last else None,
                               last.outcome if last else None, age))
    return out
