"""Issue 19, items 12 (dock side), 13 and 14, against the real dock daemon process.

13: one flagged or skipped file no longer keeps the whole camera: every proven file is
    wiped, the others stay, and the bay's status says how many and why.
14: the same camera in two bays: one bay offloads it, the other is refused
    (``E_CAMERA_BUSY``) before it reads anything, and its copy stays intact.
12: after a SIGKILL mid-rendition, the next session's processing makes what was left.
"""

from __future__ import annotations

import json
import os
import select
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from dockutil import Archive, Daemon, Hooks, check_nothing_lost, digests, write_dock_toml
from evidock_testing import (
    blocking_ffmpeg,
    listening_fifo,
    read_lines,
    reporting_tools,
    write_agency_config,
)
from service_support import serving
from sqlmodel import Session
from sqlmodel import select as sql_select

from archive.catalog import Recording
from archive.catalog.models import Rendition
from fixtures.camera import media_relpath
from fixtures.media import CAMERA_TZ


def _toml(tmp: Path, *, process: bool = False) -> Path:
    lines = ["[dock]", 'sources = ["folder"]', "settle_s = 0.2",
             f"process_after_offload = {'true' if process else 'false'}", 'wipe = "local"']
    for n in (1, 2):
        lines += ["[[dock.bays]]", f"number = {n}", f'folder = "{tmp / f"bay{n}"}"']
    return write_dock_toml(tmp / "dock.toml", "\n".join(lines) + "\n")


def _dock(camera: Path, tmp: Path, bay: int, name: str = "cam") -> Path:
    """Copy a camera beside the bay and rename it in: the folder appears complete."""
    staging = tmp / f"bay{bay}" / f".incoming-{name}"
    shutil.copytree(camera, staging, symlinks=True)
    dest = tmp / f"bay{bay}" / name
    os.rename(staging, dest)
    return dest


def _status(home: Path, toml: Path) -> dict:
    with serving(home, env={"EVIDOCK_DOCK_CONFIG": str(toml)}) as svc:
        res = svc.cli("dock", "status", "--json", user="officer")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# ----------------------------------------------------------------- item 13


def test_one_flagged_and_one_skipped_file_do_not_keep_the_whole_camera(
        cam_a: Path, tmp_path: Path) -> None:
    home, toml = tmp_path / "home", _toml(tmp_path)
    write_agency_config(home)
    proven = digests(cam_a)
    empty = media_relpath("A", serial="ZFY0001", officer="123456", kind="video", seq=90,
                          start=datetime(2026, 11, 22, 18, 0, tzinfo=CAMERA_TZ))
    (cam_a / empty).write_bytes(b"")  # a valid name, no content: F_EMPTY
    (cam_a / "DCIM" / "link.MP4").symlink_to("/etc/passwd")  # S_SYMLINK, never followed
    d = Daemon(home=home, dock_toml=toml).ready()
    try:
        cam = _dock(cam_a, tmp_path, 1)
        kept = d.wait_event("kept", bay="1")
        done = d.wait_event("done", bay="1")
        status = _status(home, toml)
    finally:
        assert d.terminate() == 0
    assert done["wiped"] == len(proven), "every proven file is wiped"
    left = sorted(str(p.relative_to(cam)) for p in cam.rglob("*")
                  if p.is_file() or p.is_symlink())
    assert left == sorted([empty, "DCIM/link.MP4"]), "only the unproven stay"
    assert kept["codes"] == {"F_EMPTY": 1, "S_SYMLINK": 1}
    bay = status["bays"]["1"]
    assert (bay["state"], bay["wiped"], bay["kept"]) == ("done", len(proven), 2)
    assert bay["kept_why"] == "F_EMPTY 1, S_SYMLINK 1"
    with Archive(home) as a:
        assert a.wiped() == set(proven)
        assert [s.outcome for s in a.sessions()] == ["findings", "findings"]
    check_nothing_lost(home, cam, {**proven, empty: digests(cam)[empty]})


# ----------------------------------------------------------------- item 14


