"""The dock daemon's core: sources in, one job thread per docked camera out.

Events arrive on the sources' threads and are handled without blocking them: a
registered camera gets a ``Job`` thread; at most ``dock.max_parallel`` jobs offload at
once (a semaphore), and a job's failure or a stalled camera never holds another bay.
Unregistered devices are never mounted. ``stop()`` asks every job to finish the file in
flight and stop (nothing further is read or wiped), then waits for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from config import Settings
from docks.drivers import (
    CameraIdentity,
    DockReadings,
    Driver,
    MassStorageDriver,
    battery_percent,
    clock_drift_s,
)
from docks.folders import FolderSource, WatchedBay
from docks.job import Claims, Job, JobContext, Target, event
from docks.mount import Mounter
from docks.registry import CameraLike, Ignored, Registered, bay_for_port, bay_label, classify
from docks.runner import Pipeline
from docks.settings import CameraEntry, DockSettings, mount_dir, status_file
from docks.sources import Docked, Source, SourceEvent, UdevSource, Undocked
from docks.status import ACTIVE, StatusBoard
from docks.zfy import ZfyDriver

log = logging.getLogger("evidock.dock")


@dataclass(frozen=True)
class Config:
    settings: Settings
    dock: DockSettings


class Dock:
    def __init__(self, *, config: Config, pipeline: Pipeline, clock: Callable[[], datetime],
                 monotonic: Callable[[], float],
                 sources: Callable[[Config], list[Source]] | None = None,
                 driver_factory: Callable[[Target, Config], Driver] | None = None) -> None:
        self.config = config
        self.pipeline = pipeline
        self.clock, self.monotonic = clock, monotonic
        self.stopping = threading.Event()
        self._make_sources = sources or default_sources
        self._driver_factory = driver_factory or default_driver
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._pending: dict[str, tuple[CameraIdentity, DockReadings]] = {}
        self._sources: list[Source] = []
        self._noted: set[str] = set()  # devices handled once until removed (not jobs)
        dock = config.dock
        self.board = StatusBoard(path=status_file(config.settings), clock=clock,
                                 monotonic=monotonic, interval_s=dock.status_interval_s,
                                 bays=tuple(str(b.number) for b in dock.bays))
        self._slots = threading.Semaphore(dock.max_parallel)
        self._claims = Claims()  # shared by every job, across reloads

    def _context(self) -> JobContext:
        cfg = self.config
        mounter = Mounter(directory=mount_dir(cfg.settings),
                          timeout_s=cfg.dock.mount_timeout_s, filesystems=cfg.dock.filesystems)
        return JobContext(settings=cfg.settings, dock=cfg.dock, pipeline=self.pipeline,
                          mounter=mounter, board=self.board, slots=self._slots,
                          clock=self.clock, monotonic=self.monotonic,
                          make_driver=lambda t: self._driver_factory(t, cfg),
                          stopping=self.stopping, claims=self._claims)

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        if "udev" in self.config.dock.sources:
            left = self._context().mounter.sweep()
            if left:
                event("swept-mounts", points=[str(p) for p in left])
        self.board.flush()
        self._start_sources()

    def _start_sources(self) -> None:
        self._sources = self._make_sources(self.config)
        for source in self._sources:
            source.start(self.handle)
            event("source-started", source=source.name)

    def _stop_sources(self) -> None:
        for source in self._sources:
            source.stop()
        self._sources = []

    def reload(self, config: Config) -> None:
        """New config for new cameras; running jobs finish with the config they began."""
        self._stop_sources()
        with self._lock:
            self.config = config
        self._start_sources()
        event("reloaded", bays=[b.number for b in config.dock.bays])

    def stop(self, timeout: float | None = None) -> bool:
        """Stop taking cameras; jobs stop after their file in flight. True if all ended."""
        self.stopping.set()
        self._stop_sources()
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.thread.join(timeout)
        self.board.flush()
        return not any(j.thread.is_alive() for j in jobs)

    def active(self) -> int:
        return sum(1 for b in self.board.snapshot().values() if b.state in ACTIVE)

    def summary(self) -> str:
        bays = self.board.snapshot().values()
        busy = [f"bay {b.bay} {b.state}" for b in bays if b.state in ACTIVE]
        return ", ".join(busy) if busy else "idle: waiting for cameras"

    # --- events -----------------------------------------------------------------------

    def handle(self, ev: SourceEvent) -> None:
        if self.stopping.is_set():
            return
        if isinstance(ev, Undocked):
            self._undocked(ev)
        elif ev.kind == "folder":
            self._folder(ev)
        else:
            self._device(ev)

    def _undocked(self, ev: Undocked) -> None:
        with self._lock:
            self._noted.discard(ev.key)
            job = self._jobs.pop(ev.key, None)
        if job is not None:
            job.cancelled.set()
            event("undocked", bay=job.target.bay, key=ev.key, busy=job.thread.is_alive())

    def _folder(self, ev: Docked) -> None:
        model = ev.props.get("CAMERA_MODEL") or self.config.settings.ingest.default_camera_model
        self._launch(Target(key=ev.key, bay=ev.props["BAY"], kind="folder",
                            camera_model=model, folder=Path(ev.props["FOLDER"])))

    def _device(self, ev: Docked) -> None:
        dock = self.config.dock
        decision = classify(ev.props, dock)
        port = ev.props.get("ID_PATH", "")
        if not isinstance(decision, Registered):
            with self._lock:
                if ev.key in self._noted:
                    return  # a repeated add/change of a device already reported
                self._noted.add(ev.key)
        if not isinstance(decision, Registered):
            self._not_a_camera(ev, decision, port)
            return
        bay = bay_for_port(port, dock)
        label = bay_label(bay, port)
        if bay is None:
            event("unmapped-port", key=ev.key, port=port, bay=label)
        if ev.kind == "tty":
            with self._lock:
                if ev.key in self._noted:
                    return  # one login per control line until it goes away
                self._noted.add(ev.key)
            if decision.entry.driver != "mass-storage":
                threading.Thread(target=self._unlock, args=(ev, decision, label),
                                 name=f"unlock-{label}", daemon=True).start()
            return
        with self._lock:
            pending = self._pending.pop(label, None)
        self._launch(Target(
            key=ev.key, bay=label, kind="block", camera_model=decision.entry.camera_model,
            entry=decision.entry, device=ev.props.get("DEVNAME", ""),
            fstype=ev.props.get("ID_FS_TYPE", ""), serial=decision.serial,
            identity=pending[0] if pending else None,
            readings=pending[1] if pending else DockReadings()))

    def _not_a_camera(self, ev: Docked, decision: Ignored | CameraLike, port: str) -> None:
        """Never mounted. Camera-like devices are listed for the admin to register."""
        if isinstance(decision, Ignored):
            event("ignored", key=ev.key, reason=decision.reason)
            self.board.count_ignored()
            return
        event("camera-like", key=ev.key, vendor_id=decision.vendor_id,
              model_id=decision.model_id, serial=decision.serial, hint=decision.hint,
              name=decision.description)
        self.board.report_unregistered({
            "key": ev.key, "vendor_id": decision.vendor_id, "model_id": decision.model_id,
            "serial": decision.serial, "name": decision.description, "port": port,
            "seen_at": self.clock().isoformat(), "register": decision.snippet()})

    def _unlock(self, ev: Docked, decision: Registered, label: str) -> None:
        """A vendor camera's control line appeared: log in so it shows its disk."""
        target = Target(key=ev.key, bay=label, kind="tty", entry=decision.entry,
                        camera_model=decision.entry.camera_model, serial=decision.serial,
                        device=ev.props.get("DEVNAME", ""))
        try:
            driver = self._driver_factory(target, self.config)
            try:
                driver.unlock()
                identity = driver.identify()
                now = self.clock()
                drift = clock_drift_s(driver, now)
                if decision.entry.sync_clock:
                    driver.sync_clock(now)
                # Last: a late or garbled reply to it can confuse no other call.
                readings = DockReadings(clock_drift_s=drift,
                                        battery_percent=battery_percent(driver))
            finally:
                driver.close()
        except Exception as exc:  # the bay shows it; other bays carry on
            self.board.update(label, state="failed", last_error=f"unlock: {exc}")
            event("unlock-failed", bay=label, error=str(exc))
            return
        with self._lock:
            self._pending[label] = (identity, readings)
        self.board.update(label, camera=identity.serial, officer=identity.officer,
                          clock_drift_s=drift)
        event("unlocked", bay=label, serial=identity.serial, officer=identity.officer,
              clock_drift_s=drift, battery_percent=readings.battery_percent)

    def _launch(self, target: Target) -> None:
        with self._lock:
            if target.key in self._jobs:
                return  # already taken (a coldplug after reload, a "change" event)
            job = Job(target=target, ctx=self._context())
            self._jobs[target.key] = job
        event("docked", bay=target.bay, key=target.key, kind=target.kind,
              serial=target.serial or None, at=self.clock().timestamp())
        job.thread.start()


