"""The dock daemon, as a real process, with watched folders (no root needed).

Covers the flows the udev source shares: dock → identify → offload → verify (wipe pass)
→ done; one bay failing while another completes; SIGTERM finishing the file in flight;
SIGKILL at known points; restart resuming the cameras still docked.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest
from dockutil import Archive, Daemon, Hooks, check_nothing_lost, digests, write_dock_toml
from evidock_testing import write_agency_config
from service_support import serving


def _toml(tmp: Path, *, wipe: str = "local", bays: int = 2, extra: str = "") -> Path:
    lines = ["[dock]", 'sources = ["folder"]', "settle_s = 0.2", "process_after_offload = false",
             f'wipe = "{wipe}"', extra]
    for n in range(1, bays + 1):
        lines += ["[[dock.bays]]", f"number = {n}", f'folder = "{tmp / f"bay{n}"}"']
    return write_dock_toml(tmp / "dock.toml", "\n".join(lines) + "\n")


def _dock(camera: Path, tmp: Path, bay: int, name: str = "cam") -> Path:
    """Copy a camera beside the bay and rename it in: the folder appears complete."""
    staging = tmp / f"bay{bay}" / f".incoming-{name}"
    shutil.copytree(camera, staging)
    dest = tmp / f"bay{bay}" / name
    os.rename(staging, dest)
    return dest


def _status(home: Path, toml: Path) -> dict:
    """`evidock dock status` as an officer: the station service reads the daemon's file."""
    with serving(home, env={"EVIDOCK_DOCK_CONFIG": str(toml)}) as svc:
        res = svc.cli("dock", "status", "--json", user="officer")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_folder_camera_is_offloaded_verified_and_wiped(cam_a: Path, tmp_path: Path) -> None:
    home, toml = tmp_path / "home", _toml(tmp_path)
    write_agency_config(home)  # the users `dock status` is shown to
    original = digests(cam_a)
    d = Daemon(home=home, dock_toml=toml).ready()
    try:
        cam = _dock(cam_a, tmp_path, 1)
        docked = d.wait_event("docked", bay="1")
        first = d.wait_event("first-byte", bay="1")
        assert first["at"] >= docked["at"]
        done = d.wait_event("done", bay="1")
        status = _status(home, toml)
    finally:
        assert d.terminate() == 0
    assert done["wiped"] == len(original)
    assert not [p for p in cam.rglob("*") if p.is_file()], "every proven file is wiped"
    bay = status["bays"]["1"]
    assert (bay["state"], bay["camera"], bay["officer"]) == ("done", "ZFY0001", "123456")
    assert bay["files_done"] == bay["files_total"] == len(original)
    assert bay["bytes_done"] == bay["bytes_total"] == sum(
        p.stat().st_size for p in cam_a.rglob("*") if p.is_file())
    assert status["bays"]["2"]["state"] == "idle"
    with Archive(home) as a:
        assert a.catalogued("ZFY0001") == original
        assert a.wiped() == set(original)
        sessions = a.sessions()
    assert [(s.outcome, s.wipe_requested, s.bay) for s in sessions] == [
        ("completed", False, "1"), ("completed", True, "1")]
    check_nothing_lost(home, cam, original)


def test_remote_wipe_policy_keeps_the_camera_and_a_bad_bay_does_not_stall(
        cam_a: Path, tmp_path: Path) -> None:
    home, toml = tmp_path / "home", _toml(tmp_path, wipe="remote")
    original = digests(cam_a)
    d = Daemon(home=home, dock_toml=toml).ready()
    try:
        bad = tmp_path / "bay2" / "not a serial!"
        bad.mkdir(parents=True)
        (bad / "random.bin").write_bytes(b"x" * 100)
        failed = d.wait_event("failed", bay="2")
        cam = _dock(cam_a, tmp_path, 1)
        withheld = d.wait_event("wipe-withheld", bay="1")
        d.wait_event("done", bay="1")
    finally:
        assert d.terminate() == 0
    assert failed["error"] == "E_SOURCE_INVALID", "unidentifiable folders are refused"
    assert "remote" in withheld["reason"]
    assert digests(cam) == original, "remote policy: nothing wiped until remote confirmation"
    with Archive(home) as a:
        assert a.catalogued("ZFY0001") == original
        assert a.wiped() == set()


