"""Verified offload of one camera tree into the content-addressed store.

Per file: copy once while hashing (BLAKE3 + SHA-256), fsync, check the source did not
change, re-read the staged copy from disk and compare, judge validity, then link it into
the store and record it in the catalog in one transaction. Only after that commit may
the camera's file be wiped. A SIGKILL at any point leaves either nothing (staging is
swept) or a complete blob, and the catalog never names a blob that is not in the store.

Two stages overlap: this thread reads the camera (copy of file N+1) while one settling
thread re-reads, judges, commits and wipes file N (:class:`ingest.settling.Settling`);
files settle one at a time, in camera order, so each step above keeps its order for
every file.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from archive.audit.log import AuditLog
from archive.catalog import Blob, Catalog, DockSession, Recording, SessionFile
from archive.catalog.models import RecordingProbe
from archive.keystore import StationKeys
from archive.seals import Sealer
from archive.store import ContentStore, Staged, Stager, Written
from config import Settings
from ingest.camlock import camera_lock
from ingest.camread import CameraReader, SourceReadError
from ingest.hooks import Hooks
from ingest.media import Prober, Validity
from ingest.names import NameParser, ParsedName
from ingest.outcome import (
    DUPLICATE,
    FAILED,
    FLAGGED,
    INGESTED,
    SKIPPED,
    FileOutcome,
    OffloadReport,
    OffloadRequest,
)
from ingest.progress import NullProgress, Progress
from ingest.settling import Settling
from ingest.source import GONE_ERRNOS, Entry, FileIdentity, SourceTree
from ingest.wipecheck import Wiper
from integrity.codes import Code
from integrity.digest import Digests
from integrity.errors import ConfigError, DigestMismatch, EvidockError, SourceGone

_SKIP_CODES = {
    "symlink": (Code.S_SYMLINK, "symbolic link: never followed"),
    "special": (Code.S_NOT_REGULAR, "not a regular file (FIFO, socket or device): never opened"),
    "too_deep": (Code.S_TOO_DEEP, "directory deeper than ingest.max_depth: not entered"),
    "unreadable": (Code.S_UNREADABLE, "could not be listed or opened"),
}
_JUDGED = ("video", "audio", "photo")  # kinds whose content the media check judges
#: The camera's pages are dropped behind the copy every this many bytes (ingest/camread).
DROP_BEHIND = 8 << 20


def _ext(entry: Entry) -> str:
    return entry.name.rpartition(b".")[2].decode("ascii", "replace")


@dataclass(frozen=True)
class _Copied:
    """A camera file copied and fsynced into staging, not yet read back; its media check
    (None: nothing to judge), started when its last byte was written."""

    written: Written
    identity: FileIdentity
    check: Future[Validity] | None = None


@dataclass(frozen=True)
class _Copy:
    """A camera file's verified staged copy and the camera file's identity."""

    staged: Staged
    identity: FileIdentity

    @property
    def digests(self) -> Digests:
        return self.staged.digests


@dataclass
class _Run:
    """Per-offload state threaded through the per-file steps."""

    req: OffloadRequest
    session_id: str
    tree: SourceTree
    stager: Stager
    parser: NameParser
    progress: Progress
    settling: Settling
    bytes_copied: int = 0


class Offloader:
    def __init__(self, *, settings: Settings, store: ContentStore, catalog: Catalog,
                 prober: Prober, clock: Callable[[], datetime], hooks: Hooks | None = None,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 audit: AuditLog | None = None) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.prober = prober
        self.clock = clock
        self.hooks = hooks or Hooks()
        self.new_id = new_id
        # Every session, file outcome and wipe is an audit event in the same transaction.
        self.audit = audit or AuditLog(catalog=catalog)
        self.actor = f"station:{settings.station.id}"
        # Signed records of each recording and session, in the store (archive/seals.py).
        self.sealer = Sealer(catalog=catalog, store=store, clock=clock,
                             keys=StationKeys(directory=settings.keys_dir),
                             station_id=settings.station.id)
        self.wiper = Wiper(ingest=settings.ingest, store=store, catalog=catalog,
                           sealer=self.sealer, audit=self.audit, actor=self.actor,
                           clock=clock, hooks=self.hooks, event=self._event)

    def _event(self, action: str, subjects: list[str | None], details: dict[str, object],
               at: datetime) -> Callable[[Session], object]:
        def append(session: Session) -> object:
            return self.audit.append(session, actor=self.actor, action=action,
                                     subjects=[s for s in subjects if s], details=details,
                                     at=at)
        return append

    def _parser(self, name: str | None) -> NameParser:
        try:
            model = self.settings.camera_model(name)
        except KeyError:
            known = [m.name for m in self.settings.camera_models]
            raise ConfigError(f"unknown camera model {name!r}; known: {known}",
                              key="camera_models", model=name) from None
        return NameParser(model=model, zone=self.settings.station.zone)

    def run(self, req: OffloadRequest, progress: Progress | None = None) -> OffloadReport:
        parser = self._parser(req.camera_model)
        self.store.ensure()
        started = self.clock()
        with camera_lock(self.settings.home / "run" / "cameras", req.device_serial), \
                SourceTree(req.source, max_depth=self.settings.ingest.max_depth) as tree:
            session_id = self.new_id()
            self.catalog.open_session(DockSession(
                id=session_id, station_id=self.settings.station.id,
                device_serial=req.device_serial, officer_id=req.officer_id,
                camera_model=parser.model.name, source=str(req.source), bay=req.bay,
                wipe_requested=req.wipe_after_verify, started_at=started,
                clock_drift_s=req.clock_drift_s, battery_percent=req.battery_percent,
            ), now=started, camera_model=parser.model.name, also=self._event(
                "dock.session.start", [session_id, req.device_serial, req.officer_id],
                {"device": req.device_serial, "officer": req.officer_id, "bay": req.bay,
                 "camera_model": parser.model.name, "source": str(req.source),
                 "wipe_requested": req.wipe_after_verify,
                 "battery_percent": req.battery_percent}, started))
            report = self._run_session(req=req, session_id=session_id, tree=tree,
                                       parser=parser, progress=progress or NullProgress(),
                                       started=started)
        self.sealer.end(session_id)
        # The offload is this process's unit of work: sign a tree head over it.
        self.audit.checkpoint(at=self.clock())
        return report

    def _run_session(self, *, req: OffloadRequest, session_id: str, tree: SourceTree,
                     parser: NameParser, progress: Progress, started: datetime) -> OffloadReport:
        outcomes: list[FileOutcome] = []
        error: EvidockError | None = None
        run: _Run | None = None
        try:
            with self.store.stage() as stager, Settling() as settling:
                run = _Run(req, session_id, tree, stager, parser, progress, settling)
                entries = list(tree.walk())
                progress.start(len(entries), sum(e.size for e in entries))
                for entry in entries:
                    try:
                        taken = self._take(run, entry)
                    finally:  # whatever stopped this copy, the file before is settled
                        settling.drain(outcomes, progress)
                    settling.submit(self._settle, run, entry, taken)
                settling.drain(outcomes, progress)
            state = "completed" if all(
                o.status in (INGESTED, DUPLICATE) for o in outcomes) else "findings"
        except SourceGone as exc:
            error, state = exc, "interrupted"
        except EvidockError as exc:
            error, state = exc, "failed"
        ended = self.clock()
        counts = Counter(o.status for o in outcomes)
        self.catalog.close_session(
            session_id, outcome=state, ended_at=ended, error_code=error.code if error else None,
            also=self._event("dock.session.end", [session_id, req.device_serial],
                             {"outcome": state, "code": error.code if error else None,
                              "files": dict(sorted(counts.items())),
                              "bytes_copied": run.bytes_copied if run else 0}, ended))
        return OffloadReport(session_id, state, tuple(outcomes), error,
                             bytes_copied=run.bytes_copied if run else 0,
                             seconds=(ended - started).total_seconds())

    def _take(self, run: _Run, entry: Entry) -> _Copied | FileOutcome:
        """The camera side of one file (this thread): skip it, or copy it into staging."""
        if entry.kind != "file":
            code, reason = _SKIP_CODES[entry.kind]
            return FileOutcome(entry.relpath, entry.display, SKIPPED, code, reason)
        run.progress.file_started(entry.display, entry.size)
        self.hooks.reached("before_copy")
        return self._copy(run, entry)

    def _settle(self, run: _Run, entry: Entry, taken: _Copied | FileOutcome) -> FileOutcome:
        """The store side of one file (the settling thread, files in camera order):
        re-read and compare, judge, link and commit, then wipe if asked."""
        if isinstance(taken, FileOutcome):
            return self._record(run, taken)
        self.hooks.reached("before_verify")
        check = taken.check
        staged = self._verify(run, entry, taken.written, taken.identity)
        if isinstance(staged, FileOutcome):
            return self._record(run, staged)  # the check's verdict is never used
        self.hooks.reached("after_verify")
        outcome = self._store_file(run, entry, staged, check)
        self.hooks.reached("after_commit")
        # Flagged content (even when it comes back as a duplicate) stays on the camera.
        if run.req.wipe_after_verify and outcome.status in (INGESTED, DUPLICATE) \
                and not outcome.flags and run.req.may_wipe(entry.relpath, outcome.blake3):
            outcome = self.wiper.wipe(tree=run.tree, session_id=run.session_id, entry=entry,
                                      identity=staged.identity, stored=staged.digests,
                                      outcome=outcome)
        return outcome

    def _failed(self, entry: Entry, code: str, reason: str, d: Digests | None = None,
                ) -> FileOutcome:
        return FileOutcome(entry.relpath, entry.display, FAILED, code, reason,
                           size=d.size if d else None, blake3=d.blake3 if d else None,
                           sha256=d.sha256 if d else None)

    def _copy(self, run: _Run, entry: Entry) -> _Copied | FileOutcome:
        try:
            src = run.tree.open_file(entry)
        except OSError as exc:
            return self._source_error(run, entry, exc)
        checks: list[Future[Validity] | None] = []
        try:
            before = FileIdentity.of(os.fstat(src))
            written = self._copy_fd(run, src, entry.size, lambda path, d: checks.append(
                self._check_ahead(run, entry, path, d)))
            after = FileIdentity.of(os.fstat(src))
        except SourceReadError as exc:
            return self._source_error(run, entry, exc.os_error)
        finally:
            os.close(src)
        digests = written.digests
        if not before == after == run.tree.identity_now(entry) or digests.size != before.size:
            if not run.tree.still_present():
                raise SourceGone(f"camera gone during copy of {entry.display}",
                                 path=entry.display)
            return self._failed(entry, Code.E_SOURCE_CHANGED,
                                "file changed on the camera while it was copied", digests)
        return _Copied(written, before, checks[0] if checks else None)

    def _copy_fd(self, run: _Run, src: int, size: int,
                 on_copied: Callable[[Path, Digests], None]) -> Written:
        os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)

        def advance(n: int) -> None:
            run.bytes_copied += n
            run.progress.advance(n)

        ing = self.settings.ingest
        # Pages of a file that is re-read before its wipe stay: that re-read is then cheap.
        rehashed = run.req.wipe_after_verify and size <= ing.rehash_before_wipe_bytes
        reader = CameraReader(src, self.hooks, ahead=ing.read_ahead,
                              drop_behind=0 if rehashed else DROP_BEHIND)
        return run.stager.copy(reader,
                               chunk_size=ing.chunk_size,
                               on_chunk=advance, follow=ing.evict_before_verify
                               and ing.reread_window or None, on_copied=on_copied)

    def _source_error(self, run: _Run, entry: Entry, exc: OSError) -> FileOutcome:
        if exc.errno in GONE_ERRNOS or not run.tree.still_present():
            raise SourceGone(f"camera stopped answering while reading {entry.display}: "
                             f"{exc.strerror}", path=entry.display, errno=exc.errno) from exc
        return self._failed(entry, Code.E_SOURCE_READ, f"read error: {exc.strerror}")

    def _verify(self, run: _Run, entry: Entry, written: Written, identity: FileIdentity,
                ) -> _Copy | FileOutcome:
        """Re-read the staged copy from the disk (BLAKE3; SHA-256 was taken while copying)."""
        try:
            staged = run.stager.verify(written, evict=self.settings.ingest.evict_before_verify,
                                       chunk_size=self.settings.ingest.chunk_size,
                                       subject=entry.display)
        except DigestMismatch as exc:
            return self._failed(entry, Code.E_DIGEST_MISMATCH, exc.message, written.digests)
        return _Copy(staged, identity)

    def _check_ahead(self, run: _Run, entry: Entry, path: Path, digests: Digests,
                     ) -> Future[Validity] | None:
        """The media check of a new file's staged copy, started as soon as its last byte
        is written (the check only reads), so it runs during the fsync and the re-read.
        Its verdict is used only once the re-read has proven the file holds the bytes
        copied, so it judged exactly those bytes."""
        kind = self.settings.ingest.extensions.kind_of(entry.name)
        if digests.size == 0 or kind not in _JUDGED or self.catalog.find_recording(
                run.req.device_serial, entry.relpath, digests.blake3) is not None:
            return None  # nothing to judge, or a duplicate: it keeps its first judgement
        return run.settling.ahead(self.prober.check, path, kind=kind, ext=_ext(entry))

    def _classify(self, run: _Run, entry: Entry, staged: _Copy, check: Future[Validity] | None,
                  ) -> tuple[str, tuple[str, ...], str, ParsedName | None, bytes | None]:
        kind = self.settings.ingest.extensions.kind_of(entry.name)
        parsed = run.parser.parse(entry.name)
        flags: list[str] = []
        reasons: list[str] = []
        probe = None
        if staged.digests.size == 0:
            flags.append(Code.F_EMPTY)
            reasons.append("zero-byte file")
        elif kind in _JUDGED:
            verdict = check.result() if check is not None else self.prober.check(
                staged.staged.path, kind=kind, ext=_ext(entry))
            flags.extend(verdict.flags)
            reasons.extend([verdict.reason] if verdict.flags else [])
            probe = verdict.probe
        if parsed is None and not (kind == "log" and run.parser.is_known_log(entry.name)):
            flags.append(Code.F_NAME_UNPARSED)
            reasons.append(f"name matches no pattern of camera model {run.parser.model.name}")
        elif parsed and parsed.serial and parsed.serial != run.req.device_serial:
            flags.append(Code.F_SERIAL_MISMATCH)
            reasons.append(f"name says serial {parsed.serial}, docked {run.req.device_serial}")
        return kind, tuple(flags), "; ".join(reasons), parsed, probe

    def _store_file(self, run: _Run, entry: Entry, staged: _Copy,
                    check: Future[Validity] | None = None) -> FileOutcome:
        d = staged.digests
        known = self.catalog.find_recording(run.req.device_serial, entry.relpath, d.blake3)
        if known is not None:
            restored = self._link(staged)
            note = "; blob was missing from the store and was restored" if restored else ""
            return self._record(run, FileOutcome(
                entry.relpath, entry.display, DUPLICATE, Code.I_DUPLICATE,
                "already in the catalog" + note, d.size, d.blake3, d.sha256, known.id,
                tuple(known.flags)))
        # Classified from the staged copy before it is linked: a classification that stops
        # the offload leaves no blob behind. What follows the link (the signed record,
        # the commit) can still fail or be killed: that leaves a blob without its row,
        # which the next run adopts only after re-hashing it (ContentStore.link).
        kind, flags, reason, parsed, probe = self._classify(run, entry, staged, check)
        self._link(staged)
        now = self.clock()
        rec = Recording(
            id=self.new_id(), session_id=run.session_id, device_serial=run.req.device_serial,
            officer_id=run.req.officer_id or (parsed.officer if parsed else None),
            original_path=entry.relpath, original_display=entry.display, kind=kind,
            size=d.size, blake3=d.blake3, sha256=d.sha256,
            camera_start=parsed.start if parsed else None, source_mtime_ns=entry.mtime_ns,
            ingested_at=now, status=FLAGGED if flags else INGESTED, flags=list(flags),
            reason=reason or "ok")
        blob = Blob(blake3=d.blake3, sha256=d.sha256, size=d.size, stored_at=now)
        outcome = FileOutcome(entry.relpath, entry.display, rec.status,
                              flags[0] if flags else Code.I_INGESTED, rec.reason, d.size,
                              d.blake3, d.sha256, rec.id, flags)
        kept = self.prober.keepable(probe)
        return self._record(run, outcome, blob=blob, recording=rec, probe=None if kept is None
                            else RecordingProbe(recording_id=rec.id, tool=kept[0], probe=kept[1]))

    def _link(self, staged: _Copy) -> bool:
        # A blob with no catalog row (left by a run killed between link and commit, or
        # planted) is re-read by the store before it is trusted; a wrong one is replaced.
        return self.store.link(staged.staged, vouched=self._vouched)

    def _vouched(self, b3: str) -> bool:
        return self.catalog.blob(b3) is not None

    def _record(self, run: _Run, outcome: FileOutcome, *, blob: Blob | None = None,
                recording: Recording | None = None,
                probe: RecordingProbe | None = None) -> FileOutcome:
        at = self.clock()
        sealed = self.sealer.recording(recording, run.stager) if recording else None
        self.catalog.record_outcome(SessionFile(
            session_id=run.session_id, relpath=outcome.relpath, display=outcome.display,
            status=outcome.status, code=outcome.code, reason=outcome.reason,
            size=outcome.size, blake3=outcome.blake3, sha256=outcome.sha256,
            recording_id=outcome.recording_id, at=at,
        ), blob=blob, recording=recording, probe=probe, also=Sealer.attach(sealed, self._event(
            "ingest.file", [run.session_id, outcome.recording_id, outcome.blake3],
            {"path": outcome.display, "status": outcome.status, "code": outcome.code,
             "size": outcome.size, "blake3": outcome.blake3, "sha256": outcome.sha256,
             "flags": list(outcome.flags), "new_blob": blob is not None,
             "record": sealed.blob.blake3 if sealed else None}, at)))
        return outcome
