"""Make, hash, sign and store the archival rendition of a recording.

ffmpeg writes segments into a private staging directory; each is fsynced, hashed
(BLAKE3 + SHA-256) and re-read from the disk while ffmpeg cuts the next
(:mod:`ingest.cutting`), then all are linked into the content store like any blob once
ffmpeg has finished and they cover the original. The signed manifest is a blob too.
Rendition, segment and blob rows are committed in one transaction, so a rendition
either exists completely or not at all. Attempts are never edited: a failure is a row,
a later success is another row.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from archive.audit.log import AuditLog
from archive.catalog import Blob, Catalog, Recording
from archive.catalog.models import Rendition, Segment
from archive.footage_model import footage_of
from archive.keystore import StationKeys
from archive.store import ContentStore, Stager
from archive.timestamp_rows import MANIFEST, enqueue
from config import Settings
from ingest.cutting import LIST_ON_STDOUT, CutSegment, ProvenSegment, SegmentCutter
from ingest.media import MediaInfo, Prober
from ingest.rendition import RenditionPlan, output_pattern, plan_rendition, segment_argv
from ingest.tools import tool_version
from integrity import manifest as mf
from integrity.codes import Code
from integrity.digest import Digests
from integrity.errors import MediaError, RenditionFailed, RenditionIncomplete

DONE_STATES = ("ok", "none")


def check_coverage(cuts: list[CutSegment], info: MediaInfo | None, *,
                   duration_s: float | None = None) -> None:
    """The segments must span the original (its header's duration, or ``duration_s``
    when that is known better): a short tail means ffmpeg lost data."""
    expected_s = duration_s if duration_s is not None else info.duration_s if info else None
    if expected_s is None:
        return
    covered_us = cuts[-1].end_us - cuts[0].start_us
    expected_us = round(expected_s * 1e6)
    # Tolerance: AAC priming and the last frame's duration, well under half a second.
    if covered_us < expected_us - 500_000:
        raise RenditionIncomplete(f"segments cover {covered_us / 1e6:.3f} s of "
                                  f"{expected_us / 1e6:.3f} s",
                                  covered_us=covered_us, expected_us=expected_us)


def _finished(recording_id: str) -> SelectOfScalar[Rendition]:
    """The recording's finished rendition (ok or none), if any."""
    return select(Rendition).where(Rendition.recording_id == recording_id,
                                   col(Rendition.status).in_(DONE_STATES))


#: Links into the store at once after the cut (each waits for a directory fsync).
LINKERS = 4