def test_sigterm_finishes_the_file_in_flight_then_restart_resumes(
        cam_a: Path, tmp_path: Path) -> None:
    home, toml = tmp_path / "home", _toml(tmp_path)
    original = digests(cam_a)
    hooks = Hooks(tmp_path / "hooks", "mid_copy:1")
    d = Daemon(home=home, dock_toml=toml, env=hooks.env()).ready()
    cam = _dock(cam_a, tmp_path, 1)
    assert hooks.wait_paused() == "mid_copy"
    d.proc.send_signal(signal.SIGTERM)
    d.wait_event("stopping")
    hooks.reply("go")  # the copy in flight continues to its end
    assert d.finish() == 0
    hooks.close()
    failed = d.wait_event("failed", bay="1")
    assert failed["outcome"] == "interrupted"
    assert digests(cam) == original, "nothing wiped on SIGTERM"
    with Archive(home) as a:
        assert len(a.catalogued()) == 1, "the file in flight was finished and recorded"
        [session] = a.sessions()
        assert (session.outcome, session.error_code) == ("interrupted", "E_DOCK_STOPPING")
    check_nothing_lost(home, cam, original)

    again = Daemon(home=home, dock_toml=toml).ready()
    try:
        done = again.wait_event("done", bay="1")
    finally:
        assert again.terminate() == 0
    assert done["wiped"] == len(original)
    check_nothing_lost(home, cam, original)
    with Archive(home) as a:
        assert a.catalogued() == original


@pytest.mark.parametrize("point", ["after_verify:2", "after_wipe:2"])
def test_sigkill_loses_nothing_and_the_next_start_resumes(
        point: str, cam_a: Path, tmp_path: Path) -> None:
    home, toml = tmp_path / "home", _toml(tmp_path)
    original = digests(cam_a)
    hooks = Hooks(tmp_path / "hooks", point)
    d = Daemon(home=home, dock_toml=toml, env=hooks.env()).ready()
    cam = _dock(cam_a, tmp_path, 1)
    assert hooks.wait_paused() == point.split(":", maxsplit=1)[0]
    d.kill()
    hooks.close()
    check_nothing_lost(home, cam, original)
    if point.startswith("after_wipe"):
        assert len(digests(cam)) == len(original) - 2, "two files were wiped before the kill"

    again = Daemon(home=home, dock_toml=toml).ready()
    try:
        again.wait_event("done", bay="1")
    finally:
        assert again.terminate() == 0
    check_nothing_lost(home, cam, original)
    with Archive(home) as a:
        assert a.catalogued() == original
        assert a.wiped() == set(original)
    assert not list((home / "store" / ".staging").iterdir()), "partial copies swept"


def test_sighup_reloads_bays_and_systemd_hears_ready_reloading_stopping(
        cam_a: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    notify = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    toml = _toml(tmp_path, bays=1)
    d = Daemon(home=home, dock_toml=toml, env={"NOTIFY_SOCKET": str(notify),
                                               "WATCHDOG_USEC": "600000000"}).ready()
    try:
        assert sock.recv(4096).decode().startswith("READY=1\nSTATUS=")
        _toml(tmp_path, bays=2)  # the admin adds bay 2, then `systemctl reload`
        d.proc.send_signal(signal.SIGHUP)
        reloaded = d.wait_event("reloaded")
        assert reloaded["bays"] == [1, 2]
        _dock(cam_a, tmp_path, 2)
        d.wait_event("first-byte", bay="2")
    finally:
        assert d.terminate() == 0
    got = []
    while not got or got[-1] != "STOPPING=1":
        got.append(sock.recv(4096).decode())
    sock.close()
    assert "RELOADING=1" in got
    assert any(m.startswith("STATUS=bay 2") for m in got), got
