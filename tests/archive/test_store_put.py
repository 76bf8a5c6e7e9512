"""One way into the content store: copy while hashing, fsync, re-read from the disk,
then link read-only under the BLAKE3 name, the directory fsynced.

A byte is flipped on the disk between a staged file's fsync and its re-read through the
store's ``before_reread`` seam (the disk boundary); every entry path (offload, case
document, rendition segments and manifest, salvage) must then raise or report
E_DIGEST_MISMATCH and link nothing.
"""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import blake3
import pytest
from evidock_testing import cached_bytes, write_agency_config
from small_disk import tmpfs
from sqlmodel import Session, col, func, select

from archive import staging
from archive.catalog.models import Derivative, Rendition, Seal
from archive.reread import WINDOW
from archive.staging import Staged, StagingWriter
from archive.store import ContentStore
from config import load_settings
from evidock.wiring import Services
from fixtures.media import ClipSpec, encode_clip
from ingest.outcome import OffloadReport, OffloadRequest
from ingest.salvage import Recoverer
from integrity.digest import Digests
from integrity.errors import DigestMismatch, DiskFull, EvidockError, StoreError
from records.permissions import Actor

MiB = 1 << 20


class Flip:
    """A disk that did not keep what it was given: flips one byte of each staged file
    ``pick`` chooses, on the disk (written and fsynced), before the store re-reads it."""

    def __init__(self, pick: Callable[[Path], bool] = lambda p: True) -> None:
        self.pick = pick
        self.seen: list[Path] = []
        self.flipped: list[Path] = []

    def __call__(self, path: Path) -> None:
        self.seen.append(path)
        if not self.pick(path) or path.stat().st_size == 0:
            return
        fd = os.open(path, os.O_RDWR)
        try:
            at = os.fstat(fd).st_size // 2
            (old,) = os.pread(fd, 1, at)
            assert os.pwrite(fd, bytes([old ^ 0x01]), at) == 1
            os.fsync(fd)
        finally:
            os.close(fd)
        self.flipped.append(path)


def blobs(store: ContentStore) -> set[str]:
    """Every name in the store proper (not staging, not quarantine)."""
    return {p.name for p in store.root.glob("??/??/*")}


def staging_files(store: ContentStore) -> list[Path]:
    return [p for p in (store.root / ".staging").rglob("*") if p.is_file()]


def check_mismatch(exc: EvidockError, data: bytes) -> None:
    assert exc.code == "E_DIGEST_MISMATCH"
    assert exc.details["expected"] == blake3.blake3(data).hexdigest()
    assert exc.details["actual"] != exc.details["expected"]
    assert exc.details["expected_size"] == exc.details["actual_size"] == len(data)


# ---------------------------------------------------------------------- the store itself


def test_put_links_a_read_only_blob_and_fsyncs_file_then_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ContentStore(root=tmp_path / "store")
    data = os.urandom(3 * MiB + 17)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the kernel boundary: record what was made durable
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    dropped: list[str] = []
    real_fadvise = os.posix_fadvise

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        if (offset, length, advice) == (0, 0, os.POSIX_FADV_DONTNEED):  # whole file
            dropped.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fadvise(fd, offset, length, advice)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    digests = store.put(io.BytesIO(data))

    assert (digests.size, digests.blake3, digests.sha256) == (
        len(data), blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest())
    final = store.path_for(digests.blake3)
    assert final.read_bytes() == data
    assert stat.S_IMODE(final.stat().st_mode) == 0o444
    staged_at = next(i for i, p in enumerate(synced) if p.endswith(".part"))
    assert [p for p in dropped if p.endswith(".part")] == [synced[staged_at]], \
        "the staged file's pages were dropped before its re-read"
    assert str(final.parent) in synced[staged_at + 1:], "directory fsynced after the link"
    assert staging_files(store) == []


def test_a_byte_flipped_before_the_reread_is_caught_and_nothing_is_linked(
        tmp_path: Path) -> None:
    flip = Flip()
    store = ContentStore(root=tmp_path / "store", before_reread=flip)
    data = os.urandom(2 * MiB)

    with pytest.raises(DigestMismatch) as caught:
        store.put(io.BytesIO(data))

    check_mismatch(caught.value, data)
    assert len(flip.flipped) == 1
    assert blobs(store) == set() and staging_files(store) == []


