"""SIGKILL a real `evidock ingest` process at known points, then run it again.

Invariants after every kill: the catalog never names a blob that is missing or wrong;
no camera file is gone unless its copy is catalogued; after the rerun every camera file
is in the catalog, staging is empty, and the offload completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from evidock_testing import migrated_home

from archive.catalog import Catalog
from archive.store import ContentStore
from config import load_settings

KILL_POINTS = ["before_copy:1", "before_copy:3", "mid_copy:2", "after_verify:1",
               "after_commit:2", "after_wipe:1", "after_wipe:3"]


def _digests(camera: Path) -> dict[str, str]:
    out = {}
    for path in camera.rglob("*"):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(camera))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Paused:
    """A running ingest stopped at a hook point; the test decides what happens next."""

    def __init__(self, tmp: Path, camera: Path, home: Path, point: str) -> None:
        self.dir = tmp / "hooks"
        self.dir.mkdir()
        os.mkfifo(self.dir / "out")
        os.mkfifo(self.dir / "in")
        env = dict(os.environ, EVIDOCK_HOME=str(home), EVIDOCK_TEST_HOOKS=str(self.dir),
                   EVIDOCK_TEST_HOOK_POINTS=point)
        # O_RDWR: never blocks and never sees EOF, so waiting is a select with a timeout.
        self._out = os.open(self.dir / "out", os.O_RDWR | os.O_NONBLOCK)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evidock", "ingest", str(camera), "--device", "ZFY0001",
             "--json", "--wipe-after-verify"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def wait_paused(self, timeout: float = 120) -> str:
        ready, _, _ = select.select([self._out], [], [], timeout)
        if not ready:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"hook never reached; rc={self.proc.returncode} {err!r}")
        return os.read(self._out, 100).decode().strip()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        os.close(self._out)

    def reply(self, word: str) -> tuple[int, dict]:
        with open(self.dir / "in", "w") as fh:
            fh.write(word + "\n")
        out, err = self.proc.communicate(timeout=120)
        os.close(self._out)
        return self.proc.returncode, json.loads(out)


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


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_then_rerun_loses_nothing(point: str, camera: Path, tmp_path: Path) -> None:
    home = migrated_home(tmp_path / "home")
    original = _digests(camera)
    paused = Paused(tmp_path, camera, home, point)
    assert paused.wait_paused() == point.split(":", maxsplit=1)[0]
    paused.kill()
    _check_invariants(home, camera, original)

    rerun = subprocess.run(
        [sys.executable, "-m", "evidock", "ingest", str(camera), "--device", "ZFY0001",
         "--json", "--wipe-after-verify"],
        env=dict(os.environ, EVIDOCK_HOME=str(home)), capture_output=True, timeout=300)
    report = json.loads(rerun.stdout)
    assert rerun.returncode == 0, report["summary"]
    assert report["summary"]["outcome"] == "completed"
    _check_invariants(home, camera, original)
    assert {f["path"] for f in report["files"]} <= set(original)
    assert _catalogued(home) == original, "every camera file ends up in the catalog, bit-exact"
    assert not list((home / "store" / ".staging").iterdir()), "partial objects swept"
    assert not any(camera.rglob("*.*")), "after the rerun every proven file is wiped"


def test_camera_unplugged_mid_copy_interrupts_and_resumes(camera: Path, tmp_path: Path) -> None:
    home = migrated_home(tmp_path / "home")
    original = _digests(camera)
    paused = Paused(tmp_path, camera, home, "mid_copy:2")
    paused.wait_paused()
    rc, report = paused.reply("eio")  # the read fails as an unplugged USB disk's would
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

    rerun = subprocess.run(
        [sys.executable, "-m", "evidock", "ingest", str(camera), "--device", "ZFY0001", "--json"],
        env=dict(os.environ, EVIDOCK_HOME=str(home)), capture_output=True, timeout=300)
    report = json.loads(rerun.stdout)
    assert rerun.returncode == 0
    assert report["summary"]["ingested"] == len(original) - 1
    assert _catalogued(home) == original
