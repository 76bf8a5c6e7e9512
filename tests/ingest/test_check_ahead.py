"""The media check of a staged copy runs while the copy is re-read from the disk
(ingest/offload.py `_check_ahead`), not after: the two reads of a big file overlap. Its
verdict is used only once the re-read has proven the bytes (a copy that fails the
re-read is judged by nobody: tests/ingest/test_settling.py flips a byte there), and a
file already in the catalog is not judged again. Real ffprobe/ffmpeg, in process.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import pytest

from archive import staging
from archive.store import ContentStore
from evidock.wiring import Services
from fixtures.camera import CameraTree
from ingest.media import Prober, Validity
from ingest.offload import Offloader
from ingest.outcome import OffloadRequest

WAIT_S = 10.0  # a bound, not a pause: every wait below returns as soon as its event is set


class WatchedProber(Prober):
    """The real prober; it notes which staged files its check has started on."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Condition()
        self.started: Counter[str] = Counter()

    def check(self, path: Path, *, kind: str, ext: str) -> Validity:
        with self.lock:
            self.started[path.name] += 1
            self.lock.notify_all()
        return super().check(path, kind=kind, ext=ext)

    def wait_started(self, name: str) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.started[name] > 0, timeout=WAIT_S)


def _offloader(services: Services, prober: Prober, *, before_reread: object = None,
               ) -> Offloader:
    store = ContentStore(root=services.store.root, before_reread=before_reread)  # type: ignore[arg-type]
    return Offloader(settings=services.settings, store=store, catalog=services.catalog,
                     prober=prober, clock=services.clock, audit=services.audit())


def _media_sizes(template: CameraTree) -> set[int]:
    return {p.stat().st_size for kind in ("video", "audio", "photo")
            for p in template.paths(kind)}


def test_each_media_file_is_checked_while_it_is_reread(
        services: Services, camera: Path, camera_template: CameraTree) -> None:
    """The re-read of every media file's staged copy waits (bounded) until the media
    check of that very file has started: that can only happen if the check starts
    before the re-read ends. Had the check come after the re-read, every wait would
    time out."""
    prober = WatchedProber()
    media = _media_sizes(camera_template)
    overlapped: dict[str, bool] = {}

    def at_reread(path: Path) -> None:  # after the fsync, before the re-read
        if path.stat().st_size in media:
            overlapped[path.name] = prober.wait_started(path.name)

    report = _offloader(services, prober, before_reread=at_reread).run(
        OffloadRequest(source=camera, device_serial="ZFY0001", officer_id="123456"))
    assert report.error is None, report
    assert len(overlapped) == len(media) > 0
    assert all(overlapped.values()), f"checked only after the re-read: {overlapped}"
    assert set(prober.started.values()) == {1}, "each file is judged once"
    assert len(prober.started) == len(media)


def test_each_media_check_starts_before_its_copy_is_fsynced(
        services: Services, camera: Path, camera_template: CameraTree,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check starts as the copy's last byte is written: the fsync of each media
    file's staged copy waits (bounded) until that file's check has started. Had the
    check started only when the settling thread takes the file (after the fsync), every
    wait would time out."""
    prober = WatchedProber()
    media = _media_sizes(camera_template)
    overlapped: dict[str, bool] = {}
    real = staging._fsync

    def fsync(fd: int, what: str) -> None:
        st = os.fstat(fd)
        if what == "cannot fsync staging file" and st.st_size in media:
            name = next(p.name for p in (services.store.root / ".staging").rglob("*.part")
                        if p.stat().st_ino == st.st_ino)
            overlapped[name] = prober.wait_started(name)
        real(fd, what)

    monkeypatch.setattr(staging, "_fsync", fsync)
    report = _offloader(services, prober).run(
        OffloadRequest(source=camera, device_serial="ZFY0001", officer_id="123456"))
    assert report.error is None, report
    assert len(overlapped) == len(media) > 0
    assert all(overlapped.values()), f"checked only after the fsync: {overlapped}"
    assert {f.status for f in report.files if f.size} <= {"ingested", "flagged"}


def test_a_file_already_in_the_catalog_is_not_judged_again(
        services: Services, camera: Path, camera_template: CameraTree) -> None:
    request = OffloadRequest(source=camera, device_serial="ZFY0001", officer_id="123456")
    first = WatchedProber()
    _offloader(services, first).run(request)
    assert sum(first.started.values()) == len(_media_sizes(camera_template))
    again = WatchedProber()
    report = _offloader(services, again).run(request)
    assert {f.status for f in report.files if f.size} == {"duplicate"}
    assert again.started == Counter(), "a duplicate keeps the judgement it was given"
    assert os.listdir(services.store.root / ".staging") == [], "nothing left staged"
