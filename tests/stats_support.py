"""A station with hand-counted footage for the statistics tests (desk, service, CLI).

Times are the station's (Asia/Shanghai, +08:00). Deadline 24 h. What each user may see:

| rec | officer | recorded (local)   | secs | offloaded        | links (case@stage)        |
|-----|---------|--------------------|------|------------------|---------------------------|
| r1  | 100001  | 2019-03-05 09:00   | 600  | +8 h             | A@现场检查                 |
| r2  | 100002  | 2019-03-31 22:00   | 60   | 2019-04-02 09:00 | A@现场检查, A@听证 (late)  |
| r3  | 100001  | 2019-04-01 00:30 * | 1200 | 2019-04-01 08:00 | B@查封扣押 (A: unlinked)    |
| r4  | 100002  | 2020-01-10 10:00   | ?    | 2020-01-12 10:00 | B@查封扣押 (late by start) |
| r5  | -       | ? (ingest 03-06)   | 30   | 2019-03-06 10:00 | -                          |
| p1  | 100001  | 2019-03-08 09:00   | 120  | +2 h             | C@现场检查 (个人隐私)       |
| s1  | 100001  | 2019-03-07 09:00   | 300  | +1 h             | S@现场检查 (国家秘密)       |
| s2  | 100002  | 2019-03-09 09:00   | 90   | +1 h             | A@现场检查, S@现场检查      |

\\* 2019-03-31 16:30 UTC: March in UTC, April at the station. A, C, S: 城东中队; B: 城西中队.
S is created unlabelled and relabelled 国家秘密 (the newest label counts).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from evidock_testing import station_on
from sqlmodel import Session, select

from archive.catalog import Blob, Device, DockSession, Recording
from archive.catalog.models import Rendition, Segment
from archive.footage_model import RenditionFootage, footage_of
from evidock.wiring import Services
from records.models import CaseLink
from records.statistics_facts import RecordingStat

CST = timezone(timedelta(hours=8))
A = "邵城管罚〔2019〕第001号"
B = "邵城强〔2019〕第002号"
C = "邵城管检〔2019〕第003号"
S = "邵城管检〔2019〕第004号"
EXTRA = """
[[access.users]]
name = "chief"
roles = ["clerk"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
[[access.users]]
name = "legal_west"
os_users = ["evt-chief"]
roles = ["legal_reviewer"]
units = ["城西中队"]
clearances = ["个人隐私"]

[coverage]
offload_deadline_h = 24
"""


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CST)  # type: ignore[misc]  # (y, m, d, h, min)


def footage(svc: Services, rid: str, *, start: datetime | None, offloaded: datetime,
            seconds: float | None, officer: str | None, segments: bool = True) -> None:
    """A recording row (and an ok rendition when ``seconds``, with two segments unless
    ``segments`` is false): only the footage is faked, not our logic. Shared with the
    coverage tests."""
    digest = hashlib.sha256(rid.encode()).hexdigest()
    with svc.catalog.transaction() as s:
        if s.get(Device, "ZFY0001") is None:
            s.add(Device(serial="ZFY0001", camera_model="test", first_seen=offloaded))
        s.add(DockSession(id=f"s-{rid}", station_id="station-01", device_serial="ZFY0001",
                          officer_id=officer, camera_model="test", source="/cam",
                          started_at=offloaded))
        s.add(Blob(blake3=digest, sha256=digest, size=1, stored_at=offloaded))
        s.add(Recording(id=rid, session_id=f"s-{rid}", device_serial="ZFY0001",
                        officer_id=officer, original_path=rid.encode(), original_display=rid,
                        kind="video", size=1, blake3=digest, sha256=digest, camera_start=start,
                        source_mtime_ns=0, ingested_at=offloaded + timedelta(minutes=5),
                        status="ingested"))
        if seconds is None:
            return
        rendition = Rendition(id=f"r-{rid}", recording_id=rid, status="ok", code="OK",
                              source_blake3=digest, media={"duration_s": seconds + 99},
                              created_at=offloaded)
        half = round(seconds * 500_000)
        segs = [Segment(rendition_id=f"r-{rid}", index=i, name=f"{i}.mp4", start_us=a,
                        end_us=b, size=1, blake3=digest)
                for i, (a, b) in enumerate([(0, half), (half, round(seconds * 1e6))]
                                           if segments else [])]
        s.add(rendition)
        s.flush()
        # As ingest/process.py stores them: the footage row goes with the rendition.
        s.add_all([*segs, footage_of(rendition, segs)])


def stats_station(database: str, tmp_path_factory: Any, name: str) -> Iterator[Services]:
    """A populated station on ``database`` ("sqlite" or "postgresql"), for the module
    fixtures of the statistics tests (``tmp_path_factory``: pytest's)."""
    home = tmp_path_factory.mktemp(f"{name}-{database}") / "home"
    with station_on(database, home, extra=EXTRA,
                    start=datetime(2026, 12, 1, tzinfo=UTC)) as svc:
        populate(svc)
        yield svc


def populate(svc: Services) -> None:
    hour = timedelta(hours=1)
    footage(svc, "r1", start=local(2019, 3, 5, 9, 0), offloaded=local(2019, 3, 5, 17, 0),
            seconds=600, officer="100001")
    footage(svc, "r2", start=local(2019, 3, 31, 22, 0), offloaded=local(2019, 4, 2, 9, 0),
            seconds=60, officer="100002")
    footage(svc, "r3", start=local(2019, 4, 1, 0, 30), offloaded=local(2019, 4, 1, 8, 0),
            seconds=1200, officer="100001")
    footage(svc, "r4", start=local(2020, 1, 10, 10, 0), offloaded=local(2020, 1, 12, 10, 0),
            seconds=None, officer="100002")
    # Camera clock unknown: its month is the ingest's (5 min after the offload began).
    footage(svc, "r5", start=None, offloaded=local(2019, 3, 6, 10, 0), seconds=30,
            officer=None)
    footage(svc, "p1", start=local(2019, 3, 8, 9, 0), offloaded=local(2019, 3, 8, 11, 0),
            seconds=120, officer="100001")
    for rid, day, secs, officer in (("s1", 7, 300, "100001"), ("s2", 9, 90, "100002")):
        footage(svc, rid, start=local(2019, 3, day, 9, 0),
                offloaded=local(2019, 3, day, 9, 0) + hour, seconds=secs, officer=officer)
    desk, chief = svc.cases(), svc.gate().by_name("chief")
    desk.create(chief, number=A, case_type="行政处罚", unit="城东中队")
    desk.create(chief, number=B, case_type="行政强制", unit="城西中队")
    desk.create(chief, number=C, case_type="行政检查", unit="城东中队", sensitivity="个人隐私")
    desk.create(chief, number=S, case_type="行政检查", unit="城东中队")
    for number, rid, stage in ((A, "r1", "现场检查"), (A, "r2", "现场检查"), (A, "r2", "听证"),
                               (B, "r3", "查封扣押"), (B, "r4", "查封扣押"),
                               (C, "p1", "现场检查"), (S, "s1", "现场检查"),
                               (A, "s2", "现场检查"), (S, "s2", "现场检查")):
        desk.link(chief, number, rid, stage=stage, reason="现场")
    wrong = desk.link(chief, A, "r3", stage="现场检查", reason="误关联")
    desk.unlink(chief, wrong.id, reason="不是本案")
    desk.relabel(chief, S, sensitivity="国家秘密", reason="定密")


def counts(recordings: int, seconds: float, unknown: int, late: int,
           links: int) -> dict[str, object]:
    """The metrics of one row of the JSON answer."""
    return {"recordings": recordings, "hours": round(seconds / 3600, 3),
            "unknown_duration": unknown, "late": late, "links": links}


#: Hand counts for supervisor2 (cleared for 个人隐私 only: s1 and s2 are hidden).
SUP2_TOTAL = counts(6, 2010, 1, 2, 6)
SUP2_BY_MONTH = {"2019-03": counts(4, 810, 0, 1, 4), "2019-04": counts(1, 1200, 0, 0, 1),
                 "2020-01": counts(1, 0, 1, 1, 1)}
SUP2_BY_UNIT = {"城东中队": counts(3, 780, 0, 1, 4), "城西中队": counts(2, 1200, 1, 1, 2),
                None: counts(1, 30, 0, 0, 0)}


def kept_facts(svc: Services) -> dict[str, tuple[Any, ...]]:
    """The ``recordingstat`` rows the catalog's triggers keep, by recording."""
    with Session(svc.catalog.engine) as s:
        return {f.recording_id: (f.officer_id, f.recorded_at, f.start_s, f.offloaded_s,
                                 f.seconds, f.links) for f in s.exec(select(RecordingStat))}


def facts_from_evidence(svc: Services) -> dict[str, tuple[Any, ...]]:
    """The same facts recomputed here, in Python, from the evidence tables themselves
    (recordings, their dock sessions, footage rows and link/unlink rows)."""
    with Session(svc.catalog.engine) as s:
        sessions = {d.id: d.started_at for d in s.exec(select(DockSession))}
        footage: dict[str, list[RenditionFootage]] = {}
        for f in s.exec(select(RenditionFootage)):
            footage.setdefault(f.recording_id, []).append(f)
        links = list(s.exec(select(CaseLink)))
        removed = {k.unlinks for k in links if k.action == "unlink"}
        active = Counter(k.recording_id for k in links
                         if k.action == "link" and k.id not in removed)
        out = {}
        for r in s.exec(select(Recording)):
            mine = footage.get(r.id, [])
            ends = [f.segments_s for f in mine if f.segments_s is not None]
            probed = [f.probed_s for f in mine if f.probed_s is not None]
            seconds = max(ends) if ends else max(probed) if probed else None
            offloaded = sessions.get(r.session_id) or r.ingested_at
            out[r.id] = (r.officer_id, r.camera_start or r.ingested_at,
                         None if r.camera_start is None else r.camera_start.timestamp(),
                         offloaded.timestamp(), seconds, active[r.id])
        return out


def assert_facts_kept(svc: Services) -> None:
    """Kept facts equal their recomputation (epoch seconds to the millisecond: SQLite's
    julianday keeps no more)."""
    kept, truth = kept_facts(svc), facts_from_evidence(svc)
    assert kept.keys() == truth.keys(), "one row per recording"
    for rid, (officer, at, start, offloaded, seconds, links) in truth.items():
        got = kept[rid]
        assert (got[0], got[1], got[4], got[5]) == (officer, at, seconds, links), rid
        assert (got[2] is None) == (start is None), rid
        assert start is None or abs(got[2] - start) < 1e-3, rid
        assert abs(got[3] - offloaded) < 1e-3, rid
