"""The re-read that follows the copy (archive/reread.py): a staging file is read back
from the disk a window behind its writer, so the verify after the copy re-reads only
the rest. The guarantee must be the one of a whole re-read after the copy: a byte the
disk did not keep, in any part, is a mismatch and nothing is linked; a file written to
after the copy is re-read whole. Real files, the store's disk seam, real threads.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from evidock_testing import StepClock, open_services

from archive.store import ContentStore
from config import load_settings
from fixtures.camera import CameraTree
from ingest.offload import Offloader
from ingest.outcome import OffloadRequest
from integrity.errors import DigestMismatch

KiB = 1024
WINDOW = 64 * KiB
CHUNK = 16 * KiB
DATA = os.urandom(1 * 1024 * KiB + 123)  # 16 windows and a partial page
WAIT_S = 10.0  # a bound, not a pause: waits return as soon as their condition holds


class Seam:
    """The store's before_reread seam: notes the file's size at each call; flips a byte
    (as a disk that did not keep it) at call ``flip_at_call``, or at the next call once
    ``armed``."""

    def __init__(self, *, flip_at_call: int | None = None, offset: int = 0) -> None:
        self.sizes: list[int] = []
        self.flip_at_call, self.offset, self.armed = flip_at_call, offset, False
        self.called = threading.Condition()

    def __call__(self, path: Path) -> None:
        with self.called:
            self.sizes.append(path.stat().st_size)
            self.called.notify_all()
        if len(self.sizes) == self.flip_at_call or self.armed:
            self.armed = False
            flip(path, self.offset)

    def wait_calls(self, n: int) -> None:
        with self.called:
            self.called.wait_for(lambda: len(self.sizes) >= n, timeout=WAIT_S)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))
        fh.flush()
        os.fsync(fh.fileno())


class Paced(io.RawIOBase):
    """DATA, served like a slow camera: after each two windows it waits (bounded) until
    the follower has come by once more, so the re-read really runs while the copy
    goes on, whatever the speed of this machine."""

    def __init__(self, seam: Seam) -> None:
        self.at, self.seam = 0, seam

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if self.at and self.at % (2 * WINDOW) == 0:
            self.seam.wait_calls(self.at // (2 * WINDOW))
        n = min(len(buf), len(DATA) - self.at, 2 * WINDOW - self.at % (2 * WINDOW))
        buf[:n] = DATA[self.at:self.at + n]
        self.at += n
        return n


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ContentStore]:
    s = ContentStore(root=tmp_path / "store")
    s.ensure()
    yield s


def _blobs(store: ContentStore) -> set[str]:
    return {p.name for p in store.root.glob("??/??/*")}


def _no_follower_left() -> bool:
    return not any(t.name == "reread" for t in threading.enumerate())


def test_the_copy_is_read_back_while_it_is_written_and_verifies(store: ContentStore) -> None:
    seam = Seam()
    store.before_reread = seam
    with store.stage() as stager:
        written = stager.copy(Paced(seam), chunk_size=CHUNK, follow=WINDOW)
        assert written.followed is not None
        assert written.followed.done >= len(DATA) - 3 * WINDOW, "most was read back early"
        staged = stager.verify(written)
        store.link(staged)
    assert staged.digests.blake3 == blake3.blake3(DATA).hexdigest()
    during = [size for size in seam.sizes if size < len(DATA)]
    assert len(during) >= 6, f"read back while the file grew: sizes {seam.sizes}"
    assert _blobs(store) == {staged.digests.blake3} and _no_follower_left()


@pytest.mark.parametrize("offset", [0, 5000, WINDOW + 1])
def test_a_byte_the_disk_did_not_keep_during_the_copy_is_a_mismatch(
        store: ContentStore, offset: int) -> None:
    """Flipped on the disk seam at the follower's first range, while the file still
    grows, inside what that range or the next reads back: a mismatch; nothing linked."""
    seam = Seam(flip_at_call=1, offset=offset)
    store.before_reread = seam
    with store.stage() as stager:
        written = stager.copy(Paced(seam), chunk_size=CHUNK, follow=WINDOW)
        assert seam.sizes[0] < len(DATA), "flipped during the copy"
        with pytest.raises(DigestMismatch) as caught:
            stager.verify(written)
        assert not written.path.exists(), "the staged file is removed"
    assert caught.value.details["expected"] == blake3.blake3(DATA).hexdigest()
    assert _blobs(store) == set() and _no_follower_left()


def test_a_byte_the_disk_did_not_keep_in_the_last_part_is_a_mismatch(
        store: ContentStore) -> None:
    """Flipped at the verify's own call of the seam, in the part left to it."""
    seam = Seam(offset=len(DATA) - 10)
    store.before_reread = seam
    with store.stage() as stager:
        written = stager.copy(Paced(seam), chunk_size=CHUNK, follow=WINDOW)
        assert written.followed is not None and written.followed.done < len(DATA) - 10
        seam.armed = True
        with pytest.raises(DigestMismatch):
            stager.verify(written)
    assert _blobs(store) == set()


