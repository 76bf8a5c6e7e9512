"""Issue 19, items 10, 11, 12 (scheduler side) and 15: one file's trouble stays that
file's, a lying header is flagged yet rendered, a killed rendition is picked up again,
and a camera file rewritten behind our back is never wiped.

Real parts throughout: the real service and CLI as real OS accounts where a request
crosses the trust boundary, real ffmpeg/ffprobe (a wrapper on PATH stands in for the
hardware-ish misbehaviour: a probe that hangs, an ffmpeg that never returns until it is
killed), real SQLite, a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from evidock_testing import StepClock, tree_snapshot, write_agency_config
from service_support import RunningService, account, open_copy, open_dir, serving
from sqlmodel import Session
from sqlmodel import select as sql_select

from archive.catalog import Blob, Catalog, DockSession, Recording, Wipe
from archive.catalog.models import Rendition
from config import load_settings
from evidock.jobs import execute
from evidock.wiring import Services
from fixtures.badinput import IMPLAUSIBLE_DURATION_S, patch_mp4_duration
from ingest.hooks import Hooks
from ingest.outcome import OffloadRequest
from ingest.source import SourceTree
from integrity.errors import EvidockError

HANG_MARK = b"EVIDOCK-HANG-PROBE"


def _videos(camera: Path) -> list[Path]:
    return sorted(p for p in camera.rglob("*.MP4") if p.is_file())


def _wrapper(directory: Path, tool: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / tool
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return directory


def _hanging_ffprobe(directory: Path) -> Path:
    """ffprobe that never answers for a file carrying HANG_MARK (a camera file that
    wedges the demuxer); the real one for everything else."""
    real = "/usr/bin/ffprobe"
    return _wrapper(directory, "ffprobe", (
        'for last; do :; done\n'
        f'if grep -q {HANG_MARK.decode()} "$last" 2>/dev/null; then '
        'exec tail -f /dev/null; fi\n'
        f'exec {real} "$@"\n'))


def _store_blobs(home: Path) -> set[str]:
    store = home / "store"
    return {p.name for p in store.glob("??/??/*") if p.is_file()}


def _catalog(home: Path) -> Catalog:
    return Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")


# ----------------------------------------------------------------- item 10


def test_a_probe_that_hangs_flags_that_file_and_the_offload_goes_on(
        tmp_path: Path, camera: Path) -> None:
    """Before: the probe's timeout escaped the file's classification, the offload ended
    `failed` (exit 2) with the blob linked and no row, and every rerun stopped there."""
    home = tmp_path / "h"
    write_agency_config(home)
    wedge = _videos(camera)[0]
    wedge.write_bytes(wedge.read_bytes() + HANG_MARK)  # still the camera's name
    wedged = blake3.blake3(wedge.read_bytes()).hexdigest()
    tools = _hanging_ffprobe(open_dir("evidock-bin-") / "bin")
    env = {"PATH": f"{tools}:{os.environ['PATH']}", "EVIDOCK_INGEST__PROBE_TIMEOUT_S": "2"}
    with open_copy(camera) as cam, serving(home, env=env) as svc:
        first = svc.cli("ingest", str(cam), "--device", "ZFY0001", "--json")
        again = svc.cli("ingest", str(cam), "--device", "ZFY0001", "--json")
    assert first.returncode == 1, (first.stdout, first.stderr)  # findings, not failed
    out = json.loads(first.stdout)
    assert "error" not in out["summary"] and out["summary"]["outcome"] == "findings"
    by_blob = {f["blake3"]: f for f in out["files"]}
    assert by_blob[wedged]["status"] == "flagged"
    assert by_blob[wedged]["flags"] == ["F_PROBE_TIMEOUT"]
    others = [f for f in out["files"] if f["blake3"] != wedged]
    assert others and all(f["status"] == "ingested" for f in others)
    # the rendition of the wedged file failed on its own; the others were made
    codes = {r["recording_id"]: r["code"] for r in out["renditions"]}
    assert codes[by_blob[wedged]["recording_id"]] == "E_RENDITION_TIMEOUT"
    assert json.loads(again.stdout)["summary"]["duplicate"] == len(out["files"])
    # stored bit-exact, recorded, and no blob without its row
    blob = home / "store" / wedged[:2] / wedged[2:4] / wedged
    assert blob.read_bytes() == wedge.read_bytes()
    catalog = _catalog(home)
    try:
        with Session(catalog.engine) as s:
            rows = {b.blake3 for b in s.exec(sql_select(Blob))}
            rec = s.exec(sql_select(Recording).where(Recording.blake3 == wedged)).one()
        assert rec.flags == ["F_PROBE_TIMEOUT"]
    finally:
        catalog.close()
    assert _store_blobs(home) == rows


# ----------------------------------------------------------------- item 11


def test_a_header_claiming_4294967_s_is_flagged_kept_and_still_rendered(
        services: Services, camera: Path) -> None:
    liar = _videos(camera)[0]
    liar.write_bytes(patch_mp4_duration(liar.read_bytes()))
    info, _ = services.prober.probe(liar)
    assert info is not None and info.duration_s is not None
    assert info.duration_s >= IMPLAUSIBLE_DURATION_S  # the lie ffprobe repeats
    report = services.offloader().run(OffloadRequest(
        source=camera, device_serial="ZFY0001", wipe_after_verify=True))
    [bad] = [f for f in report.files if f.relpath == os.fsencode(liar.relative_to(camera))]
    assert bad.status == "flagged" and bad.flags == ("F_DURATION_IMPLAUSIBLE",)
    assert "4294967" in bad.reason
    assert liar.exists() and not bad.wiped  # flagged: stays on the camera
    assert all(f.wiped for f in report.files if f is not bad)
    rec = services.catalog.recording(bad.recording_id or "")
    assert rec is not None
    rendition = services.renderer().render(rec)
    assert rendition.status == "ok", (rendition.code, rendition.reason)
    with Session(services.catalog.engine) as s:
        from archive.catalog.models import Segment
        segs = list(s.exec(sql_select(Segment).where(Segment.rendition_id == rendition.id)))
    assert segs and max(seg.end_us for seg in segs) < 60_000_000  # what the packets span


# ----------------------------------------------------------------- item 12 (scheduler)


def _blocking_ffmpeg(directory: Path, fifo: Path) -> Path:
    """ffmpeg that, when asked to cut segments, says so on ``fifo`` and then never
    returns (until the process group is killed); the real one otherwise."""
    return _wrapper(directory, "ffmpeg", (
        'case "$*" in *" -f segment "*) '
        f'echo cutting > {fifo}; exec tail -f /dev/null;; esac\n'
        'exec /usr/bin/ffmpeg "$@"\n'))


@pytest.fixture
def signal_fifo() -> Iterator[tuple[Path, int]]:
    where = open_dir("evidock-fifo-")
    fifo = where / "said"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # never blocks, never sees EOF
    try:
        yield fifo, fd
    finally:
        os.close(fd)


def test_renditions_killed_midway_are_made_by_the_scheduler(
        tmp_path: Path, camera: Path, signal_fifo: tuple[Path, int]) -> None:
    fifo, fd = signal_fifo
    home = tmp_path / "h"
    write_agency_config(home)
    tools = _blocking_ffmpeg(open_dir("evidock-bin-") / "bin", fifo)
    env = {"PATH": f"{tools}:{os.environ['PATH']}"}
    with open_copy(camera) as cam, serving(home, env=env) as svc:
        ingest = _start_cli(svc, cam)
        ready, _, _ = select.select([fd], [], [], 120)
        assert ready, "no rendition was started"
        svc.kill()  # SIGKILL mid-rendition
        ingest.wait(timeout=60)
    settings = load_settings(environ={"EVIDOCK_HOME": str(home)})
    services = Services.from_config(settings, clock=StepClock())
    try:
        untouched = _without_rendition(services)
        assert untouched, "the kill left recordings without any rendition"
        result = execute("renditions", services)
        assert result.outcome == "ok", result
        assert result.counts["attempted"] == len(untouched) and result.counts["failed"] == 0
        assert _without_rendition(services) == []
        again = execute("renditions", services)  # nothing left: no new attempts
        assert again.counts["attempted"] == 0
    finally:
        services.close()


def _start_cli(svc: RunningService, cam: Path) -> subprocess.Popen[bytes]:
    """`evidock ingest` as the clerk's account, left running (the service will die)."""
    pw = pwd.getpwnam(account("clerk"))
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": "/nonexistent",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "EVIDOCK_SOCKET": str(svc.socket)}
    return subprocess.Popen([sys.executable, "-m", "evidock", "ingest", str(cam),
                             "--device", "ZFY0001", "--json"], env=env, cwd="/",
                            user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _without_rendition(services: Services) -> list[str]:
    with Session(services.catalog.engine) as s:
        tried = {r.recording_id for r in s.exec(sql_select(Rendition))}
        return sorted(r.id for r in s.exec(sql_select(Recording)) if r.id not in tried)


# ----------------------------------------------------------------- item 15


class _Rewriter(Hooks):
    """Between the proof and the wipe, rewrite the camera file in place: same size,
    other bytes, mtime put back (what a hostile camera or a person with the card can do)."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, False

    def reached(self, point: str) -> None:
        if point != "after_commit" or self.done:
            return
        self.done = True
        st = self.path.stat()
        with open(self.path, "r+b") as fh:
            fh.seek(st.st_size // 2)
            byte = fh.read(1)
            fh.seek(st.st_size // 2)
            fh.write(bytes([byte[0] ^ 0xFF]))
        os.utime(self.path, ns=(st.st_atime_ns, st.st_mtime_ns))
        now = self.path.stat()
        assert (now.st_size, now.st_mtime_ns, now.st_ino) == (
            st.st_size, st.st_mtime_ns, st.st_ino)


def _first_file(camera: Path) -> Path:
    with SourceTree(camera, max_depth=16) as tree:
        first = next(e for e in tree.walk() if e.kind == "file")
    return camera / os.fsdecode(first.relpath)


@pytest.mark.parametrize(("rehash", "why"), [
    (None, "bytes differ from the stored copy"),  # default: these files are re-hashed
    (0, "changed since it was verified"),  # no re-hash: ctime gives it away
])
def test_a_same_size_rewrite_with_mtime_restored_is_never_wiped(
        home: Path, camera: Path, rehash: int | None, why: str) -> None:
    env = {"EVIDOCK_HOME": str(home)}
    if rehash is not None:
        env["EVIDOCK_INGEST__REHASH_BEFORE_WIPE_BYTES"] = str(rehash)
    settings = load_settings(environ=env)
    services = Services.from_config(settings, clock=StepClock())
    target = _first_file(camera)
    try:
        offloader = services.offloader()
        offloader.hooks = _Rewriter(target)
        report = offloader.run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                              wipe_after_verify=True))
        rel = os.fsencode(target.relative_to(camera))
        [hit] = [f for f in report.files if f.relpath == rel]
        assert not hit.wiped and why in hit.reason, hit.reason
        assert target.exists() and blake3.blake3(target.read_bytes()).hexdigest() != hit.blake3
        assert all(f.wiped for f in report.files if f is not hit)
        with Session(services.catalog.engine) as s:
            wiped = {w.relpath for w in s.exec(sql_select(Wipe))}
        assert rel not in wiped and len(wiped) == len(report.files) - 1
        assert stat.S_ISREG(target.stat().st_mode)
    finally:
        services.close()


# ----------------------------------------------------------------- item 14 (any two offloads)


class _SecondOffload(Hooks):
    """While the first offload holds the camera, a second one (another bay, or an
    `evidock ingest` in another process: the lock is per open file, not per process)
    tries the same camera."""

    def __init__(self, services: Services, camera: Path) -> None:
        self.services, self.camera = services, camera
        self.refused: EvidockError | None = None

    def reached(self, point: str) -> None:
        if point != "before_copy" or self.refused is not None:
            return
        with pytest.raises(EvidockError) as caught:
            self.services.offloader().run(OffloadRequest(
                source=self.camera, device_serial="ZFY0001", wipe_after_verify=True))
        self.refused = caught.value


def test_a_second_offload_of_a_camera_in_flight_is_refused_untouched(
        services: Services, camera: Path) -> None:
    before = tree_snapshot(camera)
    first = services.offloader()
    first.hooks = second = _SecondOffload(services, camera)
    report = first.run(OffloadRequest(source=camera, device_serial="ZFY0001"))
    assert second.refused is not None and second.refused.code == "E_CAMERA_BUSY"
    assert report.outcome == "completed"
    assert tree_snapshot(camera) == before, "nothing wiped by either"
    with Session(services.catalog.engine) as s:
        sessions = list(s.exec(sql_select(DockSession)))
    assert [x.id for x in sessions] == [report.session_id], "the refused one opened none"
    # the lock is gone with the offload: the next one runs
    assert services.offloader().run(OffloadRequest(
        source=camera, device_serial="ZFY0001")).outcome == "completed"
