"""The chain-of-custody report (证据保管链): one recording, an export's, or a case's.

For each recording: its identity and digests, the camera, officer and dock session that
brought it in (offload times, recorded clock drift), its renditions with their signed
manifests' Merkle roots, the fixity checks of its bytes; then every audit event about
it (access, links, exports, approvals, refusals) with actor and time. Labels apply: an
event naming a case or recording the reader may not see gets no line (only a count),
and links to such cases are left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from archive.audit.query import MAX_LIMIT, EventQuery, find_events
from archive.catalog import Catalog, Recording
from archive.catalog.models import Device, DockSession, Officer, Rendition
from archive.fixity import FixityCheck
from records.casebook import Casebook, LinkView
from records.pdfdoc import ReportDoc, Section, Table, rows
from records.permissions import Actor
from records.reports import Made, made_facts, signature_section, when


@dataclass(frozen=True, slots=True, kw_only=True)
class CustodyItem:
    recording: Recording
    session: DockSession | None
    device: Device | None
    officer: Officer | None
    renditions: tuple[Rendition, ...]
    fixity: tuple[FixityCheck, ...]
    links: tuple[tuple[str, LinkView], ...]  # (case number, link) of cases one may see


@dataclass(frozen=True, slots=True, kw_only=True)
class CustodyFacts:
    scope: str  # what was asked for, for the title block
    items: tuple[CustodyItem, ...]
    events: tuple[dict[str, Any], ...]  # the visible events, by seq
    hidden_events: int


def load_items(catalog: Catalog, book: Casebook, actor: Actor,
               recording_ids: Sequence[str]) -> tuple[CustodyItem, ...]:
    """The catalog's facts of each recording (the reader was checked for each)."""
    cases = {c.id: c for c in book.cases()}
    links = book.links(recording_ids=list(recording_ids))
    out = []
    with Session(catalog.engine) as s:
        for rid in recording_ids:
            rec = s.get(Recording, rid)
            if rec is None:
                continue
            session = s.get(DockSession, rec.session_id)
            renditions = tuple(s.exec(select(Rendition).where(Rendition.recording_id == rid)
                                      .order_by(col(Rendition.created_at))))
            blobs = [rec.blake3, *(r.manifest_blake3 for r in renditions if r.manifest_blake3)]
            fixity = tuple(s.exec(select(FixityCheck).where(col(FixityCheck.blake3).in_(blobs))
                                  .order_by(col(FixityCheck.at))))
            seen = tuple((cases[x.case_id].number, x) for x in links
                         if x.recording_id == rid and actor.sees(
                             unit=cases[x.case_id].unit,
                             sensitivity=cases[x.case_id].sensitivity))
            out.append(CustodyItem(
                recording=rec, session=session, device=s.get(Device, rec.device_serial),
                officer=s.get(Officer, rec.officer_id) if rec.officer_id else None,
                renditions=renditions, fixity=fixity, links=seen))
    return tuple(out)


def load_events(catalog: Catalog, subjects: Iterable[str], *, upto: int,
                ) -> list[dict[str, Any]]:
    """Every event before ``upto`` (the tree head's size) naming one of ``subjects``."""
    found: dict[int, dict[str, Any]] = {}
    for subject in dict.fromkeys(subjects):
        after: int | None = None
        while True:
            page = find_events(catalog.engine, EventQuery(subject=subject, after=after,
                                                          limit=MAX_LIMIT))
            found.update((e["seq"], e) for e in page.events if e["seq"] < upto)
            if page.next_after is None:
                break
            after = page.next_after
    return [found[k] for k in sorted(found)]


def visible_events(book: Casebook, actor: Actor, events: Sequence[dict[str, Any]],
                   ) -> tuple[tuple[dict[str, Any], ...], int]:
    """The events whose every governing case the reader may see, and how many not."""
    governing = book.governing_each([e["subjects"] for e in events])
    shown = tuple(e for e, cases in zip(events, governing, strict=True)
                  if actor.sees_every(cases))
    return shown, len(events) - len(shown)


# ------------------------------------------------------------------ the document


