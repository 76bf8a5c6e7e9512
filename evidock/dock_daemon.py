"""The dock daemon's process: ``docks.runner.Pipeline`` over ``Services``, the clocks,
signals (SIGTERM/SIGINT: stop after the file in flight; SIGHUP: reload config), logging
as JSON lines, and systemd notifications. `evidock dock run` (evidock/cmd_dock.py) runs
:func:`serve`.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from config import load_settings
from docks.daemon import Config, Dock
from docks.job import event
from docks.mount import can_mount
from docks.sdnotify import Notifier
from evidock.wiring import Services, utc_now
from ingest.hooks import FifoHooks, Hooks
from ingest.outcome import OffloadReport, OffloadRequest
from ingest.progress import Progress
from ingest.tools import WARM_UP_S, warm_up
from integrity.errors import ConfigError


class ServicesPipeline:
    """docks.runner.Pipeline over Services: one Offloader per offload, shared hooks."""

    def __init__(self, svc: Services, *, hooks: Hooks) -> None:
        self.svc = svc
        self.hooks = hooks  # one per process, so test pause points count across bays
        self._render = threading.Lock()  # renditions one at a time: 2 cores, ffmpeg

    def offload(self, request: OffloadRequest, progress: Progress, *,
                clock_drift_s: float | None = None) -> OffloadReport:
        if clock_drift_s is not None:
            request = replace(request, clock_drift_s=clock_drift_s)
        offloader = self.svc.offloader()  # wired exactly as `evidock ingest` wires it
        offloader.hooks = self.hooks
        return offloader.run(request, progress)

    def process(self, report: OffloadReport) -> int:
        wanted = {f.recording_id for f in report.files
                  if f.recording_id and f.status in ("ingested", "flagged")}
        with self._render:
            # This session's new recordings, then any an earlier kill left never tried.
            rows = self.svc.renditions().catch_up(
                first=wanted, limit=self.svc.settings.scheduler.rendition_limit)
        return sum(1 for r in rows if r.status == "failed")


def load_config(config: Path | None) -> Config:
    """The daemon's config: the settings, with the dock's own table (``[dock]``, or the
    dock file) folded in by the one loader."""
    settings = load_settings(config_file=config)
    return Config(settings, settings.dock)


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if msg.startswith("{"):
            return msg
        return json.dumps({"event": "log", "level": record.levelname, "message": msg,
                           **({"exc": self.formatException(record.exc_info)}
                              if record.exc_info else {})}, ensure_ascii=False)


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    root = logging.getLogger("evidock.dock")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


class _Signals:
    """Signals arrive as bytes on a socket (signal.set_wakeup_fd), read in a selector."""

    WATCHED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        for s in (self._r, self._w):
            s.setblocking(False)
        for sig in self.WATCHED:
            signal.signal(sig, lambda *_: None)  # the byte on the socket is what counts
        signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._r, selectors.EVENT_READ)

    def wait(self, timeout: float | None) -> list[int]:
        if not self._sel.select(timeout):
            return []
        try:
            return list(self._r.recv(64))
        except BlockingIOError:
            return []

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._sel.close()
        self._r.close()
        self._w.close()


def serve(config: Path | None) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    _logging()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: thread stacks
    cfg = load_config(config)
    svc = Services.from_config(cfg.settings)
    # It offloads in-process: ffprobe's libraries cached before it takes the first camera
    # (bounded: a tool that hangs is reported where it is used). Not on a thread past
    # "ready": 8 bays docked at once then waited ~0.05 s more for their first byte.
    warm_up().join(timeout=WARM_UP_S)
    notifier = Notifier()
    pipeline = ServicesPipeline(svc, hooks=FifoHooks.from_env(os.environ))
    dock = Dock(config=cfg, pipeline=pipeline, clock=utc_now,
                monotonic=time.monotonic)
    dock.board.listeners.append(lambda _bay: _notify_status(notifier, dock))
    signals = _Signals()
    try:
        if "udev" in cfg.dock.sources and not can_mount():
            event("cannot-mount", uid=os.geteuid(), reason="no CAP_SYS_ADMIN: every docked "
                  "camera will fail with E_MOUNT (evidock-dock.service gives it ambient)")
        dock.start()
        notifier.ready(dock.summary())
        event("ready", pid=os.getpid(), sources=list(cfg.dock.sources),
              status=str(dock.board.path))
        _main_loop(dock, signals, notifier, config)
        notifier.stopping()
        event("stopping", active=dock.active())
        dock.stop()
        event("stopped")
    finally:
        signals.close()
        svc.close()
    return 0


def _notify_status(notifier: Notifier, dock: Dock) -> None:
    notifier.status(dock.summary())


def _main_loop(dock: Dock, signals: _Signals, notifier: Notifier,
               config: Path | None) -> None:
    tick = notifier.watchdog_s / 2 if notifier.watchdog_s else None
    while True:
        got = signals.wait(tick)
        if signal.SIGTERM in got or signal.SIGINT in got:
            return
        if signal.SIGHUP in got:
            notifier.reloading()
            try:
                dock.reload(load_config(config))
            except ConfigError as exc:  # keep running on the old config
                event("reload-failed", error=exc.to_dict())
            notifier.ready(dock.summary())
        notifier.watchdog()


__all__ = ["ServicesPipeline", "load_config", "serve"]
