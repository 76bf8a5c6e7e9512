"""One docked camera, start to finish, on its own thread:

identifying → queued → offloading → verifying → processing → done | failed

The camera is mounted read-only for the offload. If the wipe policy is ``local`` and the
offload proved at least one file (ingested or duplicate, no flags), the mount is
remounted read-write for a second Offloader pass with ``wipe_after_verify`` limited to
the files the first pass proved (same name, same BLAKE3): each comes back as a
duplicate, the stored blob is re-read and checked, the wipe row is committed, and only
then is the camera's file unlinked (and only if it is still the same inode, size, mtime
and ctime, and for a small file the same bytes). Flagged, skipped and failed files stay
on the camera, and the bay's status says how many and why. One camera is offloaded by
one bay at a time (``Claims``; another bay with the same serial fails ``E_CAMERA_BUSY``
untouched). Renditions are made after the camera is unmounted, so it can be pulled as
soon as the bay says ``processing``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from config import Settings
from docks.drivers import CameraIdentity, DockReadings, Driver, battery_percent, clock_drift_s
from docks.folders import identify_folder
from docks.mount import Mounted, Mounter
from docks.runner import DockStopping, Pipeline
from docks.settings import CameraEntry, DockSettings
from docks.status import StatusBoard
from ingest.names import NameParser
from ingest.outcome import DUPLICATE, INGESTED, FileOutcome, OffloadReport, OffloadRequest
from integrity.codes import Code
from integrity.errors import CameraBusy, EvidockError, SourceInvalid

log = logging.getLogger("evidock.dock")


def event(what: str, /, **fields: object) -> None:
    """One JSON line per daemon event (journald keeps it; tests and benches parse it)."""
    log.info(json.dumps({"event": what, **fields}, ensure_ascii=False, default=str))


@dataclass(frozen=True)
class Target:
    """A camera to offload, as the daemon resolved it from a source event."""

    key: str
    bay: str
    kind: str  # "block" | "folder"
    camera_model: str
    entry: CameraEntry | None = None
    device: str = ""  # block device node
    fstype: str = ""
    folder: Path | None = None
    serial: str = ""  # from udev; folders are identified from their names
    identity: CameraIdentity | None = None  # already known (vendor driver unlocked it)
    readings: DockReadings = DockReadings()  # read with the identity


class Claims:
    """Which bay is offloading which camera serial: one camera, one bay at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}

    @contextlib.contextmanager
    def hold(self, serial: str, bay: str) -> Iterator[None]:
        with self._lock:
            other = self._held.get(serial)
            if other is not None:
                raise CameraBusy(f"camera {serial} is already being offloaded in bay {other}; "
                                 "this bay leaves it untouched", serial=serial, bay=bay,
                                 busy_bay=other)
            self._held[serial] = bay
        try:
            yield
        finally:
            with self._lock:
                del self._held[serial]


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    dock: DockSettings
    pipeline: Pipeline
    mounter: Mounter
    board: StatusBoard
    slots: threading.Semaphore
    clock: Callable[[], datetime]
    monotonic: Callable[[], float]
    make_driver: Callable[[Target], Driver]
    stopping: threading.Event
    claims: Claims


