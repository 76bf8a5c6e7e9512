"""The rendition's cut (ingest/cutting.py): each segment is proven (hash, fsync, page
cache dropped, re-read, compared) while ffmpeg cuts the next, and nothing is linked into
the store until ffmpeg has finished and every segment is proven. So a cut that fails in
any way (ffmpeg out of disk mid-cut, past its deadline, a segment the disk did not keep)
leaves no blob, no staged file and no ffmpeg process behind, and a later try succeeds.
Real ffmpeg, a real full tmpfs, a real byte flipped on the disk boundary seam.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from evidock_testing import StepClock, open_services
from small_disk import leave_room_for, tmpfs
from sqlmodel import Session, select

from archive.catalog import Recording
from archive.catalog.models import Rendition, Segment
from archive.staging import BeforeReread
from archive.store import ContentStore
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import media_relpath
from fixtures.media import ClipSpec, encode_clip
from ingest.cutting import PROVERS, PROVERS_AFTER_CUT, _Provers
from ingest.outcome import OffloadRequest
from ingest.process import Renderer
from integrity.errors import DigestMismatch

SERIAL, OFFICER = "ZFY0001", "123456"
START = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
LONG = ClipSpec(duration_s=25.0, height=240, fps=25)  # 2 s GOP: segments of 10, 10, 5 s


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cutting-camera")
    path = root / media_relpath("A", serial=SERIAL, officer=OFFICER, seq=1, kind="video",
                                start=START)
    path.parent.mkdir(parents=True)
    encode_clip(path, LONG, creation_time=START)
    return root


@pytest.fixture
def offloaded(camera: Path, tmp_path: Path) -> Iterator[tuple[Services, Recording]]:
    svc, rec = _offload(tmp_path / "home", camera)
    yield svc, rec
    svc.close()


def _offload(home: Path, camera: Path, **env: str) -> tuple[Services, Recording]:
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(home), **env}),
                        clock=StepClock())
    report = svc.offloader().run(OffloadRequest(source=camera, device_serial=SERIAL,
                                                officer_id=OFFICER))
    [outcome] = report.files
    with Session(svc.catalog.engine) as s:
        rec = s.get(Recording, outcome.recording_id)
    assert rec is not None
    return svc, rec


def _renderer(svc: Services, *, before_reread: BeforeReread | None = None,
              timeout_s: float | None = None, segment_seconds: float | None = None,
              ) -> Renderer:
    settings = svc.settings
    changes = {k: v for k, v in (("timeout_s", timeout_s),
                                 ("segment_seconds", segment_seconds)) if v is not None}
    if changes:
        settings = settings.model_copy(update={"rendition": settings.rendition.model_copy(
            update=changes)})
    return Renderer(settings=settings, catalog=svc.catalog, prober=svc.prober,
                    keys=svc.keys, clock=svc.clock, audit=svc.audit(),
                    store=ContentStore(root=svc.store.root, before_reread=before_reread))


def _blobs(svc: Services) -> set[str]:
    return {p.name for p in svc.store.root.glob("??/??/*")}


def _staged(svc: Services) -> list[Path]:
    return [p for p in (svc.store.root / ".staging").rglob("*") if p.is_file()]


def _ffmpeg_children() -> list[int]:
    """ffmpeg processes (running or unreaped) whose parent is this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if comm == "ffmpeg" and int(rest.split()[1]) == os.getpid():
            found.append(int(entry.name))
    return found


def _renditions(svc: Services, rec: Recording) -> list[Rendition]:
    with Session(svc.catalog.engine) as s:
        return list(s.exec(select(Rendition).where(Rendition.recording_id == rec.id)))


def _segment_count(svc: Services, rendition: Rendition) -> int:
    with Session(svc.catalog.engine) as s:
        return len(s.exec(select(Segment).where(Segment.rendition_id == rendition.id)).all())


def _assert_left_nothing(svc: Services, blobs_before: set[str]) -> None:
    assert _blobs(svc) == blobs_before, "no segment was linked into the store"
    assert _staged(svc) == [], "no staged segment left behind"
    assert _ffmpeg_children() == [], "ffmpeg reaped"


def test_every_segment_is_proven_before_any_is_linked(
        offloaded: tuple[Services, Recording]) -> None:
    svc, rec = offloaded
    before = _blobs(svc)
    seen: list[tuple[str, set[str]]] = []

    def look(path: Path) -> None:  # called with each staged file before its re-read
        seen.append((path.name, _blobs(svc)))

    row = _renderer(svc, before_reread=look).render(rec)
    assert row.status == "ok", row.reason
    segments = sorted(name for name, _ in seen if name.startswith("seg"))  # 2 provers
    assert segments == ["seg00000.mp4", "seg00001.mp4", "seg00002.mp4"]
    assert all(blobs == before for name, blobs in seen if name.startswith("seg")), \
        "a segment reached the store before the last one was proven"
    assert _segment_count(svc, row) == 3
    assert len(_blobs(svc) - before) == 4, "three segments and the signed manifest"
    assert _staged(svc) == [] and _ffmpeg_children() == []


