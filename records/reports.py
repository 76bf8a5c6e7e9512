"""Signed report PDFs: what they share, and the coverage report (法制审核 file).

A report is a pure :class:`~records.pdfdoc.ReportDoc` built from facts already checked
and loaded by a desk, printed by :func:`records.pdfdoc.render_pdf`, then signed by the
station (:mod:`integrity.reportsign`: a detached ``.sig.json`` naming the PDF's digests
and the signed audit tree head the report was made against, which the report prints).
Every time people read is in the station's zone with its offset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from records.pdfdoc import ReportDoc, Section, Table, rows
from records.reviews import ReviewView

STATUS_ZH = {"covered": "已覆盖 covered", "missing": "缺失 missing",
             "gaps": "有间断 gaps", "not_applicable": "不适用 n/a"}
VERIFY_HINT = ("离线验证 / verify offline: evidock verify-report <report.pdf> --key "
               "<station.pem>（签名文件 / signature file: <report.pdf>.sig.json）")


@dataclass(frozen=True, slots=True, kw_only=True)
class Made:
    """Who made a report, when, and against which signed audit tree head."""

    at: datetime
    by: str  # the evidock user
    station_id: str
    head: Mapping[str, Any]  # a signed tree head's dict (size, root, time, key_id, ...)
    zone: tzinfo


@dataclass(frozen=True, slots=True)
class SignedReport:
    pdf: bytes
    signature: bytes  # the .sig.json bytes
    statement: dict[str, Any]

    def to_json(self) -> dict[str, object]:
        """What the service answers besides the bytes (digests, head)."""
        return {k: self.statement[k] for k in ("report", "subjects", "size", "sha256",
                                               "blake3", "made_at", "made_by",
                                               "audit_head")}


def when(value: datetime | str | None, zone: tzinfo) -> str:
    """``2026-12-01 09:00:00+08:00`` (None: "-")."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(zone).isoformat(sep=" ", timespec="seconds")


def made_facts(made: Made) -> tuple[tuple[str, str], ...]:
    head = made.head
    return (("生成时间 / made at", when(made.at, made.zone)),
            ("生成人 / made by", made.by),
            ("站点 / station", made.station_id),
            ("审计树头 / audit tree head",
             f"size {head['size']}, root {head['root']}, signed {when(head['time'], made.zone)}"),
            ("签名密钥 / signing key", str(head["key_id"])))


def signature_section(made: Made) -> Section:
    # The key that signed the head signs the report: name its suite (key id "<alg>:…").
    gm = str(made.head["key_id"]).startswith("sm2:")
    zh, en = ("SM2（国密，GB/T 32918）", "SM2 (GB/T 32918)") if gm else ("Ed25519", "Ed25519")
    return Section(title="签名与验证 / signature and verification", lines=(
        f"本报告的字节由站点 {zh} 密钥签名（分离签名文件），签名同时指明上述审计树头；"
        "报告中的每一事件都在该树头所覆盖的审计日志中。",
        f"The station's {en} key signs this report's bytes (a detached signature file) "
        "together with the audit tree head above; every event shown is in the log that "
        "head covers.",
        VERIFY_HINT))


def reviews_section(reviews: Sequence[ReviewView], zone: tzinfo) -> Section:
    return Section(title="法制审核决定 / review decisions", tables=(Table(
        header=("时间 / at", "审核人 / reviewer", "决定 / decision", "理由 / reason"),
        rows=rows([(when(r.at, zone), r.actor, r.decision, r.reason) for r in reviews]),
        widths=(1.3, 1, 0.8, 3)),), empty="尚无审核决定 / no decision yet")


# ------------------------------------------------------------------ coverage report


def _requirement(stage: Mapping[str, Any]) -> str:
    need = ("全过程 full process" if stage.get("full_process") else "必须 required"
            ) if stage.get("required") else "-"
    mode = stage.get("mode")
    return f"{need}\n记录方式 mode: {mode}" if mode else need


