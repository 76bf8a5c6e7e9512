"""The overlap of copying file N+1 with settling file N (ingest/settling.py), attacked.

A real `evidock serve` offloads a clerk's camera (real OS accounts, real ffmpeg, SQLite,
a tmpfs store). Threads are held at known points without sleeping, one FIFO hook at a
time: a reply releases one paused thread but cannot choose which of two. So where the
settling thread must wait while the copying one is held, a second SQLite writer (a real
one, holding the catalog's write lock) keeps it from committing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import blake3
import pytest
from evidock_testing import write_agency_config
from held_offload import Held
from service_support import audit_rows, open_dir, serving
from small_disk import leave_room_for, tmpfs

from fixtures.camera import CameraTree

INGEST = ["--device", "ZFY0001", "--json", "--no-process"]


def _digests(camera: Path) -> dict[str, str]:
    return {str(p.relative_to(camera)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in camera.rglob("*") if p.is_file() and not p.is_symlink()}


@contextmanager
def _clerks_camera(build: Callable[[Path], object]) -> Iterator[Path]:
    """A camera ``build`` fills, owned by the clerk (theirs to wipe), in a root-owned
    directory nobody else can swap."""
    parent = open_dir("evidock-cam-")
    cam = parent / "cam"
    try:
        build(cam)
        pw = pwd.getpwnam("evt-clerk")
        for path in (cam, *cam.rglob("*")):
            os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        yield cam
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def _writer_holding(home: Path) -> Iterator[sqlite3.Connection]:
    """Another writer holds the catalog's write lock (the service waits, busy_timeout)."""
    db = sqlite3.connect(home / "catalog.sqlite3", isolation_level=None, timeout=30)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("ROLLBACK")
    finally:
        db.close()


