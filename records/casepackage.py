"""The ``case/`` bag of a case export (layout: :mod:`integrity.casebag`).

Written into the run's staging beside the packages, after them: the case, its links
(stage, range, reason, who, when), stages, documents (copied from the store and hashed
on the way out), the approved request, the packages' directories and export ids, all in
``case.json`` signed by the station; and ``index.html``, the one page a person opens
first: every item with its times in the station's zone, officer, camera, range, stage,
reason and its package's files with their SHA-256, and how to verify.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from archive.keystore import StationKeys
from archive.store import ContentStore
from integrity import casebag
from integrity import manifest as mf
from integrity.digest import copy_and_hash
from integrity.errors import DigestMismatch
from records import index_html
from records.bagwriter import write_bag
from records.casebook import Casebook, CaseView
from records.exportbook import Package

_UNSAFE = re.compile(r"[/\\\0\x00-\x1f]")


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def write_case_record(*, at: Path, book: Casebook, store: ContentStore, keys: StationKeys,
                      case_id: str, packages: Sequence[tuple[Package, Path]],
                      provenance: dict[str, object], zone: tzinfo, station_id: str,
                      now: datetime) -> None:
    """Write ``at`` (the ``case/`` bag); ``packages``: each with its staged directory."""
    case = book.case(case_id)
    data = at / "data"
    (data / "keys").mkdir(parents=True)
    documents = _documents(book, store, case_id, data)
    links = {link.id: link for link in book.links(case_id=case_id)}
    doc: dict[str, object] = {
           "format": casebag.FORMAT, "case": case.to_json(), "station_id": station_id,
           "created_at": mf.format_utc(now), "request": provenance,
           "links": [links[p.item.link_id].to_json() for p, _ in packages
                     if p.item.link_id in links],
           "stages": [{"stage": s.stage, "start_at": _iso(s.start_at),
                       "end_at": _iso(s.end_at), "by": s.actor, "note": s.note,
                       "at": _iso(s.at)} for s in book.stages(case_id)],
           "documents": documents,
           "packages": [{"dir": p.path.name, "export_id": p.export_id,
                         "recording_id": p.item.recording_id} for p, _ in packages]}
    raw = _json(doc)
    (data / "case.json").write_bytes(raw)
    (data / "case.sig.json").write_bytes(casebag.sign(raw, keys.load()))
    (data / "keys" / "keyring.json").write_bytes(_json(keys.keyring().to_dict()))
    (data / "index.html").write_bytes(_index(book, case, doc, packages, zone))
    write_bag(at, bag_id=f"case-{provenance.get('request_id')}", day=now.date(),
              keypair=keys.load())


def _documents(book: Casebook, store: ContentStore, case_id: str,
               data: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    folder = data / "documents"
    for n, row in enumerate(book.attachments(case_id), 1):
        folder.mkdir(exist_ok=True)
        name = f"{n:02d}-{_UNSAFE.sub('_', row.filename).lstrip('.') or 'document'}"
        with open(store.path_for(row.blake3), "rb") as src, \
                open(folder / name, "wb") as dest:
            digests = copy_and_hash(src, dest)
        if digests.blake3 != row.blake3 or digests.sha256 != row.sha256:
            raise DigestMismatch(f"stored document {row.filename} does not match the "
                                 "catalog; run `evidock fixity`", expected=row.blake3,
                                 actual=digests.blake3)
        out.append({"file": f"documents/{name}", "filename": row.filename,
                    "description": row.description, "size": row.size,
                    "blake3": row.blake3, "sha256": row.sha256, "by": row.actor,
                    "at": _iso(row.at)})
    return out


def _index(book: Casebook, case: CaseView, doc: dict[str, object],
           packages: Sequence[tuple[Package, Path]], zone: tzinfo) -> bytes:
    def local(when: datetime | None) -> str:
        return "-" if when is None else when.astimezone(zone).isoformat(" ")
    recs = book.recordings(p.item.recording_id for p, _ in packages)
    links = {link.id: link for link in book.links(case_id=case.id)}
    items = [["package / 证据包", "recording / 录像", "kind / 类型", "officer / 警号",
              "camera / 记录仪", "recorded at / 拍摄时间", "range / 时段", "stage / 阶段",
              "reason / 关联理由", "export / 导出编号"]]
    files: list[index_html.IndexFile] = []
    for package, staged in packages:
        rec, link = recs[package.item.recording_id], links.get(package.item.link_id or -1)
        span = "whole / 全部" if package.item.end_us == 0 else \
            f"{package.item.start_us / 1e6:.3f}-{package.item.end_us / 1e6:.3f} s"
        items.append([package.path.name, rec.id, rec.kind, rec.officer_id or "-",
                      rec.device_serial, local(rec.camera_start), span,
                      link.stage if link else "-", link.reason if link else "-",
                      package.export_id])
        files += _package_files(package.path.name, staged)
    documents = doc["documents"]
    assert isinstance(documents, list)
    files += [index_html.IndexFile(path=f"{casebag.NAME}/data/{d['file']}", role="document",
                                   size=int(d["size"]), sha256=str(d["sha256"]))
              for d in documents]
    stages = [["stage / 阶段", "from / 自", "to / 至"]] + [
        [s.stage, local(s.start_at), local(s.end_at)] for s in book.stages(case.id)]
    facts = [("case / 案件", case.number), ("type / 类型", case.case_type),
             ("unit / 单位", case.unit), ("title / 案由", case.title),
             ("verify / 校验", "evidock verify THIS_FOLDER --key station.pem")]
    request = doc["request"]
    return index_html.render(title=f"evidock 案件证据包 / case export {facts[0][1]}",
                             facts=facts, files=files,
                             request=request if isinstance(request, dict) else None,
                             tables=[("Items / 证据项", items), ("Stages / 办案阶段", stages)])


def _package_files(name: str, staged: Path) -> list[index_html.IndexFile]:
    """A package's payload as its bag lists it (SHA-256), each with its role."""
    roles = {"segments": "segment", "derivative": "derivative", "originals": "original"}
    out = []
    for line in (staged / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines():
        digest, _, rel = line.partition(" ")
        parts = rel.split("/")
        role = roles.get(parts[1], "record") if len(parts) > 2 else "record"
        out.append(index_html.IndexFile(path=f"{name}/{rel}", role=role,
                                        size=(staged / rel).stat().st_size, sha256=digest))
    return out


__all__ = ["write_case_record"]