def test_two_provers_while_ffmpeg_cuts_four_once_it_has_exited(
        offloaded: tuple[Services, Recording]) -> None:
    """The first two proofs hold their re-read until four are under way: the third and
    fourth can only start once the cut has ended, and ffmpeg is gone by then."""
    svc, rec = offloaded
    four = threading.Barrier(PROVERS_AFTER_CUT, timeout=30)
    lock = threading.Lock()
    entered: list[tuple[int, bool]] = []  # (proofs under way, an ffmpeg child alive)
    under_way = 0

    def hold(path: Path) -> None:
        nonlocal under_way
        with lock:
            under_way += 1
            entered.append((under_way, bool(_ffmpeg_children())))
            first = len(entered) <= PROVERS_AFTER_CUT
        try:
            if first:
                four.wait()  # BrokenBarrierError (the test fails) if four never meet
        finally:
            with lock:
                under_way -= 1

    row = _renderer(svc, before_reread=hold, segment_seconds=2).render(rec)
    assert row.status == "ok", row.reason
    segments = _segment_count(svc, row)
    assert segments >= PROVERS_AFTER_CUT and len(entered) == segments + 1  # + manifest
    assert max(n for n, _ in entered) == PROVERS_AFTER_CUT
    assert all(not alive for n, alive in entered if n > PROVERS), \
        f"more than {PROVERS} proofs while ffmpeg ran: {entered}"


def test_the_provers_gate_opens_wider_only_when_the_cut_ends(tmp_path: Path) -> None:
    entered: list[str] = []
    changed = threading.Condition()
    go = threading.Event()

    def hold(path: Path) -> None:
        with changed:
            entered.append(path.name)
            changed.notify_all()
        assert go.wait(timeout=30)

    with ContentStore(root=tmp_path / "store", before_reread=hold).stage() as stager:
        files = [stager.directory / f"seg{i:05d}.mp4" for i in range(6)]
        for i, path in enumerate(files):
            path.write_bytes(bytes([i]) * 4096)
        with _Provers(stager) as provers:
            jobs = [provers.submit(path) for path in files]
            try:
                with changed:
                    assert changed.wait_for(lambda: len(entered) == PROVERS, timeout=30)
                    # a window for a proof that must not start while the cut runs
                    assert not changed.wait_for(lambda: len(entered) > PROVERS,
                                                timeout=0.3)
                    provers.cut_ended()
                    assert changed.wait_for(lambda: len(entered) == PROVERS_AFTER_CUT,
                                            timeout=30)
            finally:
                go.set()
            staged = [job.result(timeout=30) for job in jobs]
        assert [s.digests.size for s in staged] == [4096] * 6
        assert sorted(entered) == [p.name for p in files]


def test_a_segment_the_disk_did_not_keep_stops_the_cut_and_links_nothing(
        offloaded: tuple[Services, Recording]) -> None:
    svc, rec = offloaded
    before = _blobs(svc)

    def flip(path: Path) -> None:
        if path.name == "seg00001.mp4":
            with open(path, "r+b") as fh:
                fh.seek(1000)
                byte = fh.read(1)
                fh.seek(1000)
                fh.write(bytes([byte[0] ^ 0x01]))

    with pytest.raises(DigestMismatch) as caught:
        _renderer(svc, before_reread=flip).render(rec)
    assert caught.value.code == "E_DIGEST_MISMATCH"
    assert caught.value.details["subject"] == "seg00001.mp4"
    _assert_left_nothing(svc, before)
    assert _renditions(svc, rec) == [], "the store is at fault, not the footage: no row"
    again = _renderer(svc).render(rec)
    assert again.status == "ok" and _segment_count(svc, again) == 3


def test_ffmpeg_past_its_deadline_is_killed_and_the_attempt_is_a_failed_row(
        offloaded: tuple[Services, Recording]) -> None:
    svc, rec = offloaded
    before = _blobs(svc)
    row = _renderer(svc, timeout_s=0.001).render(rec)  # ffmpeg cannot even start in 1 ms
    assert (row.status, row.code) == ("failed", "E_RENDITION_TIMEOUT"), row.reason
    _assert_left_nothing(svc, before)
    again = _renderer(svc).render(rec)
    assert again.status == "ok" and _segment_count(svc, again) == 3
    assert sorted(r.status for r in _renditions(svc, rec)) == ["failed", "ok"]


def test_store_full_mid_cut_fails_the_attempt_with_ffmpegs_reason_and_links_nothing(
        camera: Path, tmp_path: Path) -> None:
    """The store fills while ffmpeg writes the second segment: ffmpeg fails (ENOSPC from
    the kernel); the first segment, already proven, is not linked; the reason is
    ffmpeg's own last line, kept in memory (the full disk could not hold it)."""
    original = next(p for p in camera.rglob("*") if p.is_file())
    with tmpfs(tmp_path / "small", original.stat().st_size + (4 << 20)) as small:
        svc, rec = _offload(tmp_path / "home", camera,
                            EVIDOCK_PATHS__STORE=str(small / "store"))
        try:
            before = _blobs(svc)
            leave_room_for(small, original.stat().st_size // 4)  # less than 2 segments
            row = _renderer(svc).render(rec)
            assert (row.status, row.code) == ("failed", "E_RENDITION_FFMPEG"), row.reason
            assert "No space left on device" in row.reason
            _assert_left_nothing(svc, before)
            (small / "ballast").unlink()
            again = _renderer(svc).render(rec)
            assert again.status == "ok" and _segment_count(svc, again) == 3
        finally:
            svc.close()