def _rows(home: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(home / "catalog.sqlite3")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _recorded(home: Path) -> dict[str, str]:
    return dict(_rows(home, "SELECT original_display, sha256 FROM recording"))


def _session_order(home: Path, session: str) -> list[str]:
    return [d for (d,) in _rows(home, "SELECT display FROM sessionfile WHERE session_id = "
                                      f"'{session}' ORDER BY id")]


def _rerun(home: Path, camera: Path, *extra: str, env: dict[str, str] | None = None,
           ) -> tuple[int, dict]:
    """The clerk's ingest again, against a freshly started service."""
    with serving(home, env=env) as svc:
        run = svc.cli("ingest", str(camera), *INGEST, *extra)
    return run.returncode, json.loads(run.stdout)


def _check_store(home: Path, store: Path) -> set[str]:
    """No row names a missing or wrong blob; every blob's bytes match its name.
    Returns the blobs that have no row."""
    on_disk = {p.name: p for p in store.glob("??/??/*") if p.is_file()}
    rows = {b for (b,) in _rows(home, "SELECT blake3 FROM blob")}
    assert rows <= set(on_disk), f"rows without their blob: {sorted(rows - set(on_disk))}"
    for b3, path in on_disk.items():
        assert blake3.blake3(path.read_bytes()).hexdigest() == b3, f"{path} is not {b3}"
    return set(on_disk) - rows


def _events(home: Path, session: str, *actions: str) -> list[tuple[str, object]]:
    """(action, path or outcome) of this session's events, in audit sequence order."""
    rows = sorted((r for a in actions for r in audit_rows(home, a) if session in r.subjects),
                  key=lambda r: r.seq)
    return [(r.action, r.details.get("path", r.details.get("outcome"))) for r in rows]


# --- 1. the store fills up under the settling thread --------------------------------------


def _first_clip_then_empties(template: CameraTree, followers: int,
                             ) -> Callable[[Path], None]:
    media = sorted(f.relpath for f in template.files if f.kind in ("video", "photo"))

    def build(cam: Path) -> None:
        (cam / media[0]).parent.mkdir(parents=True)
        shutil.copyfile(template.root / media[0], cam / media[0])
        for rel in media[1:1 + followers]:  # zero bytes: they need an inode, no page
            (cam / rel).touch()
    return build


@pytest.mark.parametrize("followers", [0, 2], ids=["at_the_last_drain", "next_file_copied"])
def test_store_full_under_the_settling_thread_fails_the_offload_and_wipes_nothing(
        followers: int, camera_template: CameraTree, tmp_path: Path) -> None:
    """File 1's copy fills the store to the last page; settling it then needs a page
    for its signed record: ENOSPC in the settling thread. The copy of the (empty) next
    files needs none, so only the settling thread's error can fail the offload: it must
    surface (E_DISK_FULL, exit 2), nothing is recorded or wiped, no row names a missing
    blob, and once there is room the rerun stores everything and staging is empty."""
    home = tmp_path / "home"
    write_agency_config(home)
    with ExitStack() as stack:
        camera = stack.enter_context(_clerks_camera(
            _first_clip_then_empties(camera_template, followers)))
        original = _digests(camera)
        first = sorted(original)[0]
        size1 = (camera / first).stat().st_size
        small = stack.enter_context(tmpfs(tmp_path / "small", size1 + (4 << 20)))
        env = {"EVIDOCK_PATHS__STORE": str(small / "store")}
        with ExitStack() as run:
            held = Held(run, tmp_path, camera, home, "before_copy:1", wipe=True, args=INGEST,
                        env=env)
            assert held.wait() == "before_copy"
            leave_room_for(small, size1)
            held.reply("go")
            rc, report = held.result()
        assert (rc, report["summary"]["outcome"]) == (2, "failed"), report
        assert report["summary"]["error"]["code"] == "E_DISK_FULL"
        assert report["files"] == [], "file 1 never committed; nothing after it settled"
        assert report["summary"]["bytes_copied"] == size1
        assert _digests(camera) == original, "nothing wiped"
        assert _rows(home, "SELECT outcome, error_code FROM docksession") == [
            ("failed", "E_DISK_FULL")]
        assert _recorded(home) == {} and _rows(home, "SELECT * FROM wipe") == []
        # Only file 1's own blob may lack its row (linked before its signed record hit
        # ENOSPC): complete and checked here, it is adopted after a re-read on the rerun.
        assert _check_store(home, small / "store") <= {
            blake3.blake3((camera / first).read_bytes()).hexdigest()}

        (small / "ballast").unlink()
        rc, rerun = _rerun(home, camera, "--wipe-after-verify", env=env)
        assert rc == (0 if followers == 0 else 1), rerun["summary"]  # empties: flagged
        assert [f["path"] for f in rerun["files"]] == sorted(original)
        assert _recorded(home) == original
        assert not (camera / first).exists(), "file 1 proven and wiped on the rerun"
        assert _check_store(home, small / "store") == set(), "the orphan blob was adopted"
        assert not list((small / "store" / ".staging").iterdir()), "staging empty"


# --- 2. the camera goes while the file before is settling ----------------------------------


def test_camera_unplugged_while_the_file_before_settles_records_and_wipes_that_file(
        camera_template: CameraTree, tmp_path: Path) -> None:
    """File 1 is held in the settling thread (before its commit, by a second catalog
    writer) while the read of file 2 fails as an unplugged camera's would. File 1 must
    still be recorded and then wiped, before the session closes `interrupted`; file 2
    is neither; the rerun stores the rest in camera order."""
    home = tmp_path / "home"
    write_agency_config(home)
    with _clerks_camera(lambda cam: shutil.copytree(camera_template.root, cam)) as camera:
        original = _digests(camera)
        order = sorted(original)
        with ExitStack() as stack:
            held = Held(stack, tmp_path, camera, home, "before_copy:1,mid_copy:2", wipe=True,
                        args=INGEST)
            assert held.wait() == "before_copy"  # the session is open, nothing copied yet
            with _writer_holding(home) as db:
                held.reply("go")
                assert held.wait() == "mid_copy"  # file 2 is being read; file 1 settles
                held.reply("eio")
                assert db.execute("SELECT count(*) FROM sessionfile").fetchone() == (0,)
            rc, report = held.result()
        assert (rc, report["summary"]["outcome"]) == (2, "interrupted"), report
        assert report["summary"]["error"]["code"] == "E_SOURCE_GONE"
        assert [(f["path"], f["status"], f["wiped"]) for f in report["files"]] == [
            (order[0], "ingested", True)]
        assert _session_order(home, report["session"]) == [order[0]], "file 2: no row"
        assert _rows(home, "SELECT outcome FROM docksession") == [("interrupted",)]
        assert _events(home, report["session"], "ingest.file", "ingest.wipe",
                       "dock.session.end") == [
            ("ingest.file", order[0]), ("ingest.wipe", order[0]),
            ("dock.session.end", "interrupted")], "file 1 settled before the session closed"
        assert _digests(camera) == {k: v for k, v in original.items() if k != order[0]}

        rc, rerun = _rerun(home, camera)
    assert rc == 0, rerun["summary"]
    assert [f["path"] for f in rerun["files"]] == order[1:]
    assert _session_order(home, rerun["session"]) == order[1:]
    assert _recorded(home) == original
    _check_store(home, home / "store")


# --- 3. many small files: order of outcomes, events and wipes ------------------------------


KEPT = ["LOG/ZFY0001_20261104.LOG", "LOG/ZFY0001_20261107.LOG", "LOG/ZFY0001_20261109.LOG"]


def _many_files(template: CameraTree) -> Callable[[Path], None]:
    photo = next(f.relpath for f in template.files if f.kind == "photo")

    def build(cam: Path) -> None:
        (cam / photo).parent.mkdir(parents=True)
        shutil.copyfile(template.root / photo, cam / photo)
        (cam / "LOG").mkdir()
        for day in range(1, 15):
            name = cam / "LOG" / f"ZFY0001_202611{day:02d}.LOG"
            if day == 4:
                name.touch()  # empty: flagged, so kept on the camera
            elif day == 7:
                name.symlink_to("ZFY0001_20261101.LOG")  # never followed
            elif day == 9:
                os.mkfifo(name)  # never opened
            else:
                name.write_text(f"day {day}\n" * (day * 300), encoding="ascii")
    return build


def _entries(camera: Path) -> list[str]:
    """What the walk lists, in its order (bytewise), directories left out."""
    return [p.decode() for p in sorted(str(p.relative_to(camera)).encode()
                                       for p in camera.rglob("*") if not p.is_dir())]


def test_many_files_settle_in_camera_order_each_wiped_right_after_its_commit(
        camera_template: CameraTree, tmp_path: Path) -> None:
    """Outcomes, session rows and audit events follow camera order, and each file's
    wipe comes right after its own `ingest.file` (never before, never another's); the
    flagged, skipped and special entries stay. A rerun finds the flagged file again as
    a duplicate, still flagged and still not wiped, and adds no recording."""
    home = tmp_path / "home"
    write_agency_config(home)
    with _clerks_camera(_many_files(camera_template)) as camera, serving(home) as svc:
        order = _entries(camera)
        wiped = [p for p in order if p not in KEPT]
        run = svc.cli("ingest", str(camera), *INGEST, "--wipe-after-verify")
        report = json.loads(run.stdout)
        assert run.returncode == 1, report["summary"]
        assert [f["path"] for f in report["files"]] == order
        assert [f["path"] for f in report["files"] if f["wiped"]] == wiped
        assert _session_order(home, report["session"]) == order
        assert _events(home, report["session"], "ingest.file", "ingest.wipe") == [
            event for p in order for event in [("ingest.file", p), ("ingest.wipe", p)]
            if event[0] == "ingest.file" or p in wiped]
        assert _rows(home, "SELECT relpath FROM wipe ORDER BY id") == [
            (p.encode(),) for p in wiped]
        assert _entries(camera) == KEPT
        recordings = _recorded(home)

        again = svc.cli("ingest", str(camera), *INGEST, "--wipe-after-verify")
        assert _entries(camera) == KEPT, "flagged: never wiped, not even as a duplicate"
    rerun = json.loads(again.stdout)
    assert [(f["path"], f["status"], f["flags"], f["wiped"]) for f in rerun["files"]] == [
        (KEPT[0], "duplicate", ["F_EMPTY"], False), (KEPT[1], "skipped", [], False),
        (KEPT[2], "skipped", [], False)]
    assert _recorded(home) == recordings
    _check_store(home, home / "store")


# --- 4. one file's copy goes bad on the disk while the next one is copied ------------------


def test_a_staged_copy_the_disk_did_not_keep_fails_alone_and_stays_on_the_camera(
        camera_template: CameraTree, tmp_path: Path) -> None:
    """While file 1 waits in the settling thread for its re-read, a byte of its staged
    copy changes (a disk that did not keep what it was given); the next files are
    copied meanwhile. File 1 alone fails (E_DIGEST_MISMATCH) and is not wiped; the
    others are stored and wiped in camera order; the rerun stores file 1."""
    home = tmp_path / "home"
    write_agency_config(home)
    with _clerks_camera(lambda cam: shutil.copytree(camera_template.root, cam)) as camera:
        original = _digests(camera)
        order = sorted(original)
        with ExitStack() as stack:
            held = Held(stack, tmp_path, camera, home, "before_verify:1", wipe=True,
                        args=INGEST)
            assert held.wait() == "before_verify"
            [writer] = (home / "store" / ".staging").iterdir()
            with open(writer / "1.part", "r+b") as staged:  # file 1's: the first copied
                staged.seek(1000)
                byte = staged.read(1)
                staged.seek(1000)
                staged.write(bytes([byte[0] ^ 0x01]))
            held.reply("go")
            rc, report = held.result()
        assert rc == 1, report["summary"]
        assert [(f["path"], f["status"], f["code"], f["wiped"]) for f in report["files"]] == [
            (order[0], "failed", "E_DIGEST_MISMATCH", False),
            *((p, "ingested", "I_INGESTED", True) for p in order[1:])]
        assert _digests(camera) == {order[0]: original[order[0]]}, "only file 1 stays"
        assert order[0] not in _recorded(home)
        assert _session_order(home, report["session"]) == order
        _check_store(home, home / "store")

        rc, rerun = _rerun(home, camera, "--wipe-after-verify")
        assert rc == 0, rerun["summary"]
        assert not camera.joinpath(order[0]).exists()
    assert _recorded(home) == original
    assert not list((home / "store" / ".staging").iterdir()), "staging empty"
