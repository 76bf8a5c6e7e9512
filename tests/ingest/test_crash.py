"""SIGKILL the station service in the middle of an offload a user asked for, then again.

The offload runs inside a real `evidock serve` (the user's `evidock ingest` only asks),
so that process is what dies at each hook point. Invariants after every kill: the
catalog never names a blob that is missing or wrong; no camera file is gone unless its
copy is catalogued; after the rerun (a new service, the same request) every camera file
is in the catalog, staging is empty, and the offload completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import blake3
import pytest
from evidock_testing import write_agency_config
from held_offload import Held
from service_support import open_copy, serving

from archive.catalog import Catalog
from archive.store import ContentStore
from config import load_settings
from fixtures.camera import CameraTree

KILL_POINTS = ["before_copy:1", "before_copy:3", "mid_copy:2", "after_verify:1",
               "after_commit:2", "after_wipe:1", "after_wipe:3"]
INGEST = ["ingest", "--device", "ZFY0001", "--json"]


def _digests(camera: Path) -> dict[str, str]:
    out = {}
    for path in camera.rglob("*"):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(camera))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def camera(camera_template: CameraTree) -> Iterator[Path]:
    """The clerk's own camera (theirs to wipe), where nobody else can swap it."""
    with open_copy(camera_template.root) as cam:
        pw = pwd.getpwnam("evt-clerk")
        for path in (cam, *cam.rglob("*")):
            os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
        yield cam


def _check_invariants(home: Path, camera: Path, original: dict[str, str]) -> None:
    settings = load_settings(environ={"EVIDOCK_HOME": str(home)})
    catalog = Catalog.open(settings.catalog_url)
    store = ContentStore(root=settings.store_dir)
    try:
        recs = catalog.recordings()
        for rec in recs:
            blob = store.path_for(rec.blake3)
            assert blob.is_file(), f"catalog names a missing blob for {rec.original_display}"
            assert blake3.blake3(blob.read_bytes()).hexdigest() == rec.blake3
        catalogued = {r.original_display: r.sha256 for r in recs}
        present = _digests(camera)
        for rel, sha in original.items():
            if rel not in present:
                assert catalogued.get(rel) == sha, f"{rel} wiped before its copy was recorded"
        wiped = {os.fsdecode(w.relpath) for w in catalog.wipes()}
        assert set(original) - set(present) <= wiped, "a wipe without its record"
    finally:
        catalog.close()


def _catalogued(home: Path) -> dict[str, str]:
    catalog = Catalog.open(load_settings(environ={"EVIDOCK_HOME": str(home)}).catalog_url)
    try:
        return {r.original_display: r.sha256 for r in catalog.recordings()}
    finally:
        catalog.close()


def _rerun(home: Path, camera: Path, *extra: str) -> tuple[int, dict]:
    """The same request to a freshly started service."""
    with serving(home) as svc:
        run = svc.cli(INGEST[0], str(camera), *INGEST[1:], *extra)
    return run.returncode, json.loads(run.stdout)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_rerun_loses_nothing(point: str, camera: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    original = _digests(camera)
    with ExitStack() as stack:
        held = Held(stack, tmp_path, camera, home, point, wipe=True, args=INGEST[1:])
        assert held.wait() == point.split(":", maxsplit=1)[0]
        gone = held.kill()
    assert gone["error"]["code"] == "E_SERVICE_UNAVAILABLE"
    _check_invariants(home, camera, original)

    rc, report = _rerun(home, camera, "--wipe-after-verify")
    assert rc == 0, report["summary"]
    assert report["summary"]["outcome"] == "completed"
    _check_invariants(home, camera, original)
    assert {f["path"] for f in report["files"]} <= set(original)
    assert _catalogued(home) == original, "every camera file ends up in the catalog, bit-exact"
    assert not list((home / "store" / ".staging").iterdir()), "partial objects swept"
    assert not any(camera.rglob("*.*")), "after the rerun every proven file is wiped"


def test_camera_unplugged_mid_copy_interrupts_and_resumes(camera: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    original = _digests(camera)
    with ExitStack() as stack:
        held = Held(stack, tmp_path, camera, home, "mid_copy:2", wipe=True, args=INGEST[1:])
        held.wait()
        held.reply("eio")  # the read fails as an unplugged USB disk's would
        rc, report = held.result()
    assert rc == 2
    assert report["summary"]["outcome"] == "interrupted"
    assert report["summary"]["error"]["code"] == "E_SOURCE_GONE"
    done = [f["path"] for f in report["files"]]
    assert len(done) == 1, "the file being copied is not reported as stored"
    _check_invariants(home, camera, original)
    settings = load_settings(environ={"EVIDOCK_HOME": str(home)})
    catalog = Catalog.open(settings.catalog_url)
    try:
        assert len(catalog.recordings()) == 1
        assert catalog.session(report["session"]).outcome == "interrupted"
    finally:
        catalog.close()

    rc, report = _rerun(home, camera)
    assert rc == 0
    assert report["summary"]["ingested"] == len(original) - 1
    assert _catalogued(home) == original


def test_sigkill_while_one_file_copies_and_the_one_before_it_settles(
        camera: Path, tmp_path: Path) -> None:
    """The offload copies file 2 while its settling thread re-reads file 1: both are
    held there at once (file 1 before its re-read, file 2 in the middle of its copy),
    then the service is killed. Nothing of either may be catalogued or wiped, and the
    rerun stores both."""
    home = tmp_path / "home"
    write_agency_config(home)
    original = _digests(camera)
    with ExitStack() as stack:
        held = Held(stack, tmp_path, camera, home, "before_verify:1,mid_copy:2", wipe=True,
                    args=INGEST[1:])
        seen = sorted([held.wait(), held.wait()])  # the two threads, in either order
        assert seen == ["before_verify", "mid_copy"]
        gone = held.kill()
    assert gone["error"]["code"] == "E_SERVICE_UNAVAILABLE"
    _check_invariants(home, camera, original)
    assert _catalogued(home) == {}, "file 1 was never re-read: it is not catalogued"
    assert _digests(camera) == original, "nothing was wiped"

    rc, report = _rerun(home, camera, "--wipe-after-verify")
    assert rc == 0 and report["summary"]["outcome"] == "completed", report["summary"]
    _check_invariants(home, camera, original)
    assert _catalogued(home) == original
    assert not list((home / "store" / ".staging").iterdir()), "partial objects swept"