def _identity(item: CustodyItem, made: Made) -> Table:
    rec, ses, z = item.recording, item.session, made.zone
    drift = None if ses is None or ses.clock_drift_s is None else f"{ses.clock_drift_s:+.1f} s"
    pairs = [("原始文件 / original", rec.original_display), ("类型 / kind", rec.kind),
             ("大小 / size", f"{rec.size} bytes"), ("BLAKE3", rec.blake3),
             ("SHA-256", rec.sha256), ("拍摄开始 / camera start", when(rec.camera_start, z)),
             ("状态 / status", " ".join([rec.status, *rec.flags])),
             ("记录仪 / camera", f"{rec.device_serial} "
                                f"({item.device.camera_model if item.device else '-'})"),
             ("执法人员 / officer", rec.officer_id or "-"),
             ("采集站 / dock", "-" if ses is None else
              f"{ses.station_id} bay {ses.bay or '-'} session {ses.id}"),
             ("移交 / offload", "-" if ses is None else
              f"{when(ses.started_at, z)} – {when(ses.ended_at, z)} ({ses.outcome or '-'})"),
             ("入库 / ingested", when(rec.ingested_at, z)),
             ("记录仪时钟偏差 / camera clock drift", drift or "未记录 / not recorded")]
    return Table(header=("项目 / item", "内容 / value"), rows=rows(pairs), widths=(1, 3))


def _renditions(item: CustodyItem, made: Made) -> Table:
    return Table(header=("转码 / rendition", "状态 / status", "清单 / manifest BLAKE3",
                         "Merkle root", "密钥 / key", "时间 / at"),
                 rows=rows([(r.id, f"{r.status} {r.kind or ''}", r.manifest_blake3,
                             r.merkle_root, r.key_id, when(r.created_at, made.zone))
                            for r in item.renditions]),
                 widths=(1, 0.7, 1.6, 1.6, 1, 1.1))


def _fixity(item: CustodyItem, made: Made) -> Table:
    return Table(header=("时间 / at", "对象 / blob", "结果 / result", "摘要 / digests"),
                 rows=rows([(when(f.at, made.zone), f.blake3, "ok" if f.ok else f.code,
                             f.digests) for f in item.fixity]),
                 widths=(1.2, 2.4, 0.8, 0.8))


def _links(item: CustodyItem, made: Made) -> tuple[str, ...]:
    out = []
    for number, x in item.links:
        gone = "" if x.removed is None else (
            f"; 已解除 unlinked by {x.removed.actor} {when(x.removed.at, made.zone)}: "
            f"{x.removed.reason}")
        out.append(f"{number} · {x.stage} · {x.actor} {when(x.at, made.zone)}: {x.reason}{gone}")
    return tuple(out)


def _details(event: dict[str, Any]) -> str:
    text = json.dumps(event["details"], ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 240 else text[:237] + "…"


def _events(facts: CustodyFacts, made: Made) -> Section:
    table = Table(header=("序号 / seq", "时间 / at", "操作人 / actor", "操作 / action",
                          "详情 / details", "leaf hash"),
                  rows=rows([(e["seq"], when(e["at"], made.zone), e["actor"], e["action"],
                              _details(e), str(e["leaf_hash"])[:16])
                             for e in facts.events]),
                  widths=(0.5, 1.2, 1, 1.1, 2.6, 0.9))
    hidden = (f"另有 {facts.hidden_events} 条事件涉及您无权查看的记录，未列出 / "
              f"{facts.hidden_events} event(s) about records you may not see are not shown",
              ) if facts.hidden_events else ()
    return Section(title="访问、关联、导出与审批 / access, links, exports, approvals",
                   lines=hidden, tables=(table,))


def custody_doc(facts: CustodyFacts, made: Made) -> ReportDoc:
    sections: list[Section] = []
    for item in facts.items:
        rid = item.recording.id
        sections += [
            Section(title=f"录像 / recording {rid}", tables=(_identity(item, made),)),
            Section(title=f"案件关联 / case links ({rid[:12]})", lines=_links(item, made)),
            Section(title=f"转码与签名清单 / renditions ({rid[:12]})",
                    tables=(_renditions(item, made),)),
            Section(title=f"固定性检查 / fixity checks ({rid[:12]})",
                    tables=(_fixity(item, made),))]
    facts_block = (("范围 / scope", facts.scope),
                   ("录像数 / recordings", str(len(facts.items))), *made_facts(made))
    return ReportDoc(title="证据保管链报告 / Chain-of-custody report", facts=facts_block,
                     sections=(*sections, _events(facts, made), signature_section(made)),
                     footer=f"evidock custody {facts.scope} · audit head {made.head['size']}",
                     meta={"subject": f"custody {facts.scope}", "author": made.by})


__all__ = ["CustodyFacts", "CustodyItem", "custody_doc", "load_events", "load_items",
           "visible_events"]