class Renderer:
    def __init__(self, *, settings: Settings, store: ContentStore, catalog: Catalog,
                 prober: Prober, keys: StationKeys, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 ffmpeg_bin: str = "ffmpeg", audit: AuditLog | None = None) -> None:
        self.settings = settings
        # Every rendition attempt (made, failed, none) is an audit event in its transaction.
        self.audit = audit or AuditLog(catalog=catalog)
        self.store = store
        self.catalog = catalog
        self.prober = prober
        self.keys = keys
        self.clock = clock
        self.new_id = new_id
        self.ffmpeg_bin = ffmpeg_bin

    def done(self, recording_id: str) -> Rendition | None:
        with Session(self.catalog.engine) as s:
            return s.exec(_finished(recording_id)).first()

    def pending(self) -> list[Recording]:
        """Recordings with no finished rendition (never tried, or only failed tries)."""
        with Session(self.catalog.engine) as s:
            finished = select(Rendition.recording_id).where(
                col(Rendition.status).in_(DONE_STATES))
            return list(s.exec(select(Recording).where(col(Recording.id).not_in(finished))
                               .order_by(col(Recording.ingested_at))))

    def untried(self, *, limit: int) -> list[Recording]:
        """Recordings no rendition was ever attempted for (a kill mid-rendition, a dock
        stopped before processing), oldest first. Failed attempts are not retried here:
        `evidock process --all` does that when a person asks."""
        with Session(self.catalog.engine) as s:
            tried = select(Rendition.recording_id)
            return list(s.exec(select(Recording).where(col(Recording.id).not_in(tried))
                               .order_by(col(Recording.ingested_at)).limit(limit)))

    def catch_up(self, *, first: set[str], limit: int) -> list[Rendition]:
        """Render ``first`` (a session's new recordings) if still pending, then up to
        ``limit`` recordings never tried: whatever an earlier kill left behind."""
        rows = [self.render(rec) for rec in self.pending() if rec.id in first]
        return rows + [self.render(rec) for rec in self.untried(limit=limit)]

    def render(self, recording: Recording) -> Rendition:
        """The recording's rendition; made now unless one is already finished."""
        existing = self.done(recording.id)
        if existing is not None:
            return existing
        try:
            info, duration_s = self._facts(recording)
        except MediaError as exc:  # a hung probe fails this rendition, not the whole run
            plan = RenditionPlan("fail", Code.E_RENDITION_TIMEOUT, exc.message)
            return self._record(recording, plan, status="failed", code=plan.code,
                                reason=f"probe: {exc.message}", info=None)
        plan = plan_rendition(kind=recording.kind, flags=tuple(recording.flags), info=info,
                              policy=self.settings.rendition)
        if plan.action in ("none", "fail"):
            return self._record(recording, plan, status="none" if plan.action == "none"
                                else "failed", code=plan.code, reason=plan.reason, info=info)
        try:
            return self._make(recording, plan, info, duration_s)
        except RenditionFailed as exc:
            return self._record(recording, plan, status="failed", code=exc.code,
                                reason=exc.message, info=info)

    def _facts(self, recording: Recording) -> tuple[MediaInfo | None, float | None]:
        """The original's probe facts, and the duration its segments must cover."""
        if recording.kind not in ("video", "audio"):
            return None, None
        path = self.store.path_for(recording.blake3)
        info = self._kept_probe(recording.id)
        if info is None:
            info, _ = self.prober.probe(path)
        if info is None or Code.F_DURATION_IMPLAUSIBLE not in recording.flags:
            return info, None
        # The header lies about the length (flagged at ingest): what the packets span is
        # what the segments must cover; the header's claim stays in the rendition's media.
        return info, self.prober.packet_span_s(path, timeout_s=self.settings.rendition.timeout_s)

    def _kept_probe(self, recording_id: str) -> MediaInfo | None:
        kept = self.catalog.recording_probe(recording_id)
        return None if kept is None else self.prober.reuse(kept.tool, kept.probe)

    def _make(self, recording: Recording, plan: RenditionPlan, info: MediaInfo | None,
              duration_s: float | None) -> Rendition:
        with self.store.stage() as stager:
            work = stager.directory / "r"
            work.mkdir()
            proven = self._cut(recording, plan, stager, work)
            check_coverage([p.cut for p in proven], info, duration_s=duration_s)
            entries, blobs = self._link_segments(proven, plan)
            signed = self._manifest(recording, plan, entries)
            manifest_blob = self._blob(stager.put(io.BytesIO(mf.dump_signed(signed)),
                                                  vouched=self._vouched))
        rendition = self._row(recording, plan, status="ok", code=plan.code, reason=plan.reason,
                              info=info, root=signed.manifest.merkle_root,
                              manifest=manifest_blob.blake3, key_id=signed.key_id)
        segments = [Segment(rendition_id=rendition.id, index=e.index, name=e.name,
                            start_us=e.start_us, end_us=e.end_us, size=e.size,
                            blake3=e.blake3) for e in entries]
        with self.catalog.transaction() as s:
            # Two makers of one rendition (a queued job handed on while its first worker
            # still ran): the first commit wins, the second adds nothing. Its segments are
            # the same blobs; only its manifest file stays in the store, never catalogued
            # (fixity reports it, E_FIXITY_UNEXPECTED: a trace of the race, not a loss).
            if (won := s.exec(_finished(recording.id)).first()) is not None:
                return won
            _add_new_blobs(s, [*blobs, manifest_blob])
            s.add(rendition)
            s.flush()
            s.add_all(segments)
            s.add(footage_of(rendition, segments))  # what statistics read (issue 18)
            self._audit(s, rendition, segments=len(segments))
            # Queued with the rendition: a trusted time for the manifest (archive/timestamps).
            enqueue(s.connection(), kind=MANIFEST, subject=manifest_blob.blake3,
                    sha256=manifest_blob.sha256, at=self.clock(),
                    claimed_at=datetime.fromisoformat(signed.manifest.created_at))
        return rendition

    def _cut(self, recording: Recording, plan: RenditionPlan, stager: Stager, work: Path,
             ) -> list[ProvenSegment]:
        policy = self.settings.rendition
        argv = segment_argv(plan, policy, ffmpeg_bin=self.ffmpeg_bin,
                            src=str(self.store.path_for(recording.blake3)),
                            out_pattern=output_pattern(work, plan), seg_list=LIST_ON_STDOUT)
        return SegmentCutter(stager=stager, timeout_s=policy.timeout_s).cut(argv, work)

    def _link_segments(self, proven: list[ProvenSegment], plan: RenditionPlan,
                       ) -> tuple[list[mf.SegmentEntry], list[Blob]]:
        # Each link waits for its directory's fsync: several at once (issue 14).
        with ThreadPoolExecutor(max_workers=LINKERS, thread_name_prefix="link") as pool:
            list(pool.map(lambda seg: self.store.link(seg.staged, vouched=self._vouched),
                          proven))
        entries, blobs = [], []
        for seg in proven:
            digests, cut = seg.staged.digests, seg.cut
            entries.append(mf.SegmentEntry(index=cut.index, start_us=cut.start_us,
                                           end_us=cut.end_us, size=digests.size,
                                           blake3=digests.blake3,
                                           name=f"seg{cut.index:05d}.{plan.ext}"))
            blobs.append(self._blob(digests))
        return entries, blobs

    def _blob(self, d: Digests) -> Blob:
        return Blob(blake3=d.blake3, sha256=d.sha256, size=d.size, stored_at=self.clock())

    def _vouched(self, b3: str) -> bool:
        return self.catalog.blob(b3) is not None

    def _manifest(self, recording: Recording, plan: RenditionPlan,
                  entries: list[mf.SegmentEntry]) -> mf.SignedManifest:
        rendition = mf.Rendition(kind=plan.kind or "remux", container=plan.container or "",
                                 tool=tool_version(self.ffmpeg_bin),
                                 argv=tuple(segment_argv(plan, self.settings.rendition)))
        manifest = mf.build_manifest(
            station_id=self.settings.station.id, device_serial=recording.device_serial,
            officer_id=recording.officer_id, created_at=self.clock(),
            originals=(mf.OriginalRef(recording_id=recording.id,
                                      name=recording.original_display, size=recording.size,
                                      blake3=recording.blake3, sha256=recording.sha256),),
            rendition=rendition, segments=entries)
        return mf.sign_manifest(manifest, self.keys.init()[0])

    def _row(self, recording: Recording, plan: RenditionPlan, *, status: str, code: str,
             reason: str, info: MediaInfo | None, root: str | None = None,
             manifest: str | None = None, key_id: str | None = None) -> Rendition:
        argv = segment_argv(plan, self.settings.rendition) if plan.container else []
        return Rendition(
            id=self.new_id(), recording_id=recording.id, status=status, code=code,
            reason=reason, kind=plan.kind, container=plan.container,
            tool=tool_version(self.ffmpeg_bin) if plan.container else None, argv=argv,
            source_blake3=recording.blake3, merkle_root=root, manifest_blake3=manifest,
            key_id=key_id, media=_media_json(info), created_at=self.clock())

    def _record(self, recording: Recording, plan: RenditionPlan, **kw: object) -> Rendition:
        row = self._row(recording, plan, **kw)  # type: ignore[arg-type]
        with self.catalog.transaction() as s:
            s.add(row)
            self._audit(s, row, segments=0)
        return row

    def _audit(self, s: Session, row: Rendition, *, segments: int) -> None:
        self.audit.append(s, actor=f"station:{self.settings.station.id}",
                          action="rendition.make",
                          subjects=[f"recording:{row.recording_id}", f"rendition:{row.id}"],
                          details={"status": row.status, "code": row.code, "kind": row.kind,
                                   "merkle_root": row.merkle_root, "key_id": row.key_id,
                                   "manifest": row.manifest_blake3, "segments": segments},
                          at=row.created_at)


def _add_new_blobs(s: Session, blobs: list[Blob]) -> None:
    """The blobs the catalog does not hold yet: one lookup per 500, not one per segment
    (each ``Session.get`` flushed the previous insert first)."""
    wanted = {b.blake3: b for b in blobs}  # two equal segments are one blob
    keys, held = list(wanted), set[str]()
    for i in range(0, len(keys), 500):
        held.update(s.exec(select(Blob.blake3).where(col(Blob.blake3).in_(keys[i:i + 500]))))
    s.add_all(b for key, b in wanted.items() if key not in held)


def _media_json(info: MediaInfo | None) -> dict[str, object]:
    """Probe facts kept with the rendition (taken from the original, before any remux)."""
    if info is None:
        return {}
    data = asdict(info)
    data["creation_time"] = info.creation_time.isoformat() if info.creation_time else None
    return data
