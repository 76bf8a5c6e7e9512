"""Per-bay state, shared by the daemon's threads and published as an atomic JSON file.

The daemon writes ``dock-status.json`` under its run directory (temp file, fsync,
rename) on every state change and at most every ``status_interval_s`` while bytes flow;
the station service only reads that file for ``evidock dock status``, so it never needs
the daemon's privileges.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

STATES = ("idle", "identifying", "queued", "offloading", "verifying", "processing", "done",
          "failed")
ACTIVE = ("identifying", "queued", "offloading", "verifying", "processing")


@dataclass(frozen=True)
class BayStatus:
    bay: str
    state: str = "idle"
    camera: str | None = None  # serial
    camera_entry: str | None = None  # registry entry name
    camera_model: str | None = None
    officer: str | None = None
    source: str | None = None
    session_id: str | None = None
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    throughput_bps: float = 0.0
    eta_s: float | None = None
    clock_drift_s: float | None = None
    outcome: str | None = None
    wiped: int = 0
    kept: int = 0  # entries left on the camera (flagged, skipped, failed, not proven)
    kept_why: str | None = None  # e.g. "F_TRUNCATED 1, S_SYMLINK 2"
    last_error: str | None = None
    started_at: str | None = None
    first_byte_at: str | None = None
    updated_at: str | None = None


@dataclass
class _Board:
    bays: dict[str, BayStatus] = field(default_factory=dict)
    unregistered: list[dict[str, str]] = field(default_factory=list)
    ignored: int = 0


class StatusBoard:
    """Thread-safe bay table; every change is written to ``path`` (throttled for bytes)."""

    def __init__(self, *, path: Path, clock: Callable[[], datetime],
                 monotonic: Callable[[], float], interval_s: float,
                 bays: tuple[str, ...] = ()) -> None:
        self.path = path
        self._clock, self._mono, self._interval = clock, monotonic, interval_s
        self._lock = threading.Lock()
        self._board = _Board({b: BayStatus(bay=b) for b in bays})
        self._last_write = float("-inf")
        self.listeners: list[Callable[[BayStatus], None]] = []

    def get(self, bay: str) -> BayStatus:
        with self._lock:
            return self._board.bays.get(bay, BayStatus(bay=bay))

    def snapshot(self) -> dict[str, BayStatus]:
        with self._lock:
            return dict(self._board.bays)

    def update(self, bay: str, *, force: bool = True, **changes: Any) -> BayStatus:
        """Apply changes to a bay; write the file now (``force``) or if due."""
        with self._lock:
            now = self._clock().isoformat()
            old = self._board.bays.get(bay, BayStatus(bay=bay))
            new = replace(old, updated_at=now, **changes)
            self._board.bays[bay] = new
            due = force or self._mono() - self._last_write >= self._interval
            if due:
                self._write_locked()
        if "state" in changes:
            for listener in self.listeners:
                listener(new)
        return new

    def report_unregistered(self, device: dict[str, str]) -> None:
        with self._lock:
            known = [d for d in self._board.unregistered if d.get("key") != device.get("key")]
            self._board.unregistered = [*known[-19:], device]
            self._write_locked()

    def count_ignored(self) -> None:
        with self._lock:
            self._board.ignored += 1
            self._write_locked()

    def flush(self) -> None:
        with self._lock:
            self._write_locked()

    def _write_locked(self) -> None:
        self._last_write = self._mono()
        doc = {"updated_at": self._clock().isoformat(), "pid": os.getpid(),
               "bays": {k: asdict(v) for k, v in sorted(self._board.bays.items())},
               "unregistered": self._board.unregistered, "ignored": self._board.ignored}
        write_json_atomic(self.path, doc)


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def format_bay(b: dict[str, Any]) -> str:
    """One line per bay for people: camera, officer, state, progress, rate, ETA, error."""
    cam = b.get("camera") or "-"
    officer = b.get("officer") or "-"
    done = f"{b.get('files_done', 0)}/{b.get('files_total', 0)} files"
    mb = f"{b.get('bytes_done', 0) / 1e6:.1f}/{b.get('bytes_total', 0) / 1e6:.1f} MB"
    rate = f"{b.get('throughput_bps', 0.0) / 1e6:.1f} MB/s"
    eta = "-" if b.get("eta_s") is None else f"{b['eta_s']:.0f}s"
    err = f"  error: {b['last_error']}" if b.get("last_error") else ""
    outcome = f" ({b['outcome']})" if b.get("outcome") else ""
    kept = (f"  wiped {b.get('wiped', 0)}, kept {b['kept']} on the camera "
            f"({b.get('kept_why')})" if b.get("kept") else "")
    return (f"bay {b['bay']:>4}  {b.get('state', '?'):<11}{outcome}  camera {cam}  "
            f"officer {officer}  {done}  {mb}  {rate}  ETA {eta}{kept}{err}")