def test_the_same_camera_in_two_bays_is_offloaded_once_and_the_other_bay_refused(
        cam_a: Path, tmp_path: Path) -> None:
    home, toml = tmp_path / "home", _toml(tmp_path)
    original = digests(cam_a)
    hooks = Hooks(tmp_path / "hooks", "before_copy:1")  # the first bay waits mid-offload
    d = Daemon(home=home, dock_toml=toml, env=hooks.env()).ready()
    try:
        cams = {"1": _dock(cam_a, tmp_path, 1), "2": _dock(cam_a, tmp_path, 2)}
        assert hooks.wait_paused() == "before_copy"
        refused = d.wait_event("failed")  # the other bay, while the first holds it
        hooks.reply("go")
        winner = "1" if refused["bay"] == "2" else "2"
        done = d.wait_event("done", bay=winner)
    finally:
        assert d.terminate() == 0
        hooks.close()
    assert refused["error"] == "E_CAMERA_BUSY", refused
    assert f"bay {winner}" in refused["message"]
    assert digests(cams[refused["bay"]]) == original, "the refused bay read and wiped nothing"
    assert done["wiped"] == len(original)
    assert not [e for e in d.events if e.get("event") == "failed" and e is not refused]
    with Archive(home) as a:
        assert [(s.bay, s.outcome) for s in a.sessions()] == [(winner, "completed")] * 2
        assert a.catalogued("ZFY0001") == original
    check_nothing_lost(home, cams[winner], original)


# ----------------------------------------------------------------- item 12 (dock)


@pytest.fixture
def cutting_fifo(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    fifo = tmp_path / "cutting"
    with listening_fifo(fifo) as fd:
        yield fifo, fd



def test_renditions_killed_midway_are_made_after_the_next_session(
        cam_a: Path, cam_b: Path, tmp_path: Path,
        cutting_fifo: tuple[Path, int]) -> None:
    fifo, fd = cutting_fifo
    home, toml = tmp_path / "home", _toml(tmp_path, process=True)
    tools = blocking_ffmpeg(tmp_path / "bin", fifo, say="cutting")
    d = Daemon(home=home, dock_toml=toml, env={"PATH": f"{tools}:{os.environ['PATH']}"})
    d.ready()
    try:
        _dock(cam_a, tmp_path, 1)
        ready, _, _ = select.select([fd], [], [], 120)
        assert ready, "no rendition was started"
    finally:
        d.kill()  # SIGKILL mid-rendition
    with Archive(home) as a:
        left = _never_rendered(a)
    assert left, "the kill left recordings with no rendition attempt"
    again = Daemon(home=home, dock_toml=toml).ready()
    try:
        _dock(cam_b, tmp_path, 2)
        done = again.wait_event("done", bay="2", timeout=300)
    finally:
        assert again.terminate() == 0
    assert "rendition_failures" in done and done["rendition_failures"] == 0
    with Archive(home) as a:
        assert _never_rendered(a) == []
        with Session(a.catalog.engine) as s:
            made = {r.recording_id for r in s.exec(sql_select(Rendition))
                    if r.status in ("ok", "none")}
    assert set(left) <= made


def _never_rendered(a: Archive) -> list[str]:
    with Session(a.catalog.engine) as s:
        tried = {r.recording_id for r in s.exec(sql_select(Rendition))}
        return sorted(r.id for r in s.exec(sql_select(Recording)) if r.id not in tried)


def test_the_dock_daemon_loads_ffprobe_and_ffmpeg_as_it_starts(tmp_path: Path) -> None:
    """It offloads in-process: the first camera after a boot must not wait for the
    tools' libraries inside its media check (issue 14). Done before "ready", so bays
    docked right then do not share the CPU with it."""
    home, toml = tmp_path / "home", _toml(tmp_path)
    with listening_fifo(tmp_path / "ran") as fd:
        tools = reporting_tools(tmp_path / "bin", tmp_path / "ran")
        d = Daemon(home=home, dock_toml=toml, env={"PATH": f"{tools}:{os.environ['PATH']}"})
        try:
            d.ready()
            ran = read_lines(fd, 2, timeout=0)  # already there: no wait
        finally:
            d.terminate()
    assert sorted(ran) == ["ffmpeg -version", "ffprobe -version"]