def default_sources(config: Config) -> list[Source]:
    out: list[Source] = []
    dock = config.dock
    if "udev" in dock.sources:
        out.append(UdevSource())
    if "folder" in dock.sources:
        default = config.settings.ingest.default_camera_model
        bays = tuple(WatchedBay(b.number, Path(b.folder), b.camera_model or default)
                     for b in dock.bays if b.folder)
        out.append(FolderSource(bays=bays, settle_s=dock.settle_s))
    return out


def make_driver(entry: CameraEntry | None, *, serial: str, control_port: str,
                zone: tzinfo, timeout_s: float = 5.0) -> Driver:
    """The driver for a registered camera (mass storage when none is registered)."""
    if entry is None or entry.driver == "mass-storage" or not control_port:
        # No vendor protocol, or already a disk with no control line known: what udev
        # says is all there is.
        return MassStorageDriver(serial=serial)
    return ZfyDriver.open(Path(control_port), password=entry.password, zone=zone,
                          timeout_s=timeout_s)


def default_driver(target: Target, config: Config) -> Driver:
    port = target.device if target.kind == "tty" else ""
    if not port:
        bay = next((b for b in config.dock.bays if str(b.number) == target.bay), None)
        port = bay.control_port if bay else ""
    return make_driver(target.entry, serial=target.serial, control_port=port,
                       zone=config.settings.station.zone)
