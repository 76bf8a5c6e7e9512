"""Offload of a real synthetic camera into a real store and SQLite catalog."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import blake3
import pytest
from evidock_testing import StepClock, cached_bytes, on_disk_only, tree_snapshot
from sqlmodel import Session, col, select

from archive.catalog.models import Seal
from config import load_settings
from evidock.wiring import Services
from ingest.hooks import Hooks
from ingest.outcome import OffloadRequest


def _offload(services: Services, camera: Path, **kw: object):
    req = OffloadRequest(source=camera, device_serial="ZFY0001", **kw)  # type: ignore[arg-type]
    return services.offloader().run(req)


def test_every_file_is_stored_bit_exact_and_catalogued(services: Services, camera: Path) -> None:
    before = tree_snapshot(camera)
    report = _offload(services, camera, officer_id="123456")

    assert report.outcome == "completed", [(f.display, f.code, f.reason) for f in report.files]
    assert report.exit_code == 0
    files = {f.relpath: f for f in report.files}
    assert set(files) == {p for p, (mode, _, _) in before.items() if stat.S_ISREG(mode)}
    for rel, outcome in files.items():
        data = (camera / os.fsdecode(rel)).read_bytes()
        assert outcome.blake3 == blake3.blake3(data).hexdigest()
        assert outcome.sha256 == hashlib.sha256(data).hexdigest()
        blob = services.store.path_for(outcome.blake3)
        assert blob.read_bytes() == data
        assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    recs = services.catalog.recordings(device="ZFY0001")
    assert {r.original_path for r in recs} == set(files)
    assert tree_snapshot(camera) == before, "without --wipe-after-verify the camera is untouched"


def test_names_are_parsed_into_start_time_and_officer(services: Services, camera: Path) -> None:
    _offload(services, camera)
    videos = [r for r in services.catalog.recordings() if r.kind == "video"]
    assert videos
    for rec in videos:
        assert rec.camera_start is not None and rec.camera_start.utcoffset() is not None
        assert rec.officer_id == "123456"
        # name carries Asia/Shanghai local time; catalog holds UTC (8 h earlier)
        stamp = rec.original_display.split("_")[2]
        assert rec.camera_start.strftime("%Y%m%d%H%M%S") != stamp
        assert (rec.camera_start.hour + 8) % 24 == int(stamp[8:10])


def test_reingest_stores_nothing_new_and_reports_duplicates(services: Services,
                                                             camera: Path) -> None:
    first = _offload(services, camera)
    objects = sorted(p for p in services.store.root.rglob("*") if p.is_file()
                     and ".staging" not in p.parts)
    second = _offload(services, camera)
    assert {f.status for f in second.files} == {"duplicate"}
    assert [f.recording_id for f in second.files] == [f.recording_id for f in first.files]
    assert second.exit_code == 0
    assert len(services.catalog.recordings()) == len(first.files)
    with Session(services.catalog.engine) as s:  # the second session's signed record
        (record,) = s.exec(select(col(Seal.blake3)).where(Seal.subject == second.session_id))
    assert sorted(p for p in services.store.root.rglob("*") if p.is_file()
                  and ".staging" not in p.parts) == sorted(
                      [*objects, services.store.path_for(record)])


def test_same_content_under_two_names_shares_one_blob(services: Services, camera: Path) -> None:
    media = camera / "DCIM" / "100MEDIA"
    src = next(media.glob("*.MP4"))
    copy = media / (src.name[:-8] + "9999.MP4")
    copy.write_bytes(src.read_bytes())
    report = _offload(services, camera)
    pair = [f for f in report.files if f.display.endswith((src.name, copy.name))]
    assert len(pair) == 2 and pair[0].blake3 == pair[1].blake3
    assert {f.status for f in pair} == {"ingested"}
    assert pair[0].recording_id != pair[1].recording_id


def test_wipe_after_verify_removes_only_proven_files(services: Services, camera: Path) -> None:
    bad = camera / "DCIM" / "100MEDIA" / "ZFY0001_123456_20261120093000_0042.MP4"
    bad.write_bytes(b"this is not a video")
    report = _offload(services, camera, wipe_after_verify=True)
    wiped = [f for f in report.files if f.wiped]
    kept = [f for f in report.files if not f.wiped]
    assert wiped and all(f.status == "ingested" for f in wiped)
    assert [f.code for f in kept] == ["F_UNPLAYABLE"]
    assert bad.exists(), "a flagged file stays on the camera"
    for f in wiped:
        assert not (camera / os.fsdecode(f.relpath)).exists()
        assert services.store.path_for(f.blake3).is_file()
    assert len(services.catalog.wipes(session_id=report.session_id)) == len(wiped)


def test_changed_during_copy_is_failed_and_never_wiped(services: Services, camera: Path) -> None:
    target = sorted((camera / "DCIM" / "100MEDIA").glob("*.MP4"))[0]

    class Grow(Hooks):
        def reached(self, point: str) -> None:
            if point == "mid_copy":
                with open(target, "ab") as fh:
                    fh.write(b"appended while copying")

    offloader = services.offloader()
    offloader.hooks = Grow()
    report = offloader.run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                          wipe_after_verify=True))
    changed = [f for f in report.files if f.code == "E_SOURCE_CHANGED"]
    assert len(changed) >= 1 and changed[0].display.endswith(target.name)
    assert not changed[0].wiped and target.exists()
    assert report.exit_code == 1
    assert all(r.original_display != changed[0].display
               for r in services.catalog.recordings()), "nothing recorded for a changed file"


def test_store_blob_missing_is_restored_on_reingest(services: Services, camera: Path) -> None:
    first = _offload(services, camera)
    victim = services.store.path_for(first.files[0].blake3)
    victim.unlink()
    second = _offload(services, camera)
    assert "restored" in second.files[0].reason
    assert victim.is_file()


def test_unparseable_and_foreign_serial_names_are_flagged(services: Services,
                                                          camera: Path) -> None:
    media = camera / "DCIM" / "100MEDIA"
    src = next(media.glob("*.MP4")).read_bytes()
    (media / "holiday.MP4").write_bytes(src)
    (media / "ZZZ9999_123456_20261120083000_0077.MP4").write_bytes(src + b"\0")
    report = _offload(services, camera)
    codes = {f.display.rsplit("/", 1)[-1]: f.flags for f in report.files}
    assert codes["holiday.MP4"] == ("F_NAME_UNPARSED",)
    assert "F_SERIAL_MISMATCH" in codes["ZZZ9999_123456_20261120083000_0077.MP4"]


def test_store_that_cannot_be_written_is_fatal_and_touches_nothing(
        services: Services, camera: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    services.store.root = blocker / "store"
    before = tree_snapshot(camera)
    with pytest.raises(Exception) as info:
        _offload(services, camera, wipe_after_verify=True)
    assert getattr(info.value, "code", "") == "E_STORE_UNWRITABLE"
    assert tree_snapshot(camera) == before


def _camera_files_on_disk_only(camera: Path) -> list[Path]:
    files = sorted(p for p in camera.rglob("*") if p.is_file())
    assert files
    on_disk_only(*files)
    return files


def test_an_offload_leaves_no_camera_page_in_memory(services: Services, camera: Path) -> None:
    """A camera file is read once: its pages are let go behind the copy (ingest/camread)."""
    files = _camera_files_on_disk_only(camera)
    report = _offload(services, camera)
    assert report.outcome == "completed"
    assert {p: cached_bytes(p) for p in files} == {p: 0 for p in files}


@pytest.mark.parametrize("threshold", [64 << 20, 0])
def test_files_hashed_again_before_their_wipe_keep_their_pages(
        home: Path, camera: Path, threshold: int) -> None:
    """With a wipe asked for, files small enough to be hashed again right before it
    (``ingest.rehash_before_wipe_bytes``) keep their pages for that read; others don't."""
    settings = load_settings(environ={"EVIDOCK_HOME": str(home),
                                      "EVIDOCK_INGEST__REHASH_BEFORE_WIPE_BYTES": str(threshold)})
    files = _camera_files_on_disk_only(camera)
    assert all(p.stat().st_size <= 64 << 20 for p in files)
    svc = Services.from_config(settings, clock=StepClock())
    try:  # wipe asked for, but nothing may go: the camera's files stay to be looked at
        report = _offload(svc, camera, wipe_after_verify=True, wipe_only=frozenset())
    finally:
        svc.close()
    assert report.outcome == "completed" and not any(f.wiped for f in report.files)
    cached = {p.name: cached_bytes(p) for p in files}
    if threshold:
        assert all(cached.values()), cached
    else:
        assert not any(cached.values()), cached