def _footage(stage: Mapping[str, Any], zone: tzinfo) -> str:
    out = []
    for f in stage.get("footage", ()):
        counts = "" if f.get("counts", True) else " (不计 not counted)"
        out.append(f"{str(f['recording_id'])[:12]} {when(f.get('start'), zone)}–"
                   f"{when(f.get('end'), zone)[11:]}{counts}")
    return "\n".join(out) or "-"


def _notes(stage: Mapping[str, Any]) -> str:
    decision = stage.get("decision")
    said = [f"{'适用' if decision.get('applicable') else '不适用'}: {decision.get('reason')} "
            f"({decision.get('actor')})"] if isinstance(decision, Mapping) else []
    return "\n".join([*said, *map(str, stage.get("notes", ()))]) or "-"


def _stage_tables(case: Mapping[str, Any], zone: tzinfo) -> tuple[Table, Table]:
    stages = case.get("stages", ())
    status = Table(header=("环节 / stage", "要求 / requirement", "状态 / status",
                           "音像 / footage", "说明 / notes"),
                   rows=rows([(s["stage"], _requirement(s),
                               STATUS_ZH.get(str(s["status"]), str(s["status"])),
                               _footage(s, zone), _notes(s)) for s in stages]),
                   widths=(1, 1.1, 0.9, 2.2, 1.6))
    gaps = Table(header=("环节 / stage", "开始 / start", "结束 / end", "类型 / kind",
                         "秒 / seconds"),
                 rows=rows([(s["stage"], when(g["start"], zone), when(g["end"], zone),
                             g["kind"], f"{float(g['seconds']):.0f}")
                            for s in stages for g in s.get("gaps", ())]),
                 widths=(1, 1.4, 1.4, 0.8, 0.6))
    return status, gaps


def coverage_doc(case: Mapping[str, Any], settings: Mapping[str, Any],
                 reviews: Sequence[ReviewView], made: Made) -> ReportDoc:
    """The coverage report of one case (``case``: the coverage report's JSON of it)."""
    zone = made.zone
    status, gaps = _stage_tables(case, zone)
    late = Table(header=("录像 / recording", "执法人员 / officer", "拍摄 / recorded",
                         "移交 / offloaded", "延迟(时) / delay h"),
                 rows=rows([(x["recording_id"], x.get("officer_id"),
                             when(x["recorded_at"], zone), when(x["offloaded_at"], zone),
                             x["delay_h"]) for x in case.get("late", ())]),
                 widths=(1.6, 0.8, 1.3, 1.3, 0.6))
    verdict = "完整 complete" if case.get("complete") else "不完整 INCOMPLETE"
    facts = (("案件编号 / case", str(case["number"])),
             ("类型 · 单位 · 状态 / type · unit · status",
              f"{case['type']} · {case['unit']} · {case['status']}"),
             ("结论 / verdict", verdict),
             ("间断容忍 · 移交期限 / gap tolerance · offload deadline",
              f"{settings.get('gap_tolerance_s')} s · {settings.get('offload_deadline_h')} h"),
             *made_facts(made))
    unknown = tuple(f"{r}: 拍摄时间或时长未知 / camera time or duration unknown"
                    for r in case.get("unknown_time", ()))
    return ReportDoc(
        title="执法音像记录覆盖报告 / Coverage report（音像记录事项清单）",
        facts=facts,
        sections=(Section(title="各环节 / stages", tables=(status,)),
                  Section(title="间断 / gaps", tables=(gaps,)),
                  Section(title="逾期移交 / late offloads", tables=(late,)),
                  Section(title="时间未知 / unknown time", lines=unknown),
                  reviews_section(reviews, zone), signature_section(made)),
        footer=f"evidock coverage {case['number']} · audit head {made.head['size']}",
        meta={"subject": f"coverage {case['number']}", "author": made.by})


__all__ = ["STATUS_ZH", "Made", "SignedReport", "coverage_doc", "made_facts",
           "reviews_section", "signature_section", "when"]