def test_a_reader_failing_mid_stream_leaves_nothing(tmp_path: Path) -> None:
    store = ContentStore(root=tmp_path / "store")

    class Dies:
        reads = 0

        def readinto(self, buf: memoryview) -> int:
            self.reads += 1
            if self.reads == 3:
                raise OSError(errno.EIO, "camera unplugged")
            buf[:] = b"x" * len(buf)
            return len(buf)

    with pytest.raises(OSError, match="camera unplugged"):  # the source's own error
        store.put(Dies())
    assert blobs(store) == set() and staging_files(store) == []


def test_short_writes_are_completed_and_a_zero_write_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ContentStore(root=tmp_path / "store")
    data = os.urandom(MiB + 3)
    real_write = os.write
    calls: list[int] = []

    def short(fd: int, buf: memoryview) -> int:  # the kernel may take less than asked
        calls.append(len(buf))
        return real_write(fd, buf[:4093])

    monkeypatch.setattr(os, "write", short)
    digests = store.put(io.BytesIO(data))
    assert store.path_for(digests.blake3).read_bytes() == data
    assert len(calls) > len(data) // 4093

    monkeypatch.setattr(os, "write", lambda fd, buf: 0)
    with pytest.raises(StoreError):
        store.put(io.BytesIO(b"never stored"))
    assert blobs(store) == {digests.blake3} and staging_files(store) == []


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 600 KiB tmpfs: a real ENOSPC from the kernel (needs root)."""
    with tmpfs(tmp_path / "small", "600k") as mnt:
        yield mnt


def test_a_full_disk_raises_disk_full_and_leaves_nothing(small_fs: Path) -> None:
    store = ContentStore(root=small_fs / "store")
    with pytest.raises(DiskFull) as caught:
        store.put(io.BytesIO(os.urandom(MiB)))
    assert caught.value.code == "E_DISK_FULL" and caught.value.details["errno"] == errno.ENOSPC
    assert blobs(store) == set() and staging_files(store) == []
    assert store.put(io.BytesIO(b"room for this")).size == 13, "space came back"


def test_only_a_verified_staged_file_can_be_linked(tmp_path: Path) -> None:
    store, other = ContentStore(root=tmp_path / "a"), ContentStore(root=tmp_path / "b")
    with store.stage() as stager:
        written = stager.copy(io.BytesIO(b"evidence"))
        with pytest.raises(TypeError):
            store.link(written)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            Staged(written.path, written.digests, stager, (0, 0, 0, 0, 0), object())
        staged = stager.verify(written)
        with pytest.raises(TypeError):
            other.link(staged)
        assert stat.S_IMODE(staged.path.stat().st_mode) == 0o444
        assert store.link(staged) is True
        assert store.link(staged) is False  # taken by the same bytes: kept as it is
    assert blobs(store) == {written.digests.blake3} and blobs(other) == set()


def test_a_staged_file_edited_after_its_verify_is_not_linked(tmp_path: Path) -> None:
    store = ContentStore(root=tmp_path / "store")
    data = os.urandom(64 * 1024)
    with store.stage() as stager:
        staged = stager.verify(stager.copy(io.BytesIO(data)))
        os.chmod(staged.path, 0o644)
        Flip()(staged.path)
        with pytest.raises(DigestMismatch) as caught:
            store.link(staged)
        check_mismatch(caught.value, data)
        touched = stager.verify(stager.copy(io.BytesIO(data)))
        os.utime(touched.path)  # touched, same bytes: re-read, then linked
        assert store.link(touched) is True
    assert blobs(store) == {staged.digests.blake3}


def test_a_wrong_unvouched_blob_is_quarantined_and_replaced(tmp_path: Path) -> None:
    store = ContentStore(root=tmp_path / "store")
    data = b"the real bytes"
    b3 = blake3.blake3(data).hexdigest()
    planted = store.path_for(b3)
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"planted bytes")

    assert store.put(io.BytesIO(data), vouched=lambda _: True).blake3 == b3
    assert planted.read_bytes() == b"planted bytes", "vouched for: not re-read"
    store.put(io.BytesIO(data))
    assert planted.read_bytes() == data
    (kept,) = (store.root / ".quarantine").iterdir()
    assert kept.read_bytes() == b"planted bytes"


def test_put_file_takes_only_files_of_its_own_staging_directory(tmp_path: Path) -> None:
    store = ContentStore(root=tmp_path / "store")
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not staged")
    with store.stage() as stager:
        with pytest.raises(StoreError):
            stager.put_file(outside)
        with pytest.raises(StoreError):
            stager.put_file(stager.directory / ".." / ".." / ".." / "outside.bin")
        inside = stager.directory / "tool-output.bin"
        inside.write_bytes(b"made by a tool")
        digests = stager.put_file(inside)
    assert store.path_for(digests.blake3).read_bytes() == b"made by a tool"


def test_a_tool_written_file_is_hashed_while_written_back_then_fsynced_then_reread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """stage_file (a rendition's segments): writeback started, hashed from what the tool
    wrote, fsynced, and only then its pages dropped and re-read for the proof."""
    seen: list[str] = []
    store = ContentStore(root=tmp_path / "store",
                         before_reread=lambda path: seen.append(f"reread {path.name}"))
    real_fsync, real_fadvise = os.fsync, os.posix_fadvise
    real_hash = staging.hash_stream

    def name(fd: int) -> str:
        return Path(os.readlink(f"/proc/self/fd/{fd}")).name

    def fsync(fd: int) -> None:
        seen.append(f"fsync {name(fd)}")
        real_fsync(fd)

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            seen.append(f"dontneed {name(fd)}")
        real_fadvise(fd, offset, length, advice)

    def hash_stream(src: io.RawIOBase, **kw: object) -> Digests:  # a spy: the real hash
        seen.append(f"hash {name(src.fileno())}")
        return real_hash(src, **kw)  # type: ignore[arg-type]

    data = os.urandom(2 * MiB + 5)
    with store.stage() as stager:
        tool = stager.directory / "seg00000.mp4"
        tool.write_bytes(data)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "posix_fadvise", fadvise)
        monkeypatch.setattr(staging, "hash_stream", hash_stream)
        staged = stager.stage_file(tool)
        monkeypatch.undo()
    assert (staged.digests.size, staged.digests.sha256) == (
        len(data), hashlib.sha256(data).hexdigest())
    assert [s for s in seen if s.endswith("seg00000.mp4")] == [
        "dontneed seg00000.mp4",  # writeback started: the disk writes while we hash
        "hash seg00000.mp4",  # BLAKE3 + SHA-256 of what the tool wrote
        "fsync seg00000.mp4",  # durable before it is proven
        "reread seg00000.mp4",  # (the disk-boundary seam)
        "dontneed seg00000.mp4",  # its pages dropped,
        "hash seg00000.mp4",  # and read back from the disk
    ]


def test_staging_writer_starts_writeback_without_losing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        w = StagingWriter(fd, every=64 * 1024)
        data = os.urandom(300 * 1024)
        for i in range(0, len(data), 10_000):
            assert w.write(memoryview(data)[i:i + 10_000]) == len(data[i:i + 10_000])
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_staging_writer_writes_aligned_chunks_past_the_page_cache(tmp_path: Path) -> None:
    """copy_and_hash's page-aligned chunks go to the disk directly (no page cache filled);
    the last, partial block through the cache; every byte lands (issue 14)."""
    path, chunks = tmp_path / "f", [os.urandom(1 << 20) for _ in range(3)]
    buf = mmap.mmap(-1, 1 << 20)  # page-aligned, as copy_and_hash's pool
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        w = StagingWriter(fd, direct=True)
        assert w.direct, "the test filesystem refuses O_DIRECT"
        for chunk in chunks:
            buf[:] = chunk
            assert w.write(memoryview(buf)) == len(chunk)
        assert w.direct and cached_bytes(path) == 0  # nothing went through the cache
        assert w.write(memoryview(b"tail" * 250)) == 1000
        assert not w.direct  # a partial block: through the cache from here on
        os.fsync(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(chunks) + b"tail" * 250


def test_a_write_o_direct_refuses_is_made_through_the_cache(tmp_path: Path) -> None:
    data = bytearray(os.urandom((1 << 20) + 1))
    misaligned = memoryview(data)[1:]  # an address no disk DMA takes: EINVAL
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        w = StagingWriter(fd, direct=True)
        assert w.direct
        assert w.write(misaligned) == 1 << 20
        assert not w.direct
        assert w.write(misaligned) == 1 << 20
    finally:
        os.close(fd)
    assert path.read_bytes() == bytes(misaligned) * 2


def _fetched_from_storage() -> int:
    """Bytes this process has had the storage layer fetch (/proc/self/io read_bytes):
    a read served from the page cache adds nothing."""
    with open("/proc/self/io", encoding="ascii") as fh:
        return int(dict(line.split(": ") for line in fh.read().splitlines())["read_bytes"])


@pytest.mark.parametrize("follow", [None, WINDOW])
@pytest.mark.parametrize("direct", [True, False])
def test_a_staged_copy_fills_no_page_cache_and_is_proven_from_the_disk(
        tmp_path: Path, direct: bool, follow: int | None) -> None:
    """Stager.copy writes behind; with `ingest.direct_writes = true` directly: after the
    copy and its fsync the staging file has no cached pages but its last partial one;
    by default (false) through the cache, its writeback started every 8 MiB. Either way
    every byte is then read back from the disk, not from the cache that holds it: what
    the follower read back during the copy (8 MiB behind, as an offload does) and what
    verify reads after it each come from the storage layer (/proc/self/io)."""
    data = os.urandom(20 * (1 << 20) + 123)  # past WRITEBACK_EVERY; ends mid-page
    settings = load_settings(environ={"EVIDOCK_HOME": str(tmp_path),
                                      "EVIDOCK_INGEST__DIRECT_WRITES": str(direct).lower()})
    store = ContentStore(root=tmp_path / "store",
                         direct_writes=settings.ingest.direct_writes)
    with store.stage() as stager:
        before = _fetched_from_storage()
        written = stager.copy(io.BytesIO(data), follow=follow)
        during = _fetched_from_storage() - before
        if follow is None:
            cached = cached_bytes(written.path)
            assert cached <= 4096 if direct else cached >= len(data) - 4096
        followed = written.followed.done if written.followed is not None else 0
        assert followed >= (len(data) - 2 * WINDOW if follow else 0), followed
        assert during >= followed, f"the follower read {during} of {followed} from the disk"
        before = _fetched_from_storage()
        staged = stager.verify(written)
        after = _fetched_from_storage() - before
        assert after >= len(data) - followed - 4096, f"verify read {after} from the disk"
        assert staged.digests.blake3 == blake3.blake3(data).hexdigest()
        assert written.path.read_bytes() == data


# ---------------------------------------------------------------------- entry paths


def _offload(services: Services, camera: Path, **kw: object) -> OffloadReport:
    req = OffloadRequest(source=camera, device_serial="ZFY0001", **kw)  # type: ignore[arg-type]
    return services.offloader().run(req)


def test_offload_reports_a_flipped_copy_and_neither_links_nor_wipes_it(
        services: Services, camera: Path) -> None:
    flip = Flip(lambda p: not flip.flipped)  # the first file staged
    services.store.before_reread = flip

    report = _offload(services, camera, wipe_after_verify=True)

    (bad,) = [f for f in report.files if f.status == "failed"]
    assert (bad.code, report.outcome) == ("E_DIGEST_MISMATCH", "findings")
    data = (camera / os.fsdecode(bad.relpath)).read_bytes()  # still on the camera
    assert bad.blake3 == blake3.blake3(data).hexdigest()
    assert bad.blake3 not in blobs(services.store)
    assert bad.relpath not in {r.original_path for r in services.catalog.recordings()}
    good = {f.blake3 for f in report.files if f.status in ("ingested", "flagged")}
    with Session(services.catalog.engine) as s:  # the signed records: blobs of their own
        sealed = set(s.exec(select(col(Seal.blake3))))
    assert blobs(services.store) == good | sealed
    assert len(flip.seen) == len(report.files) + len(sealed)
    assert staging_files(services.store) == []


@pytest.fixture
def rendered(services: Services, camera: Path) -> Services:
    report = _offload(services, camera)
    assert report.outcome == "completed"
    return services


@pytest.mark.parametrize("which", ["segment", "manifest"])
def test_a_flipped_rendition_file_fails_the_rendition_and_links_nothing(
        rendered: Services, which: str) -> None:
    svc = rendered
    before = blobs(svc.store)
    # ffmpeg's segments are staged in place under r/; the manifest is copied to N.part
    flip = Flip(lambda p: (p.parent.name == "r") == (which == "segment")
                and not flip.flipped)
    svc.store.before_reread = flip
    renderer = svc.renderer()
    video = next(r for r in renderer.pending() if r.kind == "video")

    with pytest.raises(DigestMismatch) as caught:
        renderer.render(video)

    assert caught.value.code == "E_DIGEST_MISMATCH" and len(flip.flipped) == 1
    assert flip.flipped[0] == flip.seen[-1], "nothing was staged after the mismatch"
    new = blobs(svc.store) - before
    assert caught.value.details["expected"] not in new
    assert len(new) == len(flip.seen) - 1  # only the files verified before it
    with Session(svc.catalog.engine) as s:
        assert s.exec(select(func.count()).select_from(Rendition)).one() == 0
    svc.store.before_reread = None
    assert renderer.render(video).status == "ok", "a later run makes it"


def test_an_attached_document_flipped_on_disk_is_refused(home: Path, tmp_path: Path,
                                                         request: pytest.FixtureRequest,
                                                         ) -> None:
    write_agency_config(home)
    svc: Services = request.getfixturevalue("services")
    desk = svc.cases()
    clerk: Actor = svc.gate().by_name("clerk")
    desk.create(clerk, number="邵城管罚〔2019〕第001号", case_type="行政处罚", unit="城东中队")
    doc = tmp_path / "询问笔录.pdf"
    data = b"%PDF-1.4 " + os.urandom(200 * 1024)
    doc.write_bytes(data)
    svc.store.before_reread = Flip()

    with pytest.raises(DigestMismatch) as caught:
        desk.attach(clerk, "邵城管罚〔2019〕第001号", doc)

    check_mismatch(caught.value, data)
    assert blobs(svc.store) == set() and staging_files(svc.store) == []
    assert svc.cases().book.case("邵城管罚〔2019〕第001号").id  # the case is still there
    svc.store.before_reread = None
    assert desk.attach(clerk, "邵城管罚〔2019〕第001号", doc).blake3 in blobs(svc.store)


@pytest.fixture
def damaged(services: Services, tmp_path: Path) -> Services:
    """A station holding one faststart MP4 cut at 60%: its moov survived, so salvageable."""
    clip = tmp_path / "clip.mp4"
    encode_clip(clip, ClipSpec(duration_s=3.0, height=240, kbps=800),
                creation_time=datetime(2026, 11, 20, 8, 30, tzinfo=UTC), faststart=True)
    camera = tmp_path / "camera" / "DCIM" / "100MEDIA"
    camera.mkdir(parents=True)
    data = clip.read_bytes()
    (camera / "DAMAGED.MP4").write_bytes(data[: int(len(data) * 0.6)])
    _offload(services, camera.parent.parent)
    shutil.rmtree(tmp_path / "camera")
    return services


@pytest.mark.parametrize("flipped", [False, True])
def test_salvage_output_is_verified_before_it_is_linked(damaged: Services,
                                                         flipped: bool) -> None:
    svc = damaged
    (rec,) = svc.catalog.recordings()
    before = blobs(svc.store)
    flip = Flip(lambda p: flipped)
    svc.store.before_reread = flip
    recoverer = Recoverer(store=svc.store, catalog=svc.catalog, prober=svc.prober,
                          clock=svc.clock)
    if not flipped:
        row = recoverer.recover(rec)
        assert (row.status, row.code) == ("ok", "R_SALVAGED")
        assert [p.name for p in flip.seen] == ["salvage.mp4"]
        assert blobs(svc.store) - before == {row.blake3}
        return
    with pytest.raises(DigestMismatch) as caught:
        recoverer.recover(rec)
    assert caught.value.code == "E_DIGEST_MISMATCH"
    assert [p.name for p in flip.flipped] == ["salvage.mp4"]
    assert blobs(svc.store) == before
    with Session(svc.catalog.engine) as s:
        assert s.exec(select(func.count()).select_from(Derivative)).one() == 0
