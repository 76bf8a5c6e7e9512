"""Write a clip package: the covering segments, signed manifest, proofs, keys, BagIt.

Segments are copied from the store, never re-encoded, and each copy is hashed on the way
out and compared with the catalog, so a package can only carry the archived bytes. What
the export claims (clip.json: range, segments and their digests, request, approval) is
signed by the station. A package is assembled and synced in a staging directory
(:meth:`Exporter.stage`); its ``export`` row is committed before it is renamed into
place (:func:`publish`), so a crash leaves a recorded export or nothing outside staging.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from archive.catalog import Catalog, Recording
from archive.keystore import StationKeys
from archive.store import ContentStore, fsync_dir
from integrity import bundle, clipsign, derivative
from integrity import manifest as mf
from integrity import package as pkg
from integrity import timestampcheck as stamps
from integrity.digest import copy_and_hash
from integrity.errors import EvidockError, NotFound
from integrity.keys import Keyring
from records import index_html, originals, trim
from records.bagwriter import write_bag
from records.clipsource import ClipSource, ExportRow, RecordingFacts, StoreSource
from records.models import Export
from records.package_readme import readme
from records.timestamps_file import timestamps_file

_S = TypeVar("_S", bound=Any)
#: Writes the original camera file into a package's data/ (digest-checked on the way);
#: returns its clip.json entry.
OriginalWriter = Callable[[Path], dict[str, object]]

#: A package made by another service than the station: that service's public keys.
EXPORTER_KEYRING = pkg.EXPORTER_KEYRING
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")

def parse_offset(text: str, camera_start: datetime | None) -> int:
    """A time in the recording, in µs: seconds ('95.5'), clock ('1:35'), or ISO datetime."""
    text = text.strip()
    try:
        return round(float(text) * 1e6)
    except (ValueError, OverflowError):
        pass
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        return round(((int(hours or 0) * 60 + int(minutes)) * 60 + float(seconds)) * 1e6)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NotFound(f"cannot read time {text!r}: use seconds, H:MM:SS or ISO 8601",
                       value=text) from None
    if moment.tzinfo is None or camera_start is None:
        raise NotFound("an absolute time needs a zone and a recording with a known start",
                       value=text)
    return round((moment - camera_start).total_seconds() * 1e6)


def covering(segments: Sequence[_S], start_us: int, end_us: int) -> list[_S]:
    """The segments that overlap [start, end); at least one if the range touches any."""
    if end_us <= start_us:
        raise NotFound("the clip's end must come after its start", start_us=start_us,
                       end_us=end_us)
    chosen = [s for s in segments if s.end_us > start_us and s.start_us < end_us]
    if not chosen:
        raise NotFound("no segment overlaps the requested range", start_us=start_us,
                       end_us=end_us)
    return chosen


@dataclass(frozen=True)
class ExportResult:
    export_id: str
    path: Path
    segments: tuple[str, ...]
    start_us: int
    end_us: int


@dataclass(frozen=True)
class StagedPackage:
    """A package assembled and synced to disk in a staging directory; its ``export`` row
    is not committed yet. Nothing of it is outside the staging directory."""

    export: ExportRow
    path: Path
    segments: tuple[str, ...]


def publish(staged: Path, out: Path) -> None:
    """Rename a staged package (or a case export's staging directory) into ``out``, which
    may exist only as an empty directory, and make the rename durable."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    staged.rename(out)
    fsync_dir(out.parent)


def sync_tree(root: Path) -> None:
    """fsync every file and directory below ``root`` (and it): after this, a crash
    leaves the package whole, so committing its row first is safe."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir():
            fsync_dir(path)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(root)


class Exporter:
    def __init__(self, *, store: ContentStore, catalog: Catalog, keys: StationKeys,
                 clock: Callable[[], datetime], station_id: str,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 zone: tzinfo = UTC) -> None:
        self.store, self.catalog, self.keys = store, catalog, keys
        self.clock, self.station_id, self.new_id = clock, station_id, new_id
        self.zone = zone  # the station's: the times index.html shows
        #: (recording id, request id) → data/audit-bundle.json (records/bundle.py); set
        #: by the export desk. None: a package without it (verify then says it is missing).
        self.bundler: Callable[[str, str | None], bytes] | None = None
        #: Asks the TSAs now for what waits (archive.timestamps.Stamper.run), so the
        #: bundle's fresh head can carry its token; set by wiring when TSAs are configured.
        self.stamp_now: Callable[[], object] | None = None
        #: Signs the derivative clip with C2PA content credentials in place, before its
        #: digests are taken (records/c2pa_sign.C2paSigner); set by wiring when on.
        self.c2pa: Callable[..., None] | None = None
        #: Set when the packages are made by another service than the footage's station
        #: (``"center"``): this service's key signs clip.json, the package says so.
        self.exported_by: str | None = None

    def export(self, recording_id: str, *, start: str, end: str, out: Path, actor: str,
               purpose: str = "", request_id: str | None = None,
               provenance: dict[str, object] | None = None,
               exact: bool = False, with_originals: bool = False) -> ExportResult:
        """Stage, record and publish one package (the one-call form). ``provenance``
        (the approved request) goes into the signed clip.json."""
        rec, rendition, _segs = self.catalog.rendered(recording_id)
        whole = rendition is None and rec.kind in originals.NO_RENDITION  # a photo: no range
        start_us = 0 if whole else parse_offset(start, rec.camera_start)
        end_us = 0 if whole else parse_offset(end, rec.camera_start)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise EvidockError(f"{out} exists and is not an empty directory", path=str(out))
        tmp = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex}")
        try:
            staged = self.stage(recording_id, start_us=start_us, end_us=end_us, at=tmp,
                                destination=out, actor=actor, purpose=purpose,
                                request_id=request_id, provenance=provenance,
                                exact=exact, with_originals=with_originals)
            with self.catalog.transaction() as s:  # recorded before it is in place
                s.add(staged.export)
            publish(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return ExportResult(staged.export.id, out, staged.segments, start_us, end_us)

    def stage(self, recording_id: str, *, start_us: int, end_us: int, at: Path,
              destination: Path, actor: str, purpose: str = "",
              request_id: str | None = None,
              provenance: dict[str, object] | None = None,
              exact: bool = False, with_originals: bool = False) -> StagedPackage:
        """Write the package of [start_us, end_us) into ``at`` (which must not exist) and
        sync it; the Export row it returns names ``destination``. Removes ``at`` on error.
        ``exact``: no covering segment, only the trimmed derivative (no byte outside);
        ``with_originals``: the camera file too. A photo (no rendition): the original."""
        rec, rendition, segs = self.catalog.rendered(recording_id)
        if rendition is None:
            return self._stage_original(rec, at=at, destination=destination, actor=actor,
                                        purpose=purpose, request_id=request_id,
                                        provenance=provenance)
        assert rendition.manifest_blake3 is not None
        source = StoreSource(store=self.store, rec=rec, rendition=rendition, segments=segs,
                             keyring=self.keys.keyring(), manifest_bytes=self.store.path_for(
                                 rendition.manifest_blake3).read_bytes())
        return self.stage_from(source, start_us=start_us, end_us=end_us, at=at,
                               destination=destination, actor=actor, purpose=purpose,
                               request_id=request_id, provenance=provenance, exact=exact,
                               original=partial(originals.copy_original, self.store, rec)
                               if with_originals else None)

    def stage_from(self, source: ClipSource, *, start_us: int, end_us: int, at: Path,
                   destination: Path, actor: str, purpose: str = "",
                   request_id: str | None = None,
                   provenance: dict[str, object] | None = None, exact: bool = False,
                   original: OriginalWriter | None = None) -> StagedPackage:
        """:meth:`stage` of footage ``source`` supplies (the station's store, or the
        center's proven read-back); ``original``: writes the camera file into data/."""
        chosen = covering(source.segments, start_us, end_us)
        signed = mf.load_signed(source.manifest_bytes)
        export = source.row(id=self.new_id(), start_us=start_us, end_us=end_us,
                            segments=[s.index for s in chosen], destination=str(destination),
                            actor=actor, purpose=purpose, request_id=request_id,
                            created_at=self.clock())
        at.mkdir(parents=True)
        try:
            self._write(at, source=source, signed=signed, chosen=chosen, export=export,
                        provenance=provenance, exact=exact, original=original)
            sync_tree(at)
        except BaseException:
            shutil.rmtree(at, ignore_errors=True)
            raise
        return StagedPackage(export, at, () if exact else tuple(s.name for s in chosen))

    def _clip(self, rec: RecordingFacts, signed: mf.SignedManifest, chosen: list[Any],
              export: ExportRow, provenance: dict[str, object] | None, *,
              exact: bool) -> dict[str, object]:
        """What the export claims, all of it signed (integrity.clipsign)."""
        entries = {e.index: e for e in signed.manifest.entries()}
        original = next(o for o in signed.manifest.originals if o.recording_id == rec.id)
        return {"format": pkg.CLIP_FORMAT, "export_id": export.id, "recording_id": rec.id,
                "station_id": rec.station_id or self.station_id,
                "created_at": mf.format_utc(export.created_at),
                "range_us": [export.start_us, export.end_us], "original": original.to_dict(),
                "camera_start": rec.camera_start.isoformat() if rec.camera_start else None,
                "segments": [] if exact else [s.name for s in chosen],
                "exact": exact, "derivative": derivative.DOC, "key_id": signed.key_id,
                "selection": {"merkle_root": signed.manifest.merkle_root,
                              "segments": [entries[s.index].to_dict() for s in chosen]},
                "request": provenance, "timestamps": stamps.NAME,
                # signed: the verifier then requires data/audit-bundle.json
                **({"audit_bundle": bundle.NAME} if self.bundler is not None else {}),
                **self._exporter_claim()}

    def _exporter_claim(self) -> dict[str, object]:
        """A package another service made (the center) says so, signed: the verifier
        then checks clip.json against that service's key, the manifest the station's."""
        if self.exported_by is None:
            return {}
        return {"exporter": {"role": self.exported_by, "id": self.station_id,
                             "key_id": self.keys.load().key_id, "keyring": EXPORTER_KEYRING}}

    def _write(self, tmp: Path, *, source: ClipSource, signed: mf.SignedManifest,
               chosen: list[Any], export: ExportRow,
               provenance: dict[str, object] | None = None, exact: bool = False,
               original: OriginalWriter | None = None) -> None:
        data = tmp / "data"
        (data / "keys").mkdir(parents=True)
        copied = [original(data)] if original else []
        sources = tmp / ".sources"  # an exact package's segments: trimmed, never packaged
        (sources if exact else data / "segments").mkdir()
        for seg in chosen:
            source.copy_segment(seg, (sources if exact else data / "segments") / seg.name)
        self._derive(data, sources if exact else data / "segments", signed=signed,
                     chosen=chosen, export=export, audio=source.audio, request=provenance)
        shutil.rmtree(sources, ignore_errors=True)
        proofs = {} if exact else {s.name: signed.manifest.inclusion_proof(s.index).to_dict()
                                   for s in chosen}
        clip = _json({**self._clip(source.facts, signed, chosen, export, provenance,
                                   exact=exact), "originals": copied})
        self._write_files(tmp, source.facts, export, keyring=source.keyring,
                          provenance=provenance, clip=clip, files={
            "manifest.json": source.manifest_bytes,
            "proofs.json": _json({"merkle_root": signed.manifest.merkle_root,
                                  "proofs": proofs})})

    def _write_files(self, tmp: Path, rec: RecordingFacts, export: ExportRow, *,
                     keyring: Keyring, provenance: dict[str, object] | None, clip: bytes,
                     files: dict[str, bytes]) -> None:
        """The common files (README, signed clip.json, keyring, audit bundle, index)
        beside ``files``, then the bag. ``keyring``: the manifest signer's."""
        bundled = self.bundler(rec.id, export.request_id) if self.bundler else None
        key = self.keys.load()
        if self.exported_by is not None:  # the exporting service's own keys, apart
            files = {**files, EXPORTER_KEYRING: _json(self.keys.keyring().to_dict())}
        files = {"README.txt": readme(key.alg, self.exported_by).encode("utf-8"),
                 "clip.json": clip,
                 clipsign.SIG_FILE: clipsign.sign_clip(clip, key),
                 "keys/keyring.json": _json(keyring.to_dict()),
                 **({bundle.NAME: bundled} if bundled is not None else {}), **files,
                 stamps.NAME: timestamps_file(self.catalog, bundle=bundled,
                                              manifest=files.get("manifest.json"),
                                              stamp_now=self.stamp_now)}
        (tmp / "data" / "keys").mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (tmp / "data" / name).write_bytes(content)
        (tmp / "data" / "index.html").write_bytes(self._index(tmp, rec, export, provenance))
        write_bag(tmp, bag_id=export.id, day=export.created_at.date(),
                  keypair=self.keys.load())

    def _stage_original(self, rec: Recording, *, at: Path, destination: Path, actor: str,
                        purpose: str, request_id: str | None,
                        provenance: dict[str, object] | None) -> StagedPackage:
        """A photo's (log's, other file's) package: the original itself, signed for."""
        rendition = originals.placeholder_rendition(self.catalog, rec)
        export = Export(id=self.new_id(), recording_id=rec.id, rendition_id=rendition.id,
                        start_us=0, end_us=0, segments=[], destination=str(destination),
                        actor=actor, purpose=purpose, request_id=request_id,
                        created_at=self.clock())
        at.mkdir(parents=True)
        try:
            (at / "data").mkdir()
            copied = originals.copy_original(self.store, rec, at / "data")
            clip = _json({"format": pkg.CLIP_FORMAT, "export_id": export.id,
                          "recording_id": rec.id, "station_id": self.station_id,
                          "created_at": mf.format_utc(export.created_at), "kind": rec.kind,
                          "range_us": [0, 0], "original": originals.reference(rec),
                          "camera_start": rec.camera_start.isoformat()
                          if rec.camera_start else None, "rendition": None,
                          "segments": [], "originals": [copied], "request": provenance,
                          "timestamps": stamps.NAME,
                          **({"audit_bundle": bundle.NAME} if self.bundler is not None
                             else {})})
            self._write_files(at, RecordingFacts.of(rec), export,
                              keyring=self.keys.keyring(), provenance=provenance, clip=clip,
                              files={})
            sync_tree(at)
        except BaseException:
            shutil.rmtree(at, ignore_errors=True)
            raise
        return StagedPackage(export, at, ())

    def _derive(self, data: Path, sources: Path, *, signed: mf.SignedManifest,
                chosen: list[Any], export: ExportRow, audio: bool,
                request: dict[str, object] | None = None) -> None:
        """data/derivative/: the range trimmed from ``sources`` and its signed provenance."""
        ext = Path(chosen[0].name).suffix.lstrip(".")
        out = data / derivative.DIR / f"clip.{ext}"
        out.parent.mkdir()
        made = trim.trim([sources / s.name for s in chosen], first_start_us=chosen[0].start_us,
                         start_us=export.start_us, end_us=export.end_us,
                         kind="audio" if audio else "video", ext=ext, out=out)
        if self.c2pa is not None:  # before the digests: the station signs the C2PA'd file
            self.c2pa(out, export=export, signed=signed, made=made, request=request)
        with open(out, "rb") as fh:
            digests = copy_and_hash(fh, None)
        doc = _json({"format": derivative.FORMAT, "label": derivative.LABEL,
                     "file": f"{derivative.DIR}/{out.name}", "size": out.stat().st_size,
                     "blake3": digests.blake3, "sha256": digests.sha256,
                     "recording_id": export.recording_id, "export_id": export.id,
                     "range_us": [export.start_us, export.end_us],
                     "merkle_root": signed.manifest.merkle_root,
                     "sources": derivative.sources_of(signed.manifest, export.start_us,
                                                      export.end_us),
                     "trim": {"offset_us": made.offset_us, "duration_us": made.duration_us,
                              "method": made.method, "tool": made.tool,
                              "argv": list(made.argv)},
                     "created_at": mf.format_utc(export.created_at)})
        (data / derivative.DOC).write_bytes(doc)
        (data / derivative.SIG).write_bytes(derivative.sign(doc, self.keys.load()))

    def _index(self, tmp: Path, rec: RecordingFacts, export: ExportRow,
               provenance: dict[str, object] | None) -> bytes:
        def local(when: datetime | None) -> str:
            return "-" if when is None else when.astimezone(self.zone).isoformat(" ")
        roles = {"segments": "segment", derivative.DIR: "derivative", "originals": "original"}
        files = []
        for path in sorted(p for p in (tmp / "data").rglob("*") if p.is_file()):
            rel = pkg.relpath(tmp, path)
            role = roles.get(rel.split("/")[1] if rel.count("/") > 1 else "", "record")
            files.append(index_html.IndexFile(path=rel, role=role, size=path.stat().st_size,
                         sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
        facts = [("recording / 录像", rec.id), ("officer / 警号", rec.officer_id or "-"),
                 ("camera / 记录仪", rec.device_serial),
                 ("recorded at / 拍摄时间", local(rec.camera_start)),
                 ("approved range / 批准时段", f"{export.start_us / 1e6:.3f} s - "
                                           f"{export.end_us / 1e6:.3f} s"),
                 ("original BLAKE3 / 原始文件摘要", rec.blake3),
                 ("original SHA-256", rec.sha256 or "-"),
                 *([("exported by / 导出单位", f"{self.exported_by} {self.station_id}")]
                   if self.exported_by else []),
                 ("exported at / 导出时间", local(export.created_at)),
                 ("export / 导出编号", export.id)]
        return index_html.render(title=f"evidock 证据包 / evidence package {export.id}",
                                 facts=facts, files=files, request=provenance)


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"
