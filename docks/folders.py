"""Watched-folder source: stations where cameras arrive as auto-mounted folders or shares.

Each bay has a folder (``[[dock.bays]] folder``); a camera is a directory that appears
inside it (``<bay folder>/<camera folder>/...``). It is taken once it is stable: every
filesystem event under it re-arms a ``threading.Timer`` of ``settle_s``; when the timer
fires, the tree's shape (file count, bytes, newest mtime) is compared with the shape at
the start of the burst and the camera is reported only if nothing changed — otherwise
the timer re-arms, which also covers network shares that deliver no inotify events.
The camera leaves when its folder disappears. Dot-directories are ignored, so a copier
can stage ``.incoming`` and rename it into place.

The camera's serial (see ``identify_folder``): the serial that the camera model's
file-name patterns capture, if every parsed name agrees; else the folder name if it is
a plausible serial. A marker file inside the folder is deliberately not used: the
offload stores every file it finds, so a marker would become (flagged) evidence.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from docks.sources import Docked, Sink, Undocked
from ingest.names import NameParser

if TYPE_CHECKING:  # watchdog itself is imported only when a folder source starts
    from watchdog.observers.api import BaseObserver

log = logging.getLogger("evidock.dock")
_FOLDER_SERIAL = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ACTIVITY = {"created", "modified", "moved", "deleted", "closed"}


@dataclass(frozen=True)
class WatchedBay:
    number: int
    folder: Path
    camera_model: str


@dataclass(frozen=True)
class FolderIdentity:
    serial: str
    officer: str | None
    how: str  # "names" | "folder name"


def tree_shape(root: Path) -> tuple[int, int, int] | None:
    """(files, bytes, newest mtime ns) under root, or None if it is gone."""
    files = size = newest = 0
    if not root.is_dir():
        return None
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            files, size, newest = files + 1, size + st.st_size, max(newest, st.st_mtime_ns)
    return files, size, newest


def identify_folder(root: Path, parser: NameParser, *, limit: int = 10000,
                    ) -> FolderIdentity | None:
    serials: Counter[str] = Counter()
    officers: Counter[str] = Counter()
    seen = 0
    for _dirpath, _dirs, names in os.walk(root):
        for name in names:
            parsed = parser.parse(os.fsencode(name))
            seen += 1
            if parsed is not None and parsed.serial:
                serials[parsed.serial] += 1
                if parsed.officer:
                    officers[parsed.officer] += 1
        if seen >= limit:
            break
    officer = officers.most_common(1)[0][0] if len(officers) == 1 else None
    if len(serials) == 1:
        return FolderIdentity(next(iter(serials)), officer, "names")
    if len(serials) > 1:
        log.warning("camera folder %s: names carry several serials %s; using the folder name",
                    root, dict(serials))
    if _FOLDER_SERIAL.fullmatch(root.name):
        return FolderIdentity(root.name, officer, "folder name")
    return None


class FolderSource:
    name = "folder"

    def __init__(self, *, bays: tuple[WatchedBay, ...], settle_s: float) -> None:
        self.bays = bays
        self.settle_s = settle_s
        self._lock = threading.Lock()
        self._timers: dict[Path, threading.Timer] = {}
        self._shapes: dict[Path, tuple[int, int, int] | None] = {}
        self._present: set[Path] = set()
        self._observer: BaseObserver | None = None
        self._sink: Sink | None = None
        self._stopped = False

    def _bay_of(self, path: Path) -> tuple[WatchedBay, Path] | None:
        for bay in self.bays:
            try:
                rel = path.relative_to(bay.folder)
            except ValueError:
                continue
            if rel.parts and not rel.parts[0].startswith("."):
                return bay, bay.folder / rel.parts[0]
        return None

    def start(self, sink: Sink) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        source = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in _ACTIVITY:
                    return
                for raw in (event.src_path, getattr(event, "dest_path", "")):
                    if raw:
                        source._touched(Path(os.fsdecode(raw)))

        self._sink = sink
        observer = Observer()
        for bay in self.bays:
            bay.folder.mkdir(parents=True, exist_ok=True)
            observer.schedule(Handler(), str(bay.folder), recursive=True)
        observer.start()
        self._observer = observer
        for bay in self.bays:  # cameras already there (e.g. after a restart)
            for child in sorted(bay.folder.iterdir()):
                self._touched(child)

    def _touched(self, path: Path) -> None:
        found = self._bay_of(path)
        if found is None:
            return
        bay, camera = found
        with self._lock:
            if self._stopped:
                return
            if camera.is_dir():
                if camera not in self._timers:
                    self._shapes[camera] = tree_shape(camera)
                self._arm_locked(bay, camera)
                return
            self._cancel_locked(camera)
            if camera not in self._present:
                return
            self._present.discard(camera)
        self._emit(Undocked(str(camera), "folder", self._props(bay, camera)))

    def _arm_locked(self, bay: WatchedBay, camera: Path) -> None:
        old = self._timers.pop(camera, None)
        if old is not None:
            old.cancel()
        timer = threading.Timer(self.settle_s, self._settled, args=(bay, camera))
        timer.daemon = True
        self._timers[camera] = timer
        timer.start()

    def _cancel_locked(self, camera: Path) -> None:
        timer = self._timers.pop(camera, None)
        if timer is not None:
            timer.cancel()
        self._shapes.pop(camera, None)

    def _settled(self, bay: WatchedBay, camera: Path) -> None:
        shape = tree_shape(camera)
        with self._lock:
            if self._stopped or self._timers.get(camera) is not threading.current_thread():
                return  # re-armed or cancelled meanwhile
            if shape is None:
                self._cancel_locked(camera)
                return
            if shape != self._shapes.get(camera):
                self._shapes[camera] = shape
                self._arm_locked(bay, camera)
                return
            self._cancel_locked(camera)
            self._present.add(camera)
        self._emit(Docked(str(camera), "folder", self._props(bay, camera)))

    @staticmethod
    def _props(bay: WatchedBay, camera: Path) -> dict[str, str]:
        return {"FOLDER": str(camera), "BAY": str(bay.number), "CAMERA_MODEL": bay.camera_model}

    def _emit(self, event: Docked | Undocked) -> None:
        if self._sink is not None:
            self._sink(event)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        observer = self._observer
        if observer is not None:
            observer.stop()
            observer.join()
            self._observer = None