def test_a_file_changed_after_the_copy_is_read_back_whole(store: ContentStore) -> None:
    """A byte changed (through the file system) in a part already read back: the file no
    longer has the copy's seal (size, times), so the verify re-reads all of it."""
    with store.stage() as stager:
        written = stager.copy(io.BytesIO(DATA), chunk_size=CHUNK, follow=WINDOW)
        assert written.followed is not None and written.followed.done > 100
        with open(written.path, "r+b") as fh:
            fh.seek(100)
            fh.write(bytes([DATA[100] ^ 0x01]))
        st = os.stat(written.path)  # a later modification time, as a later write has
        os.utime(written.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        with pytest.raises(DigestMismatch):
            stager.verify(written)
    assert _blobs(store) == set()


def test_a_failed_copy_stops_its_follower_and_leaves_nothing(store: ContentStore) -> None:
    class Unplugged(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 5 * WINDOW

        def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
            if self.left <= 0:
                raise OSError(5, "Input/output error")
            n = min(len(buf), self.left)
            buf[:n] = DATA[:n]
            self.left -= n
            return n

    with store.stage() as stager:
        with pytest.raises(OSError):
            stager.copy(Unplugged(), chunk_size=CHUNK, follow=WINDOW)
        assert list(stager.directory.iterdir()) == []
    assert _no_follower_left()


def test_an_offload_with_a_small_window_stores_every_file_and_fails_a_bad_one(
        camera: Path, camera_template: CameraTree, tmp_path: Path) -> None:
    """With a window of 64 KiB every camera file but the smallest is read back in parts;
    a byte flipped on the disk seam in the first file (3.7 MB) fails that file alone
    (not wiped); the others are stored and wiped."""
    biggest = sorted(camera_template.paths())[0]  # copied first (camera order): 1.part
    size = biggest.stat().st_size
    svc = open_services(load_settings(environ={
        "EVIDOCK_HOME": str(tmp_path / "home"),
        "EVIDOCK_INGEST__REREAD_WINDOW": str(WINDOW)}), clock=StepClock())
    flipped: list[int] = []

    def seam(path: Path) -> None:  # once, in the first file copied: camera order
        if not flipped and path.name == "1.part":
            flipped.append(path.stat().st_size)
            flip(path, WINDOW // 2)

    try:
        offloader = Offloader(settings=svc.settings, catalog=svc.catalog, prober=svc.prober,
                              clock=svc.clock, audit=svc.audit(),
                              store=ContentStore(root=svc.store.root, before_reread=seam))
        report = offloader.run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                              officer_id="123456", wipe_after_verify=True))
    finally:
        svc.close()
    assert flipped and size > 4 * WINDOW
    by_path = {os.fsdecode(f.relpath): f for f in report.files}
    bad = by_path[os.fsdecode(biggest.relative_to(camera_template.root))]
    assert (bad.status, bad.code, bad.wiped) == ("failed", "E_DIGEST_MISMATCH", False)
    others = [f for f in report.files if f is not bad and f.size]
    assert others and all(f.status in ("ingested", "flagged") for f in others), others
    assert (camera / biggest.relative_to(camera_template.root)).read_bytes() == \
        biggest.read_bytes(), "the failed file stays on the camera as it was"
