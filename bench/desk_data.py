"""The desk bench's catalog: many recordings and cases, bulk-inserted into the real tables.

A station of 2 units, 20 officers and 8 cameras over two years: one dock session per
camera per shift (every tenth docked after 30 h, past the 24 h rule), recordings with an
ok rendition (3 segments, as ``ingest/process.py`` keeps it), cases with a stage, ~2
links each (1 % unlinked again), labels 个人隐私 / 商业秘密 / 国家秘密 on some, a third
closed, holds, export requests (2/3 approved, some rejected), pending deletions, and
audit events appended through the real log (hash chain intact), one for each row that
carries authority and bound to it as ``archive.bindings.bind`` does. The synthetic rows'
blobs are not in the store (list pages never read them); pages that read stored bytes
are measured on the few recordings offloaded for real.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlmodel import SQLModel

UNITS = ("城东中队", "城西中队")
OFFICERS = tuple(str(100001 + i) for i in range(20))  # 0-9 城东中队, 10-19 城西中队
CAMERAS = tuple(f"ZFY{i:04d}" for i in range(1, 9))
CASE_TYPES = ("行政处罚", "行政强制", "行政检查")
STAGES = ("立案", "调查取证", "现场检查")
PURPOSES = ("行政复议", "行政诉讼", "刑事诉讼", "信息公开", "内部审查")
PER_SESSION = 17  # recordings per camera shift
SPAN = timedelta(days=730)
SEGMENTS = 3
CHUNK = 20_000
_T = TypeVar("_T")


@dataclass(frozen=True)
class Built:
    recordings: int
    cases: int
    links: int
    exports: int
    holds: int
    audit_events: int
    seconds: float
    officer: str  # an officer with footage (a footage filter)
    case_number: str  # an open unlabelled 城西中队 case with links: every user sees it
    case_id: str
    recording: str  # a synthetic recording linked to that case (no bytes in the store)
    export_id: str  # an export request of a 城西中队 unlabelled case


def _chunks(items: Iterable[_T]) -> Iterator[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _hex(rnd: random.Random) -> str:
    return f"{rnd.getrandbits(128):032x}"  # like uuid4().hex, which the station uses


def _sensitivity(c: int) -> str:
    if c % 100 == 3:
        return "国家秘密"
    if c % 50 == 1:
        return "商业秘密"
    return "个人隐私" if c % 20 == 0 else "none"


class _Plan:
    """Ids and times, drawn once so that every table agrees."""

    def __init__(self, n: int, ncases: int, end: datetime) -> None:
        rnd = random.Random(13)
        self.n, self.ncases, self.t0 = n, ncases, end - SPAN
        self.sessions = n // PER_SESSION + 1
        self.session_ids = [_hex(rnd) for _ in range(self.sessions)]
        self.rec_ids = [_hex(rnd) for _ in range(n)]
        self.case_ids = [_hex(rnd) for _ in range(ncases)]
        self.officer_of = [OFFICERS[rnd.randrange(len(OFFICERS))] for _ in range(self.sessions)]
        self.rnd = rnd

    def shift(self, s: int) -> datetime:
        """When camera shift ``s`` began (sessions spread evenly over the span)."""
        return self.t0 + SPAN * s / self.sessions

    def docked(self, s: int) -> datetime:
        """When shift ``s``'s camera was docked: 8 h after it began, every tenth 30 h."""
        return self.shift(s) + timedelta(hours=30 if s % 10 == 9 else 8)

    def recording_start(self, i: int) -> datetime:
        return self.shift(i // PER_SESSION) + timedelta(minutes=20 * (i % PER_SESSION))

    def case_number(self, c: int) -> str:
        unit = UNITS[c % 2][:2]
        kind = CASE_TYPES[c % 3][2]  # 处 / 强 / 检
        return f"{unit}{kind}〔{self.case_year(c)}〕第{c:05d}号"

    def case_year(self, c: int) -> int:
        return self.case_created(c).year

    def case_created(self, c: int) -> datetime:
        return self.t0 + SPAN * c / self.ncases


def _devices(p: _Plan) -> Iterator[dict[str, Any]]:
    for serial in CAMERAS:
        yield {"serial": serial, "camera_model": "bench", "first_seen": p.t0}


def _officers(p: _Plan) -> Iterator[dict[str, Any]]:
    for k, number in enumerate(OFFICERS):
        yield {"police_number": number, "name": f"警员{k + 1:02d}", "unit": UNITS[k // 10],
               "first_seen": p.t0}


def _sessions(p: _Plan) -> Iterator[dict[str, Any]]:
    for s, sid in enumerate(p.session_ids):
        begun = p.docked(s)
        yield {"id": sid, "station_id": "bench", "device_serial": CAMERAS[s % len(CAMERAS)],
               "officer_id": p.officer_of[s], "camera_model": "bench", "source": "/cam",
               "bay": f"bay{s % 4 + 1}", "wipe_requested": False, "started_at": begun,
               "ended_at": begun + timedelta(minutes=12), "outcome": "completed"}


def _segment_digest(i: int, k: int) -> str:
    return f"5{i:061x}{k:02x}"  # never a recording's digest (those start with 0)


def _blobs(p: _Plan) -> Iterator[dict[str, Any]]:
    for i in range(p.n):
        digest = f"{i:064x}"
        yield {"blake3": digest, "sha256": digest, "size": 200_000_000, "stored_at": p.t0}
        for k in range(SEGMENTS):
            digest = _segment_digest(i, k)
            yield {"blake3": digest, "sha256": digest, "size": 6_000_000, "stored_at": p.t0}


def _recordings(p: _Plan) -> Iterator[dict[str, Any]]:
    for i, rid in enumerate(p.rec_ids):
        s, start, digest = i // PER_SESSION, p.recording_start(i), f"{i:064x}"
        path = f"DCIM/100MEDIA/{CAMERAS[s % len(CAMERAS)]}_{i:07d}.MP4"
        yield {"id": rid, "session_id": p.session_ids[s],
               "device_serial": CAMERAS[s % len(CAMERAS)], "officer_id": p.officer_of[s],
               "original_path": path.encode(), "original_display": path, "kind": "video",
               "size": 200_000_000, "blake3": digest, "sha256": digest,
               "camera_start": start, "source_mtime_ns": 0, "status": "ingested",
               "ingested_at": p.docked(s) + timedelta(minutes=5), "flags": [],
               "reason": ""}


def _renditions(p: _Plan) -> Iterator[dict[str, Any]]:
    for i, rid in enumerate(p.rec_ids):
        yield {"id": f"r{rid[1:]}", "recording_id": rid, "status": "ok", "code": "OK",
               "source_blake3": f"{i:064x}", "argv": [], "media": {},
               "created_at": p.docked(i // PER_SESSION) + timedelta(hours=1)}


def _segments(p: _Plan) -> Iterator[dict[str, Any]]:
    for i, rid in enumerate(p.rec_ids):
        for k in range(SEGMENTS):
            yield {"rendition_id": f"r{rid[1:]}", "index": k, "name": f"{k:05d}.mp4",
                   "start_us": k * 10_000_000, "end_us": (k + 1) * 10_000_000,
                   "size": 6_000_000, "blake3": _segment_digest(i, k)}


def _footage(p: _Plan) -> Iterator[dict[str, Any]]:
    for rid in p.rec_ids:
        yield {"rendition_id": f"r{rid[1:]}", "recording_id": rid,
               "segments_s": SEGMENTS * 10.0, "probed_s": None}


def _cases(p: _Plan) -> Iterator[dict[str, Any]]:
    for c, cid in enumerate(p.case_ids):
        kind = CASE_TYPES[c % 3]
        yield {"id": cid, "number": p.case_number(c), "case_type": kind, "unit": UNITS[c % 2],
               "title": f"{kind}案件 {c:05d}", "sensitivity": _sensitivity(c),
               "created_by": "clerk", "created_at": p.case_created(c)}


def _stages(p: _Plan) -> Iterator[dict[str, Any]]:
    for c, cid in enumerate(p.case_ids):
        at = p.case_created(c) + timedelta(days=1)
        yield {"case_id": cid, "stage": STAGES[c % 3], "start_at": at,
               "end_at": at + timedelta(hours=2), "actor": "clerk", "note": "", "at": at}


def _links(p: _Plan) -> list[dict[str, Any]]:
    """~2 per case, to footage shot near the case's date; every 100th removed again."""
    rows: list[dict[str, Any]] = []
    for c, cid in enumerate(p.case_ids):
        near = int(p.n * c / p.ncases)
        for k in range(1 + (c % 4 != 0) + (c % 4 == 1)):  # 1, 2, 3 or 2: ~2 on average
            i = min(p.n - 1, near + p.rnd.randrange(40))
            whole = k % 2 == 0
            rows.append({"id": len(rows) + 1, "case_id": cid, "recording_id": p.rec_ids[i],
                         "action": "link", "unlinks": None, "stage": STAGES[(c + k) % 3],
                         "start_us": None if whole else 5_000_000,
                         "end_us": None if whole else 25_000_000, "actor": "clerk",
                         "reason": "现场取证", "at": p.case_created(c) + timedelta(days=2)})
    for row in rows[99::100]:
        rows.append({**row, "id": len(rows) + 1, "action": "unlink", "unlinks": row["id"],
                     "reason": "关联错误", "at": row["at"] + timedelta(hours=1)})
    return rows


def _case_events(p: _Plan) -> list[dict[str, Any]]:
    """A third of the cases closed; every 200th relabelled 国家秘密 later."""
    rows: list[dict[str, Any]] = []
    for c, cid in enumerate(p.case_ids):
        at = p.case_created(c) + timedelta(days=30)
        if c % 3 == 0:
            rows.append({"id": len(rows) + 1, "case_id": cid, "kind": "closed", "value": "",
                         "effective_at": at, "actor": "clerk", "reason": "结案", "at": at})
        if c % 200 == 7:
            rows.append({"id": len(rows) + 1, "case_id": cid, "kind": "sensitivity",
                         "value": "国家秘密", "effective_at": at, "actor": "supervisor",
                         "reason": "定密", "at": at})
    return rows


def _exports(p: _Plan) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A request for every 50th case; 2 of 3 approved, every 6th rejected."""
    requests: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    for c in range(5, p.ncases, 50):
        at = p.case_created(c) + timedelta(days=3)
        rid = _hex(p.rnd)
        requests.append({"id": rid, "case_id": p.case_ids[c], "recording_id": None,
                         "start": None, "end": None, "purpose": PURPOSES[c % 5],
                         "recipient": "市人民法院", "requested_by": "inspector",
                         "reason": "诉讼需要", "at": at})
        n = len(requests)
        if n % 3:
            decisions.append({"id": len(decisions) + 1, "request_id": rid,
                              "decision": "approved", "actor": "legal", "reason": "同意",
                              "valid_until": at + timedelta(days=30), "exports": [],
                              "at": at + timedelta(hours=4)})
        elif n % 6 == 0:
            decisions.append({"id": len(decisions) + 1, "request_id": rid,
                              "decision": "rejected", "actor": "legal", "reason": "范围过宽",
                              "valid_until": None, "exports": [],
                              "at": at + timedelta(hours=4)})
    return requests, decisions


def _holds(p: _Plan) -> list[dict[str, Any]]:
    return [{"id": _hex(p.rnd), "scope": "case", "target": p.case_ids[c],
             "reason": "诉讼保全", "placed_by": "legal",
             "placed_at": p.case_created(c) + timedelta(days=5)}
            for c in range(11, p.ncases, max(1, p.ncases // 20))]


def _retention(p: _Plan, end: datetime) -> list[dict[str, Any]]:
    """Pending deletions (scheduled, in their grace period) of old unlinked footage."""
    return [{"id": k + 1, "recording_id": p.rec_ids[i], "step": "scheduled", "rule": "base",
             "reason": "unclassified footage", "due_at": end + timedelta(days=7),
             "actor": "supervisor", "at": end - timedelta(days=1)}
            for k, i in enumerate(range(3, min(p.n, 200 * 37), 37))]


#: Bound table -> (audit action of a row, subjects of a row).
_BOUND_EVENTS: dict[str, Any] = {
    "caselink": lambda r: (f"case.{r['action']}", [f"case:{r['case_id']}",
                                                    f"recording:{r['recording_id']}"]),
    "caseevent": lambda r: ("case.close" if r["kind"] == "closed" else "case.sensitivity",
                            [f"case:{r['case_id']}"]),
    "exportdecision": lambda r: ("export.approve" if r["decision"] == "approved"
                                 else "export.reject", [f"export-request:{r['request_id']}"]),
    "hold": lambda r: ("hold.place", [f"{r['scope']}:{r['target']}"]),
    "retentionaction": lambda r: ("retention.schedule", [f"recording:{r['recording_id']}"]),
}


def _reads(p: _Plan, count: int, end: datetime) -> list[Any]:
    """Audit events of people's reads and refusals over the last month."""
    from archive.audit.rows import EventSpec

    users = ("clerk", "clerk2", "inspector", "legal", "supervisor")
    out = []
    for k in range(count):
        at = end - timedelta(days=30) + timedelta(days=30) * k / max(1, count)
        c = p.rnd.randrange(p.ncases)
        if k % 10 == 9:
            out.append(EventSpec("user:clerk2", "access.refused", [f"case:{p.case_ids[c]}"],
                                 {"permission": "case.view", "code": "E_FORBIDDEN"}, at))
        else:
            out.append(EventSpec(f"user:{users[k % 5]}", "read.case.show",
                                 [f"case:{p.case_ids[c]}"], {"case": p.case_number(c)}, at))
    return out


def _bind_all(s: Any, bound: dict[str, list[dict[str, Any]]], reads: list[Any]) -> int:
    """Append one event per authority row (with its digest) plus the reads, in time
    order, through the real log; then the binding rows naming them. Returns events."""
    from archive.audit.log import AuditLog
    from archive.audit.rows import Appended, EventSpec
    from archive.bindings import digest_of
    from archive.bindings_model import Binding
    from archive.catalog import Catalog
    from archive.catalog.types import table_of

    specs: list[tuple[Any, tuple[str, str, str] | None]] = [(e, None) for e in reads]
    for name, rows in bound.items():
        table = SQLModel.metadata.tables[name]
        for row in rows:
            action, subjects = _BOUND_EVENTS[name](row)
            digest, rid = digest_of(table, row), str(row["id"])
            at: datetime = row.get("at") or row["placed_at"]
            specs.append((EventSpec(f"user:{row.get('actor') or row.get('placed_by')}",
                                    action, subjects, {"row": {"table": name, "id": rid,
                                                               "digest": digest}}, at),
                          (name, rid, digest)))
    specs.sort(key=lambda x: x[0].at)
    log = AuditLog(catalog=Catalog(engine=s.get_bind()))
    bindings: list[dict[str, Any]] = []
    for chunk in _chunks(specs):
        out = log.append_many(s, [e for e, _ in chunk])
        for (event, names), done in zip(chunk, out, strict=True):
            assert isinstance(done, Appended), done
            if names is not None:
                bindings.append({"table_name": names[0], "row_id": names[1],
                                 "audit_seq": done.seq, "digest": names[2], "at": event.at})
    for batch in _chunks(bindings):
        s.connection().execute(table_of(Binding).insert(), batch)
    return len(specs)


def _visible_to_all(links: list[dict[str, Any]], case_id: str, west: set[str]) -> str | None:
    """A recording of ``case_id`` whose every case is an unlabelled 城西中队 one (so
    clerk2 may see it too)."""
    cases: dict[str, set[str]] = {}
    for row in links:
        cases.setdefault(row["recording_id"], set()).add(row["case_id"])
    return next((r["recording_id"] for r in links if r["case_id"] == case_id
                 and cases[r["recording_id"]] <= west), None)


def build(catalog: Any, n: int, ncases: int, audit_events: int, *, end: datetime) -> Built:
    """The synthetic station in ``catalog`` (an archive.catalog.Catalog), in one
    transaction; ``end`` is the newest footage's time."""
    from archive.catalog import Blob, Device, DockSession, Officer, Recording
    from archive.catalog.models import Rendition, Segment
    from archive.catalog.types import table_of
    from archive.footage_model import RenditionFootage
    from records.models import Case, CaseStage, ExportRequest

    started = time.perf_counter()
    p = _Plan(n, ncases, end)
    links, events = _links(p), _case_events(p)
    requests, decisions = _exports(p)
    bound = {"caselink": links, "caseevent": events, "exportdecision": decisions,
             "hold": _holds(p), "retentionaction": _retention(p, end)}
    plain: list[tuple[Any, Iterable[dict[str, Any]]]] = [
        (Device, _devices(p)), (Officer, _officers(p)), (DockSession, _sessions(p)),
        (Blob, _blobs(p)), (Recording, _recordings(p)), (Rendition, _renditions(p)),
        (Segment, _segments(p)), (RenditionFootage, _footage(p)), (Case, _cases(p)),
        (CaseStage, _stages(p)), (ExportRequest, iter(requests))]
    with catalog.transaction() as s:
        conn = s.connection()
        for model, made in plain:
            for batch in _chunks(made):
                conn.execute(table_of(model).insert(), batch)
        for name, rows in bound.items():
            for batch in _chunks(rows):
                conn.execute(SQLModel.metadata.tables[name].insert(), batch)
        count = _bind_all(s, bound, _reads(p, audit_events, end))
    west = {p.case_ids[c] for c in range(1, ncases, 2) if _sensitivity(c) == "none"}
    # An open unlabelled 城西中队 case with 3 links, one of them to footage of no other
    # kind of case: every user may see both.
    c, recording = next((c, r) for c in range(5, ncases, 4) if _sensitivity(c) == "none"
                        and c % 3 and (r := _visible_to_all(links, p.case_ids[c], west)))
    return Built(recordings=n, cases=ncases, links=len(links), exports=len(requests),
                 holds=len(bound["hold"]), audit_events=count,
                 seconds=time.perf_counter() - started, officer=OFFICERS[12],
                 case_number=p.case_number(c), case_id=p.case_ids[c], recording=recording,
                 export_id=next(r["id"] for r in requests if r["case_id"] in west))