class BayProgress:
    """ingest.progress.Progress for one bay; also where a stop request takes effect."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._t0 = 0.0
        self.bytes_done = 0
        self.bytes_total = 0

    def start(self, files: int, total_bytes: int) -> None:
        self._t0, self.bytes_done, self.bytes_total = self._job.ctx.monotonic(), 0, total_bytes
        self._job.update(files_total=files, files_done=0, bytes_total=total_bytes,
                         bytes_done=0, throughput_bps=0.0, eta_s=None)

    def file_started(self, display: str, size: int) -> None:
        self._job.check_stop()  # between files: the previous one is complete and recorded

    def advance(self, nbytes: int) -> None:
        self.bytes_done += nbytes
        if not self._job.had_first_byte:
            self._job.first_byte()
        elapsed = self._job.ctx.monotonic() - self._t0
        rate = self.bytes_done / elapsed if elapsed > 0 else 0.0
        eta = (self.bytes_total - self.bytes_done) / rate if rate > 0 else None
        self._job.update(force=False, bytes_done=self.bytes_done, throughput_bps=round(rate),
                         eta_s=None if eta is None else round(max(eta, 0.0), 1))

    def file_done(self, outcome: FileOutcome) -> None:
        status = self._job.ctx.board.get(self._job.target.bay)
        self._job.update(force=False, files_done=status.files_done + 1)


class Job:
    def __init__(self, *, target: Target, ctx: JobContext) -> None:
        self.target = target
        self.ctx = ctx
        self.cancelled = threading.Event()  # the camera left the bay
        self._mounted: Mounted | None = None
        self.had_first_byte = False
        self.thread = threading.Thread(target=self.run, name=f"bay-{target.bay}", daemon=True)

    def update(self, *, force: bool = True, **changes: object) -> None:
        self.ctx.board.update(self.target.bay, force=force, **changes)

    def check_stop(self) -> None:
        if self.ctx.stopping.is_set():
            raise DockStopping("dock stopping: offload paused between files",
                               bay=self.target.bay)
        if self.cancelled.is_set():
            raise DockStopping("camera left the bay", bay=self.target.bay)

    def first_byte(self) -> None:
        self.had_first_byte = True
        at = self.ctx.clock()
        self.update(first_byte_at=at.isoformat())
        event("first-byte", bay=self.target.bay, key=self.target.key, at=at.timestamp())

    def run(self) -> None:
        t = self.target
        self.update(state="identifying", camera=t.serial or None, camera_entry=(
            t.entry.name if t.entry else None), camera_model=t.camera_model, officer=None,
            source=t.device or str(t.folder), session_id=None, outcome=None, last_error=None,
            files_done=0, files_total=0, bytes_done=0, bytes_total=0, wiped=0, kept=0,
            kept_why=None, eta_s=None,
            throughput_bps=0.0, clock_drift_s=None, first_byte_at=None,
            started_at=self.ctx.clock().isoformat())
        try:
            self._run()
        except EvidockError as exc:
            self.update(state="failed", last_error=f"{exc.code}: {exc.message}")
            event("failed", bay=t.bay, key=t.key, error=exc.code, message=exc.message)
        except Exception as exc:  # a bug in one bay must not take the daemon down
            log.exception("bay %s failed", t.bay)
            self.update(state="failed", last_error=f"{Code.E_INTERNAL}: {exc!r}")

    def _run(self) -> None:
        identity, readings = self._identify()
        self.update(camera=identity.serial, officer=identity.officer,
                    clock_drift_s=readings.clock_drift_s)
        # Claimed before the camera is mounted or read: a second bay touches nothing.
        with self.ctx.claims.hold(identity.serial, self.target.bay), self._source() as root:
            self.update(state="queued")
            with self.ctx.slots:
                self.check_stop()
                self.update(state="offloading")
                report = self._offload(root, identity, readings, wipe=False)
                wiped = self._wipe_pass(root, identity, report)
        self._finish(report, wiped)

    def _identify(self) -> tuple[CameraIdentity, DockReadings]:
        t = self.target
        if t.identity is not None:
            return t.identity, t.readings
        if t.kind == "folder":
            assert t.folder is not None
            parser = NameParser(model=self.ctx.settings.camera_model(t.camera_model),
                                zone=self.ctx.settings.station.zone)
            found = identify_folder(t.folder, parser)
            if found is None:
                raise SourceInvalid(f"cannot tell the camera serial of {t.folder}: no "
                                    "parsable names and the folder name is not a serial",
                                    path=str(t.folder))
            return CameraIdentity(serial=found.serial, officer=found.officer), DockReadings()
        driver = self.ctx.make_driver(t)
        try:
            driver.unlock()
            identity = driver.identify()
            now = self.ctx.clock()
            drift = clock_drift_s(driver, now)
            if t.entry is not None and t.entry.sync_clock:
                driver.sync_clock(now)
            # Last: a late or garbled reply to it can confuse no other call.
            battery = battery_percent(driver)
        finally:
            driver.close()
        return identity, DockReadings(clock_drift_s=drift, battery_percent=battery)

    @contextlib.contextmanager
    def _source(self) -> Iterator[Path]:
        t = self.target
        if t.kind == "folder":
            assert t.folder is not None
            yield t.folder
            return
        with self.ctx.mounter.mounted(t.device, t.fstype, f"bay{t.bay}-{t.serial}") as m:
            self._mounted = m
            yield m.point

    def _offload(self, root: Path, identity: CameraIdentity, readings: DockReadings, *,
                 wipe: bool, only: frozenset[tuple[bytes, str]] | None = None,
                 ) -> OffloadReport:
        req = OffloadRequest(source=root, device_serial=identity.serial,
                             officer_id=identity.officer, camera_model=self.target.camera_model,
                             wipe_after_verify=wipe, bay=self.target.bay, wipe_only=only,
                             battery_percent=readings.battery_percent)
        report = self.ctx.pipeline.offload(req, BayProgress(self),
                                           clock_drift_s=readings.clock_drift_s)
        self.update(session_id=report.session_id, outcome=report.outcome,
                    last_error=f"{report.error.code}: {report.error.message}"
                    if report.error else None)
        event("offload", bay=self.target.bay, serial=identity.serial, wipe=wipe,
              session=report.session_id, outcome=report.outcome, counts=report.counts(),
              bytes=report.bytes_copied, seconds=round(report.seconds, 3))
        return report

    def _wipe_pass(self, root: Path, identity: CameraIdentity, report: OffloadReport) -> int:
        policy = self.ctx.dock.wipe
        if policy != "local":
            if policy == "remote":
                event("wipe-withheld", bay=self.target.bay, reason="remote confirmation "
                      "(object storage) is not available yet: nothing is wiped")
            return 0
        proven = frozenset((f.relpath, f.blake3 or "") for f in report.files
                           if f.status in (INGESTED, DUPLICATE) and not f.flags)
        if report.outcome not in ("completed", "findings") or not proven:
            self._kept(report.files)
            event("wipe-withheld", bay=self.target.bay, outcome=report.outcome,
                  unproven=len(report.files) - len(proven))
            return 0
        self.check_stop()
        self.update(state="verifying")
        if self._mounted is not None:
            self.ctx.mounter.remount_rw(self._mounted)
        # The readings belong to the first session (the dock); the wipe pass has none.
        again = self._offload(root, identity, DockReadings(), wipe=True, only=proven)
        wiped = sum(f.wiped for f in again.files)
        self.update(wiped=wiped)
        self._kept(again.files)
        if again.outcome not in ("completed", "findings"):
            raise again.error or SourceInvalid(f"wipe pass ended {again.outcome}")
        return wiped

    def _kept(self, files: tuple[FileOutcome, ...]) -> None:
        """Say in the bay's status what stays on the camera, and why (by code)."""
        kept = Counter(f.code if not f.flags else f.flags[0] for f in files if not f.wiped)
        why = ", ".join(f"{code} {n}" for code, n in sorted(kept.items()))
        self.update(kept=sum(kept.values()), kept_why=why or None)
        if kept:
            event("kept", bay=self.target.bay, files=sum(kept.values()), codes=dict(kept))

    def _finish(self, report: OffloadReport, wiped: int) -> None:
        if report.outcome in ("interrupted", "failed"):
            self.update(state="failed")
            event("failed", bay=self.target.bay, key=self.target.key, outcome=report.outcome,
                  session=report.session_id, error=report.error.code if report.error else None)
            return
        failures = 0
        if self.ctx.dock.process_after_offload and not self.ctx.stopping.is_set():
            self.update(state="processing", eta_s=None)
            failures = self.ctx.pipeline.process(report)
        self.update(state="done", last_error=(
            f"{Code.E_RENDITION}: {failures} rendition(s) failed" if failures else None))
        event("done", bay=self.target.bay, key=self.target.key, outcome=report.outcome,
              session=report.session_id, wiped=wiped,
              rendition_failures=failures)
